import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compose_table_quick_negates_as_the_values_left(tmp_path):
    out = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.compose_table", "--quick", "--extras",
                           "--rows", "pos_and_not_color", "not_pos_and_color",
                           "implication_once", "--negation", "complement", "--out",
                           str(tmp_path / "png"), "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["_settings"]["negation"] == "complement"
    assert set(m["_settings"]["temperatures"]) == {"position", "color"}
    for row in ("pos_and_not_color", "not_pos_and_color", "implication_once"):
        assert 0 <= m[row]["pos_acc"] <= 1 and 0 <= m[row]["color_acc"] <= 1
        assert (tmp_path / "png" / f"{row}.png").exists()
    for bad in (["--negation-weight", "-1"], ["--n", "0"], ["--rows", "bogus"],
                ["--alpha", "nan"], ["--negation", "bogus"]):
        proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.compose_table", *bad],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr

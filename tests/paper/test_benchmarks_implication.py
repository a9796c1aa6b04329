import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_implication_benchmark_quick_writes_the_keys(tmp_path):
    out = tmp_path / "implication.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.implication", "--quick", "--json",
                           str(out), "--weights", "1,3", "--threads", "1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(out.read_text())
    # the shipped colour EBM read as a classifier: better than chance (1/8) on real scenes
    assert 0 < m["temperature"] and m["classifier_acc"] > 0.5
    for w in ("w1", "w3"):
        for key in ("color", "position"):
            assert 0 <= m[f"{w}.{key}"] <= 1 and m[f"{w}.{key}.se"] >= 0
    for bad in (["--weights", "1,x"], ["--weights", "0"], ["--weights", ""], ["--n", "0"]):
        proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.implication", *bad],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_implication_benchmark_quick_chooses_on_validation_and_reads_test(tmp_path):
    out = tmp_path / "implication.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.implication", "--quick",
                           "--json", str(out), "--weights", "1,3", "--denoise-steps", "0,2",
                           "--threads", "1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(out.read_text())
    # the shipped colour EBM read as a classifier: better than chance (1/8) on real scenes
    assert 0 < m["temperature"] and m["classifier_acc"] > 0.5
    for w in ("w1", "w3"):
        for key in ("color", "position"):
            assert 0 <= m[f"val.{w}.{key}"] <= 1 and m[f"val.{w}.{key}_se"] >= 0
        assert m[f"val.{w}.fid"] > 0 and m[f"val.{w}.denoise2.fid"] > 0
    assert m["choice.weight"] in (1, 3) and m["choice.denoise_steps"] in (0, 2)
    for key in ("color", "position", "object_rate"):
        assert 0 <= m[f"test.{key}"] <= 1
    assert m["test.fid"] > 0 and m["test.fid_floor"] > 0
    p = m["protocol"]
    assert p["selection_seeds"] == [0] and p["test_seeds"] == [20261207]
    for bad in (["--weights", "1,x"], ["--weights", "0"], ["--weights", ""], ["--n", "0"],
                ["--val-seed", "4", "--test-seed", "4"], ["--denoise-steps", "-2"]):
        proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.implication", *bad],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in \
            proc.stderr, bad

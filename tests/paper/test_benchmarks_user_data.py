"""The user-data and digits benchmarks run in their quick (smoke) modes and write their keys."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script, tmp_path, *extra):
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks." + script.removesuffix(".py"), "--quick",
                           "--threads", "1", "--out", str(tmp_path / "work"), "--json",
                           str(out), *extra], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_user_data_quick_writes_json(tmp_path):
    r = _run("user_data.py", tmp_path)
    for key in ("ebm_mae", "ebm_mae_noisy", "regressor_mae", "regressor_mae_noisy",
                "shipped_mae", "minutes"):
        assert 0 <= r[key] < 5, key
    assert r["heldout"] == 8 and r["command"].startswith("conceptebm train --data")


def test_digits_quick_writes_json_and_figures(tmp_path):
    pytest.importorskip("sklearn")
    r = _run("digits.py", tmp_path)
    assert r["logreg_accuracy"] > 0.9  # the baseline is real even in smoke mode
    for key in ("map_accuracy", "generation_accuracy"):
        assert 0 <= r[key] <= 1, key
    assert len(r["or_split"]) == 2 and r["heldout"] == 449
    assert (tmp_path / "work" / "digits_classes.png").is_file()
    assert (tmp_path / "work" / "digits_or.png").is_file()

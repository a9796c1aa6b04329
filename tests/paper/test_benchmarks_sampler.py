"""The sampler-sweep benchmark's quick mode runs (as a subprocess) and writes its rows."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sampler_sweep_quick_writes_rows(tmp_path):
    out = tmp_path / "sweep.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.sampler_sweep",
                           "--concept", "size", "--n", "4", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    names = [r["variant"] for r in res["rows"]]
    assert names[0] == "recommended" and "best of 2 by energy" in names
    assert all(r["size_mae"] >= 0 and 0 <= r["object_rate"] <= 1 for r in res["rows"])

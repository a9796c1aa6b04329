"""The render-speed benchmark's quick mode runs and writes its JSON keys."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "render_speed.py"


def test_render_speed_quick_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    # --quick with tiny batches so the test takes seconds; the real figure needs the full run
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--images", "64",
                           "--repeats", "1", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["images_per_s_32"] > 0 and result["images_per_s_64"] > 0
    assert {r["dataset"] for r in result["rows"]} >= {"position", "two_objects"}

"""The render-speed benchmark's quick mode runs and writes its JSON keys."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "render_speed.py"


def test_render_speed_quick_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("render_speed", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "speed.json"
    # --quick with tiny batches so the test takes seconds; the real figure needs the full run
    assert bench.main(["--quick", "--images", "64", "--repeats", "1", "--threads", "1",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images_per_s_32"] > 0 and result["images_per_s_64"] > 0
    assert {r["dataset"] for r in result["rows"]} >= {"position", "two_objects"}

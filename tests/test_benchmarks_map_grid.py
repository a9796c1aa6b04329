"""benchmarks/map_grid.py in its quick mode: it reads position_late's stored validation table,
reads test scenes at the chosen and the old setting, and writes its JSON and figure."""

import json
import math


def test_map_grid_quick(tmp_path, run_benchmark):
    out = tmp_path / "map_grid.json"
    stdout = run_benchmark("map_grid", "--quick", "--out", str(out))
    assert "chosen on validation" in stdout
    res = json.loads(out.read_text())
    late = res["models"]["position_late"]
    assert late["chosen"]["grid"] in {r["grid"] for t in late["validation"].values()
                                      for r in t["rows"]}
    assert set(late["test"]) == set(late["validation"]) == {"scenes", "camera_light"}
    for row in late["test"].values():
        for key in ("chosen", "old_default"):
            assert 0 <= row[key]["mae"] <= 2 and math.isfinite(row[key]["images_per_s_cpu"])
    assert out.with_suffix(".png").stat().st_size > 1000

"""benchmarks/counting.py in its quick mode: it runs, prints its table and writes its JSON keys
(accuracies in [0, 1] with standard errors, the chosen rule fitted on validation, the baseline;
no accuracy asserted on three scenes a count)."""

import json


def test_counting_quick(tmp_path, run_benchmark):
    out, fig = tmp_path / "counting.json", tmp_path / "counting.png"
    stdout = run_benchmark("counting", "--quick", "--json", str(out), "--figure", str(fig))
    assert "count accuracy" in stdout and "heatmap" in stdout
    res = json.loads(out.read_text())
    assert res["seeds"]["test"] == 20261207 and res["seeds"]["validation"] != 20261207
    assert res["chosen"]["position_late"]["config"] in res["validation"]["position_late"]
    assert "why" in res["chosen"]["position_late"] and "threshold" in res["chosen"]["heatmap"]
    rows = {(r["method"], r["objects"]): r for r in res["rows"]}
    assert set(rows) == {(m, n) for m in ("position_late", "heatmap") for n in (0, 1, 2)}
    for r in rows.values():
        assert 0 <= r["accuracy"] <= 1 and r["se"] >= 0 and r["n"] == 3
        assert res[f"accuracy_{r['method']}_{r['objects']}"] == r["accuracy"]
    assert rows[("position_late", 0)]["pairs"] == 0  # nothing to match on empty scenes
    assert res["baseline"]["steps"] > 0 and fig.stat().st_size > 5000
    assert res["command"].startswith("python benchmarks/counting.py --quick")

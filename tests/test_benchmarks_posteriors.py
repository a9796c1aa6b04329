"""benchmarks/posteriors.py in its quick mode: it runs, prints its coverage table and writes
its JSON keys (coverage in [0, 1] with standard errors and widths; no accuracy asserted on
six scenes), including the row of a train --data run on the foreign fixture."""

import json
import math


def test_posteriors_quick(tmp_path, run_benchmark):
    out = tmp_path / "posteriors.json"
    stdout = run_benchmark("posteriors", "--quick", "--json", str(out))
    assert "90% intervals on 6 test sets" in stdout and "sampler (MALA, 4 chains" in stdout
    res = json.loads(out.read_text())
    assert [(r["model"], r["views"]) for r in res["rows"]] == [("position_late", 1),
                                                               ("foreign", 1),
                                                               ("position_multiview", 2)]
    assert res["complete"] is True
    # the foreign row's model is a train --data run that fitted its own temperature
    cal = res["foreign"]["posterior_calibration"]
    assert res["rows"][1]["temperature"] == cal["temperature"] and cal["n"] == 12
    assert "train --data" in res["foreign"]["train_command"]
    for r in res["rows"]:
        assert 0 <= r["coverage"] <= 1 and 0 <= r["coverage_t1"] <= 1 and r["n"] == 6
        assert math.isfinite(r["se"]) and r["width"] > 0 and r["temperature"] > 0
        assert res[f"coverage_{r['model']}_v{r['views']}"] == r["coverage"]
    s = res["sampler"]
    assert 0 <= s["coverage"] <= 1 and 0 <= s["flagged"] <= 1 and s["chains"] == 4
    assert res["command"].startswith("python benchmarks/posteriors.py --quick")


def test_progress_bars_quick(tmp_path, run_benchmark):
    out = tmp_path / "bars.json"
    stdout = run_benchmark("progress_bars", "--quick", "--json", str(out))
    assert "overhead" in stdout
    res = json.loads(out.read_text())
    assert res["with_bar_s"] > 0 and res["without_bar_s"] > 0
    assert math.isfinite(res["overhead_percent"])  # no timing asserted on a shared machine
    assert len(res["times"]["with"]) == res["repeats"] == 2

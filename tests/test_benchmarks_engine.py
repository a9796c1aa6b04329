"""benchmarks/engine_overhead.py in its smoke mode: it runs, prints its table, writes its JSON.

The ratios of the quick mode (8 tiny images, 5 steps) measure Python overhead, not the engine
at scale, so only their presence and sanity are checked here; the identical-chains check is
exact in any mode: every variant draws the same noise and must end at the same images.
"""

import json


def test_engine_overhead_quick(tmp_path, run_benchmark):
    out = tmp_path / "engine.json"
    stdout = run_benchmark("engine_overhead", "--quick", "--json", str(out))
    assert "engine / bare" in stdout and "pyro_kernel" in stdout
    res = json.loads(out.read_text())
    for key in ("ratio_engine", "ratio_pyro", "ratio_pyro_potential"):
        assert 0 < res[key] < 100, (key, res[key])
        lo, hi = res[key + "_ci95"]
        assert lo <= res[key] <= hi, (key, lo, res[key], hi)  # the median lies in its interval
    assert res["verdict_engine"] in ("met", "missed", "inconclusive")
    # Paired: one ratio per repeat and variant, bare's own always exactly 1.
    assert all(len(v) == res["repeats"] for v in res["paired_ratios"].values())
    assert set(res["paired_ratios"]["bare"]) == {1.0}
    assert set(res["times_ms"]) == {"bare", "engine", "pyro_kernel", "pyro_potential"}
    # Same chains, up to float32 rounding amplified over the steps.
    assert max(res["max_abs_diff"].values()) < 1e-4, res["max_abs_diff"]
    assert 15_000 < res["params"] < 25_000


def test_sampler_sweep_quick(tmp_path, run_benchmark):
    out = tmp_path / "sweep.json"
    stdout = run_benchmark("sampler_sweep", "--concept", "color", "--n", "8", "--quick",
                           "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows][0] == "recommended"
    assert {r["best_of"] for r in rows} == {1, 2}
    assert any(len(r["phases"]) == 2 for r in rows)  # an annealing row
    for r in rows:
        assert 0 <= r["color_acc"] <= 1 and 0 <= r["object_rate"] <= 1
    assert "best of 2 by energy" in stdout

"""benchmarks/train_speed.py in its quick mode: it runs, prints its table, writes its JSON.

No timing assertions (the suite runs on a shared machine): only that every recipe and variant
was timed, the times are positive, and the projection follows from them.
"""

import json
import math


def test_train_speed_quick(tmp_path, run_benchmark):
    out = tmp_path / "speed.json"
    stdout = run_benchmark("train_speed", "--quick", "--json", str(out))
    assert "s/it" in stdout and "contrastive_late" in stdout
    res = json.loads(out.read_text())
    assert set(res["results"]) == {"position_cd", "contrastive_conv", "contrastive_late"}
    for recipe, variants in res["results"].items():
        assert set(variants) == {"before", "after", "other_layout"}
        for v, m in variants.items():
            assert math.isfinite(m["cpu_s_per_it"]) and m["cpu_s_per_it"] > 0, (recipe, v)
            assert len(m["per_round"]) == res["settings"]["rounds"] == 1
            assert math.isclose(res["projected_min"][recipe][v],
                                m["wall_s_per_it"] * 3000 / 60, rel_tol=1e-9)

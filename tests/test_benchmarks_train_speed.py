"""benchmarks/train_speed.py in its quick mode: it runs, prints its table, writes its JSON.

No timing assertions (the suite runs on a shared machine): only that every recipe and variant
was timed, the times are positive, and the projection follows from them.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"),
                           "--quick", "--json", str(out)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "s/it" in proc.stdout and "contrastive_late" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res["results"]) == {"position_cd", "contrastive_conv", "contrastive_late"}
    for recipe, variants in res["results"].items():
        assert set(variants) == {"before", "after", "other_layout"}
        for v, m in variants.items():
            assert math.isfinite(m["cpu_s_per_it"]) and m["cpu_s_per_it"] > 0, (recipe, v)
            assert len(m["per_round"]) == res["settings"]["rounds"] == 1
            assert math.isclose(res["projected_min"][recipe][v],
                                m["wall_s_per_it"] * 3000 / 60, rel_tol=1e-9)

"""Object-free images (scenes.robustness.object_free_images), the robustness table judging them
by the CLI's rule (familiarity included), and benchmarks/false_alarms.py --quick."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.evaluate.familiarity import fit_familiarity
from conceptebm.evaluate.metrics import rate_upper_bound
from conceptebm.scenes.robustness import object_free_images, robustness_images, robustness_table

ROOT = Path(__file__).resolve().parents[1]


class Flat(ConditionalEnergy):
    """Energy 0 at every concept value: the energy check passes every image."""

    def __init__(self, record=None):
        super().__init__(Concept.continuous("position", dim=2))
        self.attach_record(record or {})

    def energy(self, x, c):
        return 0.0 * c.sum(-1) + 0.0 * x.flatten(1).sum(1)


def test_object_free_images_are_empty_scenes_under_the_columns_nuisances():
    free = object_free_images(5, seed=3)
    assert set(free) == {"empty", "empty_noise", "empty_jpeg", "empty_blur", "empty_ground",
                         "empty_texture", "empty_camera", "empty_light", "uniform_noise",
                         "constant"}
    assert all(x.shape == (5, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
               for x in free.values())
    # the table's no_object column begins with the same emptied clean scenes
    assert torch.equal(free["empty"], robustness_images(5, seed=3)["no_object"][0][:5])
    for k in ("empty_noise", "empty_jpeg", "empty_blur", "empty_ground", "empty_texture",
              "empty_light"):
        assert not torch.equal(free[k], free["empty"]), k
    assert 0.05 < (free["empty_noise"] - free["empty"]).std() < 0.15
    assert (free["constant"].flatten(2).std(-1) == 0).all()  # one colour each
    assert torch.equal(object_free_images(5, seed=3)["uniform_noise"], free["uniform_noise"])


def test_the_table_judges_no_object_with_the_models_familiarity_record():
    imgs = robustness_images(3, seed=5)
    cal = {"quantiles": {"0.5": 0.0, "0.9": 0.0, "0.99": 0.0}}  # energy 0: all pass
    res = robustness_table(Flat(), 3, 5, images=imgs, calibration=cal, columns=("no_object",))
    assert res["no_object"]["false_alarm"]["value"] == 1  # energy alone answers every blank
    assert res["no_object"]["missed"]["value"] == 0
    # a familiarity record of dark noise: no rendered scene is familiar, so none is answered
    g = torch.Generator().manual_seed(0)
    dark = fit_familiarity(torch.rand(100, 3, 32, 32, generator=g) * 0.1, components=4)
    res = robustness_table(Flat({"familiarity": dark}), 3, 5, images=imgs, calibration=cal,
                           columns=("no_object",))
    assert res["no_object"]["false_alarm"]["value"] == 0
    assert res["no_object"]["missed"]["value"] == 1


def test_upper_bound_is_clopper_pearson():
    upper = rate_upper_bound
    assert upper(0, 1000) == pytest.approx(1 - 0.05 ** (1 / 1000))  # k = 0: exact
    assert upper(0, 4000) < 3 / 4000  # the rule of three is a little looser
    assert upper(1, 305) > 0.0025  # one in 305 cannot show <= 1/400
    assert upper(5, 5) == 1.0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        upper(6, 5)


def test_benchmark_quick(tmp_path, run_benchmark):
    out = tmp_path / "fa.json"
    run_benchmark("false_alarms", "--quick", "--json", str(out))
    res = json.loads(out.read_text())
    assert "false_alarms.py" in res["command"] and res["n"] == 8
    row = res["models"]["position_late_robust"]
    fa = row["no_object"]["false_alarm"]
    assert fa["n"] == 2 * 8 + 5 and fa["count"] == round(fa["value"] * fa["n"])
    assert fa["value"] <= fa["upper95"] <= 1
    assert row["no_object"]["table_rule"]["count"] >= fa["count"]  # familiarity only refuses
    assert set(row["missed"]) == {"clean", "noise", "clutter", "light", "jpeg", "blur",
                                  "ground", "texture", "camera"}
    assert set(row["object_free"]) == set(object_free_images(1, 0))
    assert len(row["records"]["familiarity"]) == 12  # what was read is pinned
    assert res["state"]["commit"] is None or len(res["state"]["commit"]) == 40


def test_benchmark_bad_n_is_one_error_line():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "false_alarms.py"),
                           "--n", "0"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --n 0: must be a positive integer (e.g. --n 2000)"]

"""The robustness table (conceptebm.scenes.robustness) and benchmarks/robustness.py --quick.

No accuracy thresholds on a trained model (the suite's models are tiny): the images are what
each column says, an oracle energy reads them exactly, and the benchmark writes every column.
"""

import json

import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.scenes.robustness import COLUMNS, robustness_images, robustness_table


class Oracle(ConditionalEnergy):
    """Energy = distance to the position the image was rendered with (a lookup by pixels)."""

    def __init__(self, table):
        super().__init__(Concept.continuous("position", dim=2))
        self.table = {float(img.double().sum()): p for img, p in table}  # image -> (k, 2)

    def energy(self, x, c):
        out = []
        for xi, ci in zip(x, c, strict=True):
            pos = self.table.get(float(xi.double().sum()))
            out.append(5.0 + 0.0 * ci.sum() if pos is None
                       else (pos - ci).norm(dim=-1).min())
        return torch.stack(out)


def test_images_are_what_the_columns_say():
    imgs = robustness_images(6, seed=3)
    assert set(imgs) == set(COLUMNS)
    clean, noisy = imgs["clean"][0], imgs["noise"][0]
    assert torch.equal(imgs["clean"][1], imgs["noise"][1])
    assert 0.05 < (noisy - clean).std() < 0.15  # sigma 0.1, clipped to [0, 1]
    assert imgs["two_objects"][1].shape == (6, 2, 2)
    blank, truth = imgs["no_object"]
    assert truth is None and blank.shape[0] == 2 * 6 + 5
    # the unseen light: "position" scenes lit from a low light at azimuth 100..170 deg (the
    # left of the camera's right): darker on average than the training light
    assert imgs["light"][0].mean() < clean.mean()
    assert imgs["light"][1].abs().max() <= 1
    assert torch.equal(robustness_images(6, seed=3)["clutter"][0], imgs["clutter"][0])


def test_an_oracle_reads_the_scenes_and_refuses_blanks():
    imgs = robustness_images(3, seed=5)
    table = [(x, t[None] if t.dim() == 1 else t) for col in ("clean", "noise", "clutter",
                                                             "light", "two_objects")
             for x, t in zip(*imgs[col], strict=True)]
    model = Oracle(table)
    cal = {"quantiles": {"0.5": 0.0, "0.9": 0.01, "0.99": 0.02}}  # blanks sit at energy 5
    res = robustness_table(model, 3, 5, images=imgs, calibration=cal,
                           columns=("clean", "no_object"))
    assert res["clean"]["mae"]["value"] < 0.01 and res["clean"]["acc_0.15"]["value"] == 1
    assert res["no_object"]["false_alarm"]["value"] == 0
    assert res["no_object"]["missed"]["value"] == 0


def test_benchmark_quick(tmp_path, run_benchmark):
    out = tmp_path / "rob.json"
    run_benchmark("robustness", "--quick", "--models", "position_late", "--json", str(out))
    res = json.loads(out.read_text())
    assert res["split"] == "validation" and res["n"] == 4 and "robustness.py" in res["command"]
    row = res["models"]["position_late"]
    assert set(row) == set(COLUMNS)
    assert 0 <= row["clean"]["mae"]["value"] < 2 and row["clean"]["mae"]["stderr"] >= 0
    assert 0 <= row["no_object"]["false_alarm"]["value"] <= 1


def test_data_defaults_writes_sources_train_reads(tmp_path, run_benchmark):
    from conceptebm.datasets import load_images

    run_benchmark("data_defaults", "write", str(tmp_path), "-n", "3", "--sources", "camera_b",
                  "foreign")
    for name in ("camera_b", "foreign"):
        ds = load_images(tmp_path / name, infer=True)
        assert len(ds) == 3 and ds.concepts["position"].dim == 2
        assert ds.labels["position"].abs().max() <= 1

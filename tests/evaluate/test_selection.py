"""Scoring a model as flat JSON, snapshot selection and export (tiny nets, a stand-in judge)."""

import json

import pytest
import torch

from conceptebm.checkpoints import load_checkpoint, load_energy, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.evaluate.metrics import Metric
from conceptebm.evaluate.quality import selection_score
from conceptebm.evaluate.selection import (
    candidates,
    export,
    model_score,
    passes,
    result_keys,
    score_model,
    select,
)
from conceptebm.infer import MAPSettings

POS = Concept.continuous("position", dim=2)
SIZE = Concept.continuous("size", dim=1, low=0.2, high=0.4)
COLOR = Concept.categorical("color", ["red", "green", "blue"])


class Judge:
    concepts = {"position": POS, "color": COLOR}

    def predict(self, images):
        n = images.shape[0]
        return {"position": images.mean((1, 2, 3))[:, None].expand(n, 2) * 2 - 1,
                "color": images.mean((2, 3)).argmax(1)}


class Scenes:
    concepts = {"position": POS, "color": COLOR}

    def batch(self, idx):
        g = torch.Generator().manual_seed(5)
        n = len(idx)
        return (torch.rand(n, 3, 8, 8, generator=g),
                {"position": torch.rand(n, 2, generator=g) * 2 - 1,
                 "color": torch.randint(0, 3, (n,), generator=g)})


def _net(concept=POS, seed=0):
    torch.manual_seed(seed)
    return ConvEnergyNet(concept, image_size=8, width=4, embed_dim=4).eval()


def test_result_keys_follow_the_declaration():
    assert result_keys(COLOR) == [("color.acc", "color_acc")]
    assert result_keys(SIZE) == [("size.mae", "size_mae")]
    assert [k for k, _ in result_keys(POS)] == ["position.acc04", "position.acc015",
                                               "position.mae"]
    angle = Concept.continuous("angle", low=0, high=360, tolerances=(10, 2.5))
    assert result_keys(angle) == [("angle.acc10", "angle_acc"), ("angle.acc25", "angle_acc_2.5"),
                                  ("angle.mae", "angle_mae")]


def test_score_model_flat_entries_and_score():
    coarse = MAPSettings(grid=3, steps=2)
    res = score_model(_net(), Judge(), Scenes(), 4, sampler={"num_steps": 2}, inference=True,
                      map_settings=coarse)
    for key in ("position.acc04", "position.acc015", "position.mae", "position.mae_frac",
                "inference_position_acc04", "inference_position_acc015",
                "inference_position_mae"):
        assert key in res and key + "_stderr" in res, key
    assert res["position.mae_frac"] == pytest.approx(res["position.mae"] / 2)
    assert 0 <= res["position.object_rate"] <= 1 and res["position.seconds"] >= 0
    # seeded: the same numbers again
    again = score_model(_net(), Judge(), Scenes(), 4, sampler={"num_steps": 2}, inference=True,
                        map_settings=coarse)
    assert {k: v for k, v in again.items() if "seconds" not in k} == {
        k: v for k, v in res.items() if "seconds" not in k}
    # the old keywords: a DeprecationWarning, the same numbers
    with pytest.warns(DeprecationWarning, match=r"score_model\(grid=\.\.\., steps=\.\.\.\) is "
                      "deprecated"):
        old = score_model(_net(), Judge(), Scenes(), 4, sampler={"num_steps": 2}, inference=True,
                          grid=3, steps=2)
    assert {k: v for k, v in old.items() if "seconds" not in k} == {
        k: v for k, v in res.items() if "seconds" not in k}
    # the selection score averages generation and inference, each as the training loop scores
    gen = selection_score({"position_mae": Metric(res["position.mae"], 0)}, POS)
    inf = selection_score({"position_mae": Metric(res["inference_position_mae"], 0)}, POS)
    assert model_score(POS, res) == pytest.approx((gen + inf) / 2)
    cat = score_model(_net(COLOR), Judge(), Scenes(), 4, sampler={"num_steps": 1})
    assert model_score(COLOR, cat) == cat["color.acc"] and "color.mae_frac" not in cat


def test_passes():
    assert passes({"a": 1.0, "b": 0.2}, {"a": (0.9, "min"), "b": (0.1, "max"),
                                         "c": (0, "min")}) == {"a": True, "b": False}
    with pytest.raises(ValueError, match="'min' or 'max'"):
        passes({"a": 1.0}, {"a": (0.9, "above")})


def _run(tmp_path):
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    for it, seed in ((100, 0), (200, 1), (300, 2)):
        net = _net(COLOR, seed)
        save_checkpoint(run / "snapshots" / f"it{it:06d}.safetensors",
                        {"model": net.state_dict()},
                        {"net": net.config, "elapsed_s": float(it),
                         "sampler": {"num_steps": 3, "step_size": 50.0}})
    (run / "eval.csv").write_text("iteration,score\n100,0.9\n200,0.1\n300,0.5\n")
    (run / "command.txt").write_text("conceptebm train --concept color\n"
                                     "conceptebm train --concept color --resume\n")
    return run


def test_candidates_select_and_export(tmp_path):
    run = _run(tmp_path)
    assert [p.name for p in candidates(run, top=1)] == ["it000100.safetensors",
                                                         "it000300.safetensors"]
    lines = []
    best, sampler, rows = select(run, load_energy, Judge(), lambda net: Scenes(), 4,
                                 steps_grid=(1, 2), top=1, log=lines.append)
    assert len(rows) == len(lines) == 4 and best in {r[1] for r in rows}
    assert max(r[0] for r in rows) == next(r[0] for r in rows if r[1] == best
                                           and r[2] == sampler.num_steps)
    assert sampler.step_size == 50.0  # the snapshot's own settings, steps replaced
    dest = tmp_path / "shipped" / "color.safetensors"
    seen = []

    def metrics(path):
        seen.append(path)
        return {"color.acc": 0.5}

    assert export(run, best, dest, sampler, metrics, 4, "python x.py") == dest
    meta = load_checkpoint(dest).meta
    assert seen == [dest] and meta["metrics"] == {"color.acc": 0.5} and meta["metrics_n"] == 4
    assert meta["command"] == "conceptebm train --concept color"
    assert meta["sampler"]["num_steps"] == sampler.num_steps
    assert meta["source"] == f"run/snapshots/{best.name}"
    assert json.loads(dest.with_suffix(".json").read_text())["metrics_command"] == "python x.py"
    with pytest.raises(FileNotFoundError, match="snapshot-every"):
        candidates(tmp_path, top=1)

"""Late-conditioned readers of categorical and 1-D concepts: one training loop trains them, a
checkpoint round-trips, and ``conceptebm infer --concept C`` reads with ``INFER_DEFAULT``."""

import json

import pytest
import torch

import conceptebm.checkpoints as checkpoints
from conceptebm import pretrained
from conceptebm.checkpoints import load_energy
from conceptebm.cli import main
from conceptebm.energies.late import LateEnergyNet
from conceptebm.models import resolve
from conceptebm.train import smoke_config, train


def test_a_late_categorical_reader_trains_and_round_trips(tmp_path):
    cfg = smoke_config(objective="contrastive", net="late", concept="shape", center_input=True,
                       iterations=6, eval_every=3, eval_samples=12, empty_negatives=2,
                       out_dir=str(tmp_path / "run"))
    result = train(cfg)
    assert result.iteration == 6 and result.stopped == "done"
    net = result.eval_net.eval()
    assert isinstance(net, LateEnergyNet) and net.readout == "pooled"
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # header + one row per iteration, each with a finite loss
    assert rows[0].split(",")[-4:] == ["empty", "empty_acc", "e_empty", "loss"]
    assert all(torch.isfinite(torch.tensor(float(r.split(",")[-1]))) for r in rows[1:])
    evals = [r for r in result.evals if "inference_shape_acc" in r]
    assert evals and all(0 <= r["inference_shape_acc"] <= 1 for r in evals)
    # the saved weights are the trained ones: the same energies for every category
    back = load_energy(tmp_path / "run" / "last.safetensors")
    assert isinstance(back, LateEnergyNet) and back.config == net.config
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    c = torch.eye(3)[None].expand(4, 3, 3)  # (4 images, 3 categories, one-hot)
    with torch.no_grad():
        e = net.energy_from_features(net.features(x), c)  # (4, 3)
        e_back = back.energy_from_features(back.features(x), c)
    assert torch.allclose(e, e_back, atol=1e-6)
    assert (e.max(1).values - e.min(1).values).min() > 0  # the energy depends on c


def test_a_late_1d_reader_trains_with_near_negatives(tmp_path):
    cfg = smoke_config(objective="contrastive", net="late", concept="size", iterations=4,
                       eval_every=4, eval_samples=12, contrastive_negatives=3,
                       contrastive_near_negatives=2, out_dir=str(tmp_path / "run"))
    result = train(cfg)
    assert result.iteration == 4 and isinstance(result.net, LateEnergyNet)
    assert result.net.readout == "pooled"
    assert any("inference_size_mae" in r for r in result.evals)


@pytest.mark.parametrize("concept", ["shape", "size", "color"])
def test_infer_concept_reads_with_the_default_reader(concept, tmp_path, capsys, monkeypatch):
    name = pretrained.INFER_DEFAULT.get(concept, concept)
    assert name in pretrained.available()
    assert resolve(None, concept=concept) == pretrained.checkpoint_path(name)
    loaded = []
    real = checkpoints.load_energy

    def spy(path, *a, **k):
        loaded.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(checkpoints, "load_energy", spy)
    from conceptebm.datasets import make_dataset
    from conceptebm.datasets.images import write_pngs

    images, _ = make_dataset(concept, size=1, seed=5).batch([0])
    path = tmp_path / "scene.png"
    write_pngs(images[:1], [path])
    assert main(["infer", str(path), "--concept", concept, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    row = row[0] if isinstance(row, list) else row
    assert row["concept"] == concept
    assert loaded == [str(pretrained.checkpoint_path(name))]


def test_models_lists_the_late_readers(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in set(pretrained.INFER_DEFAULT.values()):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


def test_the_empty_term_scores_every_empty_image_under_every_true_value():
    import math

    import torch.nn.functional as F

    from conceptebm.concepts import Concept
    from conceptebm.train.config import TrainConfig
    from conceptebm.train.objective import Batch, EmptyContrastiveTerm, Objective, Sum

    torch.manual_seed(0)
    net = LateEnergyNet(Concept.categorical("shape", ["a", "b", "c"]), width=4, features=8)
    term = EmptyContrastiveTerm(1.0, 2.0)
    obj = Objective(net, Sum([term]))
    x, xe = torch.rand(4, 3, 32, 32), torch.rand(2, 3, 32, 32)
    c = torch.eye(3)[torch.tensor([0, 2, 1, 2])]  # (4, 3) one-hots
    e = obj.energies(term.rows(Batch(x, c, x_empty=xe)))
    with torch.no_grad():
        want = torch.stack([torch.stack([net(xe[k:k + 1], c[i:i + 1])[0] for k in range(2)])
                            for i in range(4)])  # (B, K): E(empty_k | c_i)
        got = e["empty"].reshape(-1, 4).T
        assert torch.allclose(got, want, atol=1e-5)
        loss, stats = obj(x, c, x_empty=xe)
        logits = -torch.cat([e["pos"][:, None], got], 1) / 2.0
        ce = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    assert math.isclose(float(loss), 2.0 * float(ce), rel_tol=1e-5)  # weight * T * CE
    assert set(stats) >= {"empty", "empty_acc", "e_empty", "loss"}
    with pytest.raises(ValueError, match="empty_negatives"):
        TrainConfig(concept="shape", empty_negatives=4)  # a CD run has no such term


def test_the_benchmark_reads_both_readers_on_the_same_renders(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "late.json"
    proc = subprocess.run([sys.executable, "benchmarks/late_readers.py", "--quick",
                           "--concepts", "color", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())["concepts"]["color"]
    assert res["model"] == "color_late" and res["reference"] == "color"
    rows = res["rows"]
    assert set(rows) == {"model", "reference"} and res["metric"] == "acc"
    for row in rows.values():  # 12 renders each: accuracy in [0, 1], a speed, 5 blanks
        assert 0 <= row["acc"]["value"] <= 1 and row["images_per_s"] > 0
        assert len(row["blank_answered"]) == 5
    diff = rows["model"]["acc"]["value"] - rows["reference"]["acc"]["value"]
    assert abs(res["diff"]["clean"]["value"] - diff) < 1e-9  # paired on the same scenes

"""The judge training loop learns (on the synthetic stand-in) and its command line runs."""

import json

import pytest
import torch

from conceptebm.cli import main
from conceptebm.evaluate import augment, gaussian_blur, load_judge
from conceptebm.evaluate.train_judges import JudgeTrainConfig, train_judges


def test_training_learns_the_stand_in(blobs):
    # 150 steps of batch 32 at 16 px, a ~10k-parameter net: well above chance (color 1/3,
    # position within 0.4: ~0.2) on held-out items. Observed with this seed: position_acc
    # 0.98, color 0.97, position MAE 0.065; thresholds leave room for other BLAS builds.
    cfg = JudgeTrainConfig(image_size=16, iterations=150, batch_size=32, width=8, hidden=32,
                           eval_size=256, warmup=10, lr=3e-3)
    judge, report = train_judges(cfg, dataset=blobs(150 * 32, seed=0),
                                 eval_dataset=blobs(256, seed=99), progress=False,
                                 command="test")
    clean = report["heldout"]["clean"]
    assert clean["color_acc"]["value"] > 0.85
    assert clean["position_acc"]["value"] > 0.9
    assert clean["position_mae"]["value"] < 0.15
    assert report["heldout"]["n"] == 256 and report["heldout"]["dataset_seed"] == 99
    assert judge.metadata["training"]["command"] == "test"
    assert set(report["heldout"]["noise_0.1"]) == set(clean)
    assert judge.config.extra["palette"][0] == pytest.approx([0.9, 0.1, 0.1])


def test_augment_keeps_range_and_leaves_some_images_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8, generator=g)
    y = augment(x, generator=g, noise_frac=0.5, blur_frac=0.25)
    assert y.min() >= 0 and y.max() <= 1
    untouched = (y == x).flatten(1).all(1)
    # each image escapes both with prob 0.5 * 0.75 = 0.375: 24 of 64 expected, sd 3.9
    assert 8 < untouched.sum() < 40
    with pytest.raises(ValueError, match="noise_frac"):
        augment(x, noise_frac=1.5)


def test_blur_preserves_constants_and_mean():
    flat = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([0.5, 2.0])), flat)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(gaussian_blur(x, torch.zeros(1)), x)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        JudgeTrainConfig(iterations=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        JudgeTrainConfig(lr=0.0)


def test_command_line_smoke(tmp_path):
    out = tmp_path / "judges"
    assert main(["train-judges", "--smoke", "-o", f"{out}.safetensors", "--quiet"]) == 0
    judge = load_judge(out)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["training"]["command"].startswith("conceptebm train-judges")
    assert "--smoke" in doc["training"]["command"]
    assert set(judge.concepts) >= {"position", "color", "shape", "size"}


def test_mixed_scenes_takes_a_fixed_fraction_from_each(blobs):
    from conceptebm.evaluate.train_judges import MixedScenes

    a, b = blobs(1000, seed=1), blobs(1000, seed=2)
    mixed = MixedScenes(a, b, 0.25)
    idx = torch.arange(0, 1000, 7)
    images, labels = mixed.batch(idx)
    xa, la = a.batch(idx)
    xb, lb = b.batch(idx)
    from_b = (images == xb).flatten(1).all(1) & ~(images == xa).flatten(1).all(1)
    # deterministic (no RNG): these 143 indices put 36 items (0.2517) in `b`
    assert from_b.sum().item() == 36
    assert torch.equal(labels["color"][from_b], lb["color"][from_b])
    assert torch.equal(labels["position"][~from_b], la["position"][~from_b])
    with pytest.raises(ValueError, match="needs dataset=None"):
        train_judges(JudgeTrainConfig(clutter_frac=0.5), dataset=a, progress=False)

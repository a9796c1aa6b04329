"""The holistic decoder baseline (paper.baselines.decoder): it learns, it is seeded, its
checkpoint round-trips, and bad settings are refused with the setting's name."""

import pytest
import torch

from conceptebm.checkpoints import CheckpointError, save_checkpoint
from conceptebm.datasets import make_dataset, scene_concepts
from paper.baselines.decoder import (
    ConceptDecoder,
    DecoderConfig,
    decoder_labels,
    load_decoder,
    train_decoder,
)


@pytest.fixture(scope="module")
def tiny_set():
    return make_dataset("cross_product", size=32, seed=0, fraction=0.1, split="train")


def test_mse_decreases_on_a_tiny_set(tiny_set, tmp_path):
    cfg = DecoderConfig(width=4, hidden=16, iterations=80, batch_size=16, lr=3e-3)
    result = train_decoder(cfg, tiny_set, tmp_path / "dec.safetensors")
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert len(result.losses) == 80 and result.stopped == "done"
    assert last < 0.7 * first, (first, last)


def test_checkpoint_round_trip_and_seeding(tiny_set, tmp_path):
    cfg = DecoderConfig(width=4, hidden=8, noise_dim=3, iterations=4, batch_size=8, seed=5)
    a = train_decoder(cfg, tiny_set, tmp_path / "a.safetensors").decoder
    b = train_decoder(cfg, tiny_set, tmp_path / "b.safetensors").decoder
    loaded = load_decoder(tmp_path / "a.safetensors")
    c = torch.tensor([[0.3, -0.2, 0.3], [-0.8, 0.5, 0.44]])
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ya, yb, yl = a(c, z), b(c, z), loaded(c, z)
    assert torch.equal(ya, yb)  # same seed, same weights
    assert torch.equal(ya, yl)  # the file rebuilds the same decoder
    assert ((ya >= 0) & (ya <= 1)).all() and ya.shape == (2, 3, 32, 32)
    assert not (tmp_path / "a.pkl").exists() and (tmp_path / "a.json").exists()


def test_refuses_bad_settings_and_inputs(tmp_path):
    with pytest.raises(ValueError, match="DecoderConfig.width"):
        DecoderConfig(width=0)
    with pytest.raises(ValueError, match="image_size"):
        DecoderConfig(image_size=24)
    sc = scene_concepts()
    dec = ConceptDecoder([sc["position"], sc["size"]], width=4)
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        dec(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="categorical"):
        ConceptDecoder([sc["color"]])
    with pytest.raises(ValueError, match="no 'depth'"):
        decoder_labels({"position": torch.zeros(1, 2)}, ["depth"])
    save_checkpoint(tmp_path / "ebm.safetensors", {"model": {"w": torch.zeros(1)}}, {"net": {}})
    with pytest.raises(CheckpointError, match="not a decoder checkpoint"):
        load_decoder(tmp_path / "ebm.safetensors")


def test_validation_selection_keeps_the_best_weights(tiny_set, tmp_path):
    held = make_dataset("cross_product", size=16, seed=9, fraction=0.1, split="train")
    cfg = DecoderConfig(width=4, hidden=8, iterations=30, batch_size=8, lr=3e-3, eval_every=10,
                        eval_samples=16)
    result = train_decoder(cfg, tiny_set, tmp_path / "d.safetensors", eval_dataset=held)
    assert [u for u, _ in result.evals] == [10, 20, 30]
    best_u, best_mse = min(result.evals, key=lambda e: e[1])
    assert result.best_iteration == best_u
    dec = load_decoder(tmp_path / "d.safetensors")
    x, labels = held.batch(range(16))
    z = torch.randn(16, cfg.noise_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    with torch.no_grad():
        mse = float(((dec(decoder_labels(labels, cfg.concepts), z) - x) ** 2).mean())
    assert abs(mse - best_mse) < 1e-5  # the written weights are the best ones
    with pytest.raises(ValueError, match="eval_every"):
        DecoderConfig(eval_every=-1)


def test_a_cpu_budget_stops_the_training(tiny_set, tmp_path):
    cfg = DecoderConfig(width=4, hidden=8, iterations=100_000, batch_size=8,
                        cpu_time_limit_min=0.02)
    result = train_decoder(cfg, tiny_set, tmp_path / "d.safetensors")
    assert result.stopped == "cpu time limit" and len(result.losses) < 100_000
    assert result.cpu_minutes >= 0.02
    with pytest.raises(ValueError, match="cpu_time_limit_min"):
        DecoderConfig(cpu_time_limit_min=0)

"""The continual-learning GAN baseline: its training loop moves the weights with finite
losses, its checkpoints round-trip, and labels enter only through the ``given`` slots."""

import pytest
import torch

from conceptebm.datasets import make_dataset
from paper.baselines.gan import (
    ConditionalGAN,
    cond_dim,
    encode_condition,
    fit,
    load_gan,
    save_gan,
)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_default_nets_are_sized_like_our_ebms():
    gan = ConditionalGAN()
    n_g = sum(p.numel() for p in gan.generator.parameters())
    n_d = sum(p.numel() for p in gan.discriminator.parameters())
    assert 60_000 < n_g < 150_000 and 60_000 < n_d < 150_000, (n_g, n_d)


def test_fit_moves_weights_with_finite_losses_and_checkpoint_round_trips(tmp_path):
    gan = ConditionalGAN(g_width=16, d_width=4, seed=1)
    g0, d0 = _params(gan.generator), _params(gan.discriminator)
    ds = make_dataset("continual_position", size=64)
    log = fit(gan, ds, given=("position",), steps=3, batch_size=8, seed=0)
    assert log["steps"] == 3 and len(log["d_loss"]) == 3
    assert all(torch.isfinite(torch.tensor(log["d_loss"] + log["g_loss"])))
    for before, net in ((g0, gan.generator), (d0, gan.discriminator)):
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    # a second stage carries the same weights on and is recorded
    fit(gan, make_dataset("continual_shape", size=64), given=("position", "shape"), steps=2,
        batch_size=8, seed=1)
    assert [s["given"] for s in gan.stages] == [["position"], ["position", "shape"]]

    path = tmp_path / "gan.safetensors"
    save_gan(gan, path, optimizer=True, note="test")
    assert path.with_suffix(".json").exists()
    back = load_gan(path)
    for (k, a), b in zip(gan.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert back.stages == gan.stages
    assert back.opt_g.state_dict()["state"].keys() == gan.opt_g.state_dict()["state"].keys()
    labels = {"position": torch.tensor([[0.5, -0.5], [0.0, 0.0]]), "shape": torch.tensor([0, 1])}
    x1 = gan.sample(labels, ("position", "shape"), generator=torch.Generator().manual_seed(0))
    x2 = back.sample(labels, ("position", "shape"), generator=torch.Generator().manual_seed(0))
    assert x1.shape == (2, 3, 32, 32) and torch.equal(x1, x2)
    assert 0 <= x1.min() and x1.max() <= 1
    # training resumes from the loaded optimizer states
    fit(back, ds, given=("position",), steps=1, batch_size=8)


def test_condition_fills_only_the_given_slots():
    labels = {"position": torch.tensor([[0.25, -0.75]]), "shape": torch.tensor([2]),
              "color": torch.tensor([3])}
    only_color = encode_condition(labels, ("color",), 1)
    assert only_color.shape == (1, cond_dim())
    assert only_color[0, :7].abs().sum() == 0  # position (2+1) and shape (3+1) slots empty
    assert only_color[0, 7 + 3] == 1 and only_color[0, -1] == 1  # color one-hot, given bit
    full = encode_condition(labels, ("position", "shape", "color"), 1)
    assert full[0, :3].tolist() == [0.25, -0.75, 1.0]
    with pytest.raises(ValueError, match="size"):
        encode_condition(labels, ("size",), 1)
    with pytest.raises(ValueError, match="labels has only"):
        encode_condition({"shape": torch.tensor([0])}, ("position",), 1)


def _adam_steps(opt) -> set[int]:
    return {int(s["step"]) for s in opt.state_dict()["state"].values()}


def test_adam_state_carries_over_from_stage_to_stage():
    gan = ConditionalGAN(g_width=16, d_width=4, seed=1)
    fit(gan, make_dataset("continual_position", size=64), given=("position",), steps=3,
        batch_size=8, seed=0)
    assert _adam_steps(gan.opt_g) == _adam_steps(gan.opt_d) == {3}
    fit(gan, make_dataset("continual_shape", size=64), given=("shape",), steps=2,
        batch_size=8, seed=1)
    assert _adam_steps(gan.opt_g) == _adam_steps(gan.opt_d) == {5}  # not a fresh Adam


def test_snapshot_restores_weights_and_adam_states():
    gan = ConditionalGAN(g_width=16, d_width=4, seed=1)
    ds = make_dataset("continual_position", size=64)
    fit(gan, ds, given=("position",), steps=2, batch_size=8, seed=0)
    snap, before = gan.snapshot(), {k: v.clone() for k, v in gan.state_dict().items()}
    fit(gan, ds, given=("position",), steps=2, batch_size=8, seed=1)
    assert _adam_steps(gan.opt_g) == {4}
    gan.restore(snap)
    assert _adam_steps(gan.opt_g) == _adam_steps(gan.opt_d) == {2}
    for k, v in gan.state_dict().items():  # BatchNorm statistics included
        assert torch.equal(v, before[k]), k


def test_fit_checks_on_its_clock_and_at_the_last_step():
    gan = ConditionalGAN(g_width=16, d_width=4, seed=1)
    ds = make_dataset("continual_position", size=64)
    seen = []
    log = fit(gan, ds, given=("position",), steps=4, batch_size=8, clock="process",
              check_every_s=1e-9, on_check=seen.append)
    assert seen == [1, 2, 3, 4] and log["train_seconds"] > 0 and log["cpu_seconds"] > 0
    seen.clear()
    fit(gan, ds, given=("position",), steps=3, batch_size=8, check_every_s=1e6,
        on_check=seen.append)
    assert seen == [3]  # the end of the stage is always judged
    with pytest.raises(ValueError, match="clock"):
        fit(gan, ds, given=("position",), steps=1, batch_size=8, clock="gpu")

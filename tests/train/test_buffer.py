import math

import pytest
import torch

from conceptebm.train.buffer import ReplayBuffer


def filled(policy="current", cap=50, gen=None):
    buf = ReplayBuffer(cap, reinit_prob=0.0, label_policy=policy)
    x = torch.rand(cap, 3, 4, 4, generator=gen)
    c = torch.arange(cap, dtype=torch.float32)[:, None]  # label = insertion index
    buf.push(x, c)
    return buf, x, c


def test_empty_buffer_returns_fresh(gen):
    buf = ReplayBuffer(10)
    fresh, c = torch.rand(4, 3, 4, 4, generator=gen), torch.rand(4, 2, generator=gen)
    x0, c0 = buf.sample(fresh, c, generator=gen)
    assert x0 is fresh and c0 is c


def test_reuse_returns_stored_samples_up_to_quantisation(gen):
    buf, x, _ = filled(gen=gen)
    x0, _ = buf.sample(torch.zeros(20, 3, 4, 4), torch.zeros(20, 1), generator=gen)
    # each row equals some stored sample within one uint8 rounding cell
    d = (x0[:, None] - x[None]).abs().flatten(2).amax(2)  # (20, 50)
    assert (d.min(1).values <= 1 / 255 + 1e-6).all()


@pytest.mark.parametrize("policy", ["current", "stored"])
def test_label_policies(policy, gen):
    buf, _, c_stored = filled(policy, gen=gen)
    batch_c = torch.full((30, 1), -1.0)
    _, c0 = buf.sample(torch.zeros(30, 3, 4, 4), batch_c, generator=gen)
    if policy == "current":
        assert torch.equal(c0, batch_c)  # the official code: the batch's labels
    else:
        assert (c0 >= 0).all()  # every chain keeps a stored sample's own label


def test_stored_policy_pairs_each_sample_with_its_label(gen):
    buf = ReplayBuffer(40, reinit_prob=0.0, label_policy="stored")
    level = torch.arange(40) / 39.0
    x = level[:, None, None, None].expand(40, 1, 2, 2).clone()  # sample i is flat at i/39
    buf.push(x, level[:, None])
    x0, c0 = buf.sample(torch.zeros(25, 1, 2, 2), torch.zeros(25, 1), generator=gen)
    assert torch.allclose(x0.mean((1, 2, 3)), c0[:, 0], atol=1 / 255)


def test_reinit_fraction_matches_probability(gen):
    p, n = 0.3, 4000
    buf = ReplayBuffer(100, reinit_prob=p)
    buf.push(torch.ones(100, 1, 1, 1), torch.zeros(100, 1))
    x0, _ = buf.sample(torch.zeros(n, 1, 1, 1), torch.zeros(n, 1), generator=gen)
    frac = (x0.flatten() < 0.5).double().mean().item()
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 binomial standard errors


def test_fifo_keeps_newest():
    buf = ReplayBuffer(10, label_policy="stored")
    for k in range(5):
        buf.push(torch.zeros(5, 1, 1, 1), torch.full((5, 1), float(k)))
    assert len(buf) == 10
    assert sorted(buf.c[:, 0].tolist()) == [3.0] * 5 + [4.0] * 5


def test_state_round_trip_reproduces_sampling(gen):
    buf = ReplayBuffer(16, reinit_prob=0.2, label_policy="stored")
    for _ in range(3):  # wraps around the ring
        buf.push(torch.rand(7, 3, 4, 4, generator=gen), torch.rand(7, 2, generator=gen))
    tensors, info = buf.state()
    twin = ReplayBuffer(16, reinit_prob=0.2, label_policy="stored")
    twin.load_state(tensors, info)
    fresh, c = torch.rand(9, 3, 4, 4, generator=gen), torch.rand(9, 2, generator=gen)
    a = buf.sample(fresh, c, generator=torch.Generator().manual_seed(5))
    b = twin.sample(fresh, c, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    small = ReplayBuffer(4, label_policy="stored")  # another capacity: newest samples kept
    small.load_state(tensors, info)
    assert len(small) == 4
    newest = buf.c[(buf.ptr - 1) % 16]
    assert (small.c == newest).all(1).any()


def test_validation():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayBuffer(5, reinit_prob=1.5)
    with pytest.raises(ValueError, match="label_policy"):
        ReplayBuffer(5, label_policy="newest")
    buf = ReplayBuffer(5)
    buf.push(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="replay buffer holds"):
        buf.push(torch.zeros(2, 3, 8, 8), torch.zeros(2, 1))

"""Colour-channel permutation (``TrainConfig.augment_channels``): both sides of the contrast
in random colours, the replay buffer left with the sampler's own negatives."""

import itertools

import pytest
import torch
from conftest import SquaresDataset

from conceptebm.train import smoke_config, train
from conceptebm.train.augment import permute_channels


def test_every_channel_order_is_drawn_uniformly(gen):
    n = 6000
    x = torch.tensor([1.0, 2.0, 3.0])[None, :, None, None].expand(n, 3, 2, 2)
    y = permute_channels(x, generator=gen)
    assert torch.equal(y.sort(dim=1).values, x)  # a permutation of each image's channels
    assert (y == y[:, :, :1, :1]).all()  # the same order at every pixel
    orders = [tuple(int(v) for v in row) for row in y[:, :, 0, 0]]
    counts = {p: orders.count(tuple(float(i + 1) for i in p))
              for p in itertools.permutations(range(3))}
    # each of the 6 orders: binomial(6000, 1/6), mean 1000, sd 28.9; 5 sd either way
    assert all(abs(c - 1000) < 5 * 28.9 for c in counts.values()), counts


def test_the_loss_sees_permuted_images_and_the_buffer_the_sampler_own(tmp_path, monkeypatch):
    import conceptebm.train.loop as loop
    from conceptebm.train.buffer import ReplayBuffer

    sampled, pushed, seen = [], [], []
    real_sample, real_push = loop.sample_images, ReplayBuffer.push
    real_permute = loop.permute_channels

    def sample(*a, **k):
        out = real_sample(*a, **k)
        sampled.append(out.clone())
        return out

    def push(self, x, c):
        pushed.append(x.clone())
        return real_push(self, x, c)

    def permute(x, **k):
        out = real_permute(x, **k)
        seen.append((x.clone(), out))
        return out

    monkeypatch.setattr(loop, "sample_images", sample)
    monkeypatch.setattr(ReplayBuffer, "push", push)
    monkeypatch.setattr(loop, "permute_channels", permute)
    cfg = smoke_config(concept="position", image_size=16, augment_channels=True, iterations=2,
                       eval_every=0, out_dir=str(tmp_path / "run"))
    train(cfg, dataset=SquaresDataset(32), progress=False)
    assert len(seen) == 4  # positives and negatives, each iteration
    assert all(torch.equal(a, b) for a, b in zip(sampled, pushed, strict=True))
    neg_in, neg_out = seen[1]
    assert torch.equal(neg_in, sampled[0])  # the negatives go in as sampled ...
    assert not torch.equal(neg_out, neg_in)  # ... and reach the loss recoloured


def test_a_color_ebm_cannot_permute_its_own_concept():
    with pytest.raises(ValueError, match="augment_channels"):
        smoke_config(concept="color", augment_channels=True)

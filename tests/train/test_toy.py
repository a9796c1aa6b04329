"""CD training on a 2-D toy moves the model's samples toward the data.

Two labelled clusters N(m_k, 0.05^2 I) in [0, 1]^2; a small conditional MLP energy is trained
with the package's own pieces (CDObjective, ReplayBuffer, Langevin negatives from the engine).
The statistic is the distance between the mean of samples drawn from fresh uniform noise and
the cluster mean: about 0.25 before training (the mean of uniform noise is the centre), and it
must fall below half of that for both labels. With 500 samples of spread <= 0.3 the Monte Carlo
standard error of a sample mean is <= 0.014, far below the margin; the training path itself
depends on the seed (CD training is not monotone), which this test fixes.
"""

import torch
from torch import nn

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.train import CDObjective, ReplayBuffer, sample_images

LABEL = Concept.categorical("cluster", ["a", "b"])
MEANS = torch.tensor([[0.3, 0.3], [0.7, 0.6]])
SAMPLER = dict(step_size=0.01, noise_scale=0.01)


class MLPEnergy(ConditionalEnergy):
    def __init__(self):
        super().__init__(LABEL)
        self.f = nn.Sequential(nn.Linear(4, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(),
                               nn.Linear(64, 1))

    def energy(self, x, c):
        return self.f(torch.cat([x, c], 1)).squeeze(1)


def sample_mean_distance(net, n=500, steps=40):
    g = torch.Generator().manual_seed(1)
    dist = []
    for k in range(2):
        c = LABEL.encode(torch.full((n,), k))
        x = sample_images(net, c, num_steps=steps, x0=torch.rand(n, 2, generator=g),
                          generator=g, **SAMPLER)
        dist.append((x.mean(0) - MEANS[k]).norm().item())
    return dist


def test_cd_moves_samples_toward_the_data():
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MLPEnergy()
    objective = CDObjective(net, l2=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, betas=(0.0, 0.999))
    buffer = ReplayBuffer(2000, reinit_prob=0.05)
    before = sample_mean_distance(net)
    assert min(before) > 0.2
    for _ in range(200):
        k = torch.randint(0, 2, (64,), generator=g)
        x = (MEANS[k] + 0.05 * torch.randn(64, 2, generator=g)).clamp(0, 1)
        c = LABEL.encode(k)
        x0, c0 = buffer.sample(torch.rand(64, 2, generator=g), c, generator=g)
        x_neg = sample_images(net, c0, num_steps=10, x0=x0, generator=g, **SAMPLER)
        buffer.push(x_neg, c0)
        loss, _ = objective(x, c, x_neg, c0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sample_mean_distance(net)
    for b, a in zip(before, after, strict=True):
        assert a < 0.5 * b, (before, after)

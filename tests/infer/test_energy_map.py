"""energy_map and concept_grid: layout, agreement with direct evaluation, bounded chunks."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.infer import concept_grid, energy_map
from conceptebm.infer.energy_map import box_bounds

F64 = torch.float64
POS = Concept.continuous("position", dim=2, low=-1.0, high=1.0)


class BlobEnergy(ConditionalEnergy):
    """A tiny 'image' energy: a (1, 8, 8) image scored against a Gaussian blob rendered at c.

    Records the largest batch it was called with, to check chunking.
    """

    def __init__(self):
        super().__init__(POS)
        self.max_batch = 0
        self.calls = 0

    def render(self, c):  # (N, 2) -> (N, 1, 8, 8)
        t = torch.linspace(-1, 1, 8, dtype=c.dtype)
        d = (t[None, :, None] - c[:, None, None, 1:2]) ** 2 \
            + (t[None, None, :] - c[:, None, None, 0:1]) ** 2  # rows: c[1], cols: c[0]
        return torch.exp(-d[..., 0] / 0.1)[:, None]

    def energy(self, x, c):
        self.max_batch = max(self.max_batch, x.shape[0])
        self.calls += 1
        return ((x - self.render(c)) ** 2).flatten(1).sum(1)


def test_grid_layout_is_row_major_and_reshapes():
    n = 5
    g = concept_grid(POS, n, dtype=F64)
    v = torch.linspace(-1, 1, n, dtype=F64)
    assert g.shape == (n * n, 2)
    grid2d = g.reshape(n, n, 2)
    for i in range(n):
        for j in range(n):
            assert grid2d[i, j].tolist() == [v[i].item(), v[j].item()]
    assert concept_grid(POS, [3, 4]).shape == (12, 2)
    assert concept_grid(([0.0, -2.0, 1.0], [1.0, 2.0, 3.0]), 2).shape == (8, 3)
    assert concept_grid((0.0, 1.0), 3, dim=1).flatten().tolist() == [0.0, 0.5, 1.0]
    color = Concept.categorical("color", ["red", "green", "blue"])
    assert torch.equal(concept_grid(color), torch.eye(3))


def test_grid_and_bounds_validation():
    with pytest.raises(ValueError, match="scalar bounds do not say the concept's dimension"):
        concept_grid((0.0, 1.0), 4)
    with pytest.raises(ValueError, match="low < high"):
        concept_grid(([0.0, 1.0], [1.0, 1.0]), 4)
    with pytest.raises(ValueError, match="points_per_dim must be a positive int or 2"):
        concept_grid(POS, [3, 0])
    with pytest.raises(ValueError, match="categorical"):
        box_bounds(Concept.categorical("color", ["red", "blue"]))
    with pytest.raises(ValueError, match="finite"):
        box_bounds(([0.0, float("-inf")], [1.0, 1.0]))
    low, high = box_bounds(POS)
    assert low.tolist() == [-1.0, -1.0] and high.tolist() == [1.0, 1.0]


def _direct(cond, x, grid):
    """One (image, grid point) pair at a time."""
    return torch.tensor([[cond(x[b:b + 1], grid[g:g + 1]).item() for g in range(len(grid))]
                         for b in range(len(x))], dtype=F64)


def test_energy_map_equals_direct_computation():
    cond = BlobEnergy()
    x = cond.render(torch.tensor([[0.3, -0.4], [-0.6, 0.1], [0.0, 0.9]], dtype=F64))
    grid = concept_grid(POS, 7, dtype=F64)
    m = energy_map(cond, x, grid, chunk_size=10)
    assert m.shape == (3, 49) and 0 < cond.max_batch <= 10  # bounded chunks
    torch.testing.assert_close(m, _direct(cond, x, grid))
    torch.testing.assert_close(energy_map(cond, x[1], grid), m[1])  # one image -> (G,)
    # views: (B, V, C, H, W), the energies of the views add up (eq. 11)
    views = torch.stack([x, x.flip(0)], dim=1)
    cond.max_batch = 0
    mv = energy_map(cond, views, grid, views=True, chunk_size=7)
    torch.testing.assert_close(mv, m + m.flip(0))
    assert cond.max_batch == 6  # 3 (observation, grid point) pairs x 2 views <= 7


def test_argmin_is_the_known_minimum():
    cond = BlobEnergy()
    n = 21
    v = torch.linspace(-1, 1, n, dtype=F64)
    truth = torch.tensor([[v[14].item(), v[3].item()]], dtype=F64)  # a grid point
    m = energy_map(cond, cond.render(truth)[0], concept_grid(POS, n, dtype=F64))
    i, j = divmod(m.argmin().item(), n)
    assert (i, j) == (14, 3)  # map.reshape(n, n)[i, j] <-> c = (v[i], v[j])
    assert m.reshape(n, n)[14, 3].item() == pytest.approx(0.0, abs=1e-12)


def test_huge_grid_with_small_chunks():
    cond = BlobEnergy()
    x = cond.render(torch.tensor([[0.25, 0.5]], dtype=F64))[0]
    grid = concept_grid(POS, 201, dtype=F64)  # 40401 points
    m = energy_map(cond, x, grid, chunk_size=512)
    assert cond.max_batch == 512 and cond.calls == -(-40401 // 512)
    ref = energy_map(BlobEnergy(), x, grid, chunk_size=10**6)
    torch.testing.assert_close(m, ref)
    torch.testing.assert_close(grid[m.argmin()], torch.tensor([0.25, 0.5], dtype=F64))


def test_energy_map_runs_without_grad_and_validates():
    cond = BlobEnergy()
    x = torch.zeros(1, 8, 8, dtype=F64)
    grid = concept_grid(POS, 3, dtype=F64)
    assert not energy_map(cond, x, grid).requires_grad
    with pytest.raises(ValueError, match=r"x must have shape \(\*event\) or \(B, \*event\)"):
        energy_map(cond, torch.zeros(8, 8), grid)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        energy_map(cond, x, grid, chunk_size=0)
    with pytest.raises(ValueError, match=r"grid must be a \(G, dim\) tensor"):
        energy_map(cond, x, grid[0])
    with pytest.raises(ValueError, match=r"returned shape \(9, 1\)"):
        energy_map(lambda xs, cs: cond(xs, cs)[:, None], x, grid)

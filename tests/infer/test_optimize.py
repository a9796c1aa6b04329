"""map_estimate / concept_energy / map_categorical against analytic minima."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.infer import concept_energy, map_categorical, map_estimate

F64 = torch.float64


class SquaredDistance(ConditionalEnergy):
    """E(x|c) = |x - c|^2 / (2 s^2): the MAP of c given x (inside the box) is x itself."""

    def __init__(self, concept, s=0.2):
        super().__init__(concept)
        self.s = s

    def energy(self, x, c):
        return ((x - c) ** 2).sum(-1) / (2 * self.s**2)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_gaussian_minimum_inside_and_on_the_boundary(optimizer):
    # second target lies outside the box in its first coordinate: the MAP is on the face.
    target = torch.tensor([[0.3, -0.5], [1.4, 0.2], [-0.75, 0.9]], dtype=F64)
    f = lambda c: ((c - target[:, None]) ** 2).sum(-1)  # (B, R, 2) -> (B, R)
    r = map_estimate(f, bounds=([-1, -1], [1, 1]), grid=9, batch_size=3, optimizer=optimizer,
                     steps=200)
    expect = target.clamp(-1, 1)
    assert r.c.shape == (3, 2) and r.energy.shape == (3,)
    assert torch.allclose(r.c.to(F64), expect, atol=1e-4)
    assert r.c[1, 0].item() == 1.0  # exactly on the face, not 0.9999


def test_concept_energy_views_sum():
    pos = Concept.continuous("position", dim=2)
    e = SquaredDistance(pos)
    x = torch.tensor([[[0.2, 0.1], [0.4, -0.1], [0.3, 0.3]]], dtype=F64)  # (B=1, V=3, 2)
    r = map_estimate(concept_energy(e, x, views=True), grid=9, optimizer="lbfgs")
    assert torch.allclose(r.c, x.mean(1), atol=1e-6)  # sum of quadratics: the mean view


def test_map_categorical_enumerates():
    color = Concept.categorical("color", ["red", "green", "blue"])
    e = SquaredDistance(color)
    x = torch.eye(3, dtype=F64)[[2, 0, 1]]
    r = map_categorical(e, x, event_dim=1)
    assert r.index.tolist() == [2, 0, 1] and r.names == ["blue", "red", "green"]

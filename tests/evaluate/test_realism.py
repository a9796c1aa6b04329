"""The Fréchet distance against closed forms, and the realism statistic on real and fake images."""

import math

import pytest
import torch

from conceptebm.datasets import make_dataset
from conceptebm.evaluate import frechet_distance, load_judges, realism


def _gauss(n, mean, cov, seed):
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float64))
    z = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    return torch.as_tensor(mean, dtype=torch.float64) + z @ chol.T


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    # N(0, diag(1, 4)) vs N((1, 2), diag(4, 1)): |dmu|^2 = 5; per axis (s1 - s2)^2 = 1 + 1 -> 7
    a = _gauss(200_000, [0.0, 0.0], [[1.0, 0.0], [0.0, 4.0]], 0)
    b = _gauss(200_000, [1.0, 2.0], [[4.0, 0.0], [0.0, 1.0]], 1)
    # Monte Carlo error of the moments at n = 2e5 is ~0.01 per term: 0.1 is many sigmas
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_handles_non_commuting_covariances():
    # 1-D check of the trace term through a rotation: same spectrum, rotated -> distance from
    # the cross term only; compare with scipy's sqrtm on the population covariances
    scipy_linalg = pytest.importorskip("scipy.linalg")
    c1 = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    c2 = torch.tensor([[1.0, -0.5], [-0.5, 3.0]], dtype=torch.float64)
    cross = scipy_linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    exact = float(torch.trace(c1 + c2) - 2 * float(cross.trace()))
    a, b = _gauss(300_000, [0, 0], c1, 2), _gauss(300_000, [0, 0], c2, 3)
    assert frechet_distance(a, b) == pytest.approx(exact, abs=0.05)


def test_frechet_distance_refuses_mismatched_features():
    with pytest.raises(ValueError, match="must be"):
        frechet_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 2), torch.zeros(5, 2))


def test_renders_sit_at_the_floor_and_noise_far_above_it():
    judges = load_judges()
    real = make_dataset("general", seed=11).batch(torch.arange(600))[0]
    other = make_dataset("general", seed=12).batch(torch.arange(200))[0]
    r_real = realism(other, real, judges=judges)
    r_noise = realism(torch.rand(200, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                      real, judges=judges)
    assert r_real["n"] == r_noise["n"] == 200 and r_real["fid_floor"] == r_noise["fid_floor"]
    # renders of another seed are as far from the reference as the floor set is
    assert r_real["fid"] < 1.5 * r_real["fid_floor"] + 1e-9
    assert r_noise["fid"] > 5 * r_noise["fid_floor"] and math.isfinite(r_noise["fid"])
    with pytest.raises(ValueError, match="at least 2 x 200"):
        realism(other, real[:300], judges=judges)

"""The engine's grid posterior (conceptebm.infer.posterior_grid): refining the cells that hold
the mass gives the full fine grid's intervals at a fraction of its energies, and a sharp
posterior's refined intervals match the Gaussian closed form where the coarse grid's do not."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.infer.posterior_grid import grid_posterior_of, regrid_temperature

Z95 = 1.6448536269514722  # the standard normal's 0.95 quantile


class Reading(torch.nn.Module):
    """Energy of a 2-D reading of sd ``s``: the posterior is N(mean of views, s^2 / V)."""

    concept = Concept.continuous("position", dim=2)

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x, c):
        return ((x - c) ** 2).sum(-1) / (2 * self.s ** 2)


def _views(n=6, v=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 2, generator=g, dtype=torch.float64) * 1.2 - 0.6).expand(n, v, 2)


def test_refined_grid_equals_the_full_fine_grid_with_fewer_energies():
    model, x = Reading(0.05), _views()
    full = grid_posterior_of(model, x, 65, temperature=1.0, event_dim=1)
    refined = grid_posterior_of(model, x, 17, temperature=1.0, refine=4, event_dim=1)
    assert refined.grid.shape == full.grid.shape
    torch.testing.assert_close(refined.grid, full.grid)
    torch.testing.assert_close(refined.interval, full.interval, atol=1e-6, rtol=0)
    assert refined.evaluated < 0.2 * full.evaluated  # 17^2 + the few refined cells
    # regridding a refined posterior keeps its grid and its count
    hot = regrid_temperature(refined, 4.0)
    assert hot.evaluated == refined.evaluated and hot.grid.shape == refined.grid.shape


@pytest.mark.parametrize("views", [1, 4])
def test_a_sharp_posteriors_refined_interval_matches_the_closed_form(views):
    s = 0.04  # sd of the posterior s / sqrt(V): 0.04 or 0.02, against a coarse cell of 0.0645
    model, x = Reading(s), _views(v=views)
    want = 2 * Z95 * s / views ** 0.5  # the 90 % interval's width
    coarse = grid_posterior_of(model, x, 32, temperature=1.0, event_dim=1)
    fine = grid_posterior_of(model, x, 32, temperature=1.0, refine=8, event_dim=1)
    width = fine.interval[:, 1] - fine.interval[:, 0]
    torch.testing.assert_close(width, torch.full_like(width, want), atol=0.04 * want, rtol=0)
    coarse_err = ((coarse.interval[:, 1] - coarse.interval[:, 0]) - want).abs().max()
    assert (width - want).abs().max() < coarse_err  # the coarse cells distort the width


def test_calibrate_temperature_recovers_a_simulated_temperature_on_a_refined_grid():
    from conceptebm.infer.posterior_grid import calibrate_temperature

    # data twice as spread as the energy claims (T = 2) around 400 truths; the posterior's
    # sd (0.02 * sqrt(2) / sqrt(2 views) = 0.02) is a sixth of the coarse cell (0.125)
    g = torch.Generator().manual_seed(3)
    truth = torch.rand(400, 2, generator=g, dtype=torch.float64) * 1.2 - 0.6
    x = truth[:, None] + torch.randn(400, 2, 2, generator=g, dtype=torch.float64) * 0.02 * 2 ** 0.5
    fit = calibrate_temperature(Reading(0.02), x, truth, points=17, refine=8, event_dim=1)
    assert fit["points"] == 17 and fit["refine"] == 8 and fit["n"] == 400 and fit["views"] == 2
    assert abs(fit["temperature"] / 2.0 - 1) < 0.2, fit  # coverage se ~0.01: T within ~10 %
    assert abs(fit["coverage_fit"] - 0.9) < 0.01
    assert fit["evaluated"] < 0.2 * 129 ** 2  # refined only where the mass lies
    width = 2 * Z95 * 0.02 * (fit["temperature"] / 2.0) ** 0.5
    assert abs(fit["width"] / width - 1) < 0.05

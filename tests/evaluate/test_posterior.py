"""Posterior draws as ArviZ data and ArviZ's diagnostics (conceptebm.evaluate.posterior),
against closed forms: batched MALA chains on a Gaussian, an AR(1) chain's ESS, a netCDF
round trip, and the one-line error without arviz."""

import math
import sys

import numpy as np
import pytest
import torch
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy, Gaussian
from conceptebm.evaluate.posterior import (
    ArvizMissing,
    chain_to_arviz,
    diagnose,
    diagnostic_warnings,
    require_arviz,
    to_inference_data,
)
from conceptebm.infer import mala
from conceptebm.scenes import multiview_posterior

az = pytest.importorskip("arviz")


class Reading(ConditionalEnergy):
    """Views are noisy 2-D readings of the position: a Gaussian posterior of sd s / sqrt(V)."""

    def __init__(self, s=0.1):
        super().__init__(Concept.continuous("position", dim=2))
        self.s = s

    def energy(self, x, c):
        return ((x - c) ** 2).sum(-1) / (2 * self.s ** 2)


def test_batched_mala_chains_diagnostics_are_arvizs_on_the_same_draws():
    g = Gaussian(torch.zeros(2, dtype=torch.float64), 1.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 2, generator=gen, dtype=torch.float64) * 2  # over-dispersed starts
    _, res = mala(g, x0, num_steps=1200, step_size=0.5, adapt_steps=200, generator=gen,
                  return_trace=True)
    assert res.trajectory.shape == (1200, 4, 2) and res.step_size_trace.shape == (1200, 4)
    idata = chain_to_arviz(res, name="c", warmup=200, coords=["x", "y"])
    assert dict(idata.posterior["c"].sizes) == {"chain": 4, "draw": 1000, "c_dim": 2}
    assert {"energy", "lp", "acceptance_rate", "step_size", "accepted"} <= set(
        idata.sample_stats.data_vars)
    d = diagnose(idata, "c")
    draws = res.trajectory[200:].transpose(0, 1).numpy()  # (chains, draws, 2)
    direct = az.convert_to_dataset(draws)  # ArviZ on the same numbers, nothing of ours
    np.testing.assert_allclose(d["rhat"], az.rhat(direct)["x"].values)
    np.testing.assert_allclose(d["ess_bulk"], az.ess(direct, method="bulk")["x"].values)
    np.testing.assert_allclose(d["ess_tail"], az.ess(direct, method="tail")["x"].values)
    np.testing.assert_allclose(d["mcse_mean"], az.mcse(direct, method="mean")["x"].values)
    # and an independent implementation (Pyro's split R-hat and ESS) on the Gaussian agrees
    t = torch.as_tensor(draws)
    pyro_rhat = split_gelman_rubin(t, chain_dim=0, sample_dim=1)
    pyro_ess = effective_sample_size(t, chain_dim=0, sample_dim=1)
    assert (torch.tensor(d["rhat"]) - pyro_rhat).abs().max() < 0.01
    assert ((torch.tensor(d["ess_bulk"]) / pyro_ess).log().abs() < 0.25).all()
    assert max(d["rhat"]) < 1.01 and min(d["ess_bulk"]) > 400
    assert not diagnostic_warnings(d, ["x", "y"])
    # the energy stat is the energy at each draw
    e = idata.sample_stats["energy"].values  # (4, 1000)
    np.testing.assert_allclose(e, 0.5 * (draws ** 2).sum(-1), rtol=1e-6)


def test_ess_of_an_ar1_chain_is_its_formula_within_monte_carlo_error():
    rho, chains, n, reps = 0.7, 4, 2000, 24
    expect = chains * n * (1 - rho) / (1 + rho)  # the AR(1) integrated autocorrelation time
    rng = np.random.default_rng(0)
    est = []
    for _ in range(reps):
        z = rng.standard_normal((chains, n))
        x = np.empty_like(z)
        x[:, 0] = z[:, 0]  # stationary start: var 1
        for t in range(1, n):
            x[:, t] = rho * x[:, t - 1] + math.sqrt(1 - rho ** 2) * z[:, t]
        idata = to_inference_data(torch.as_tensor(x)[..., None], "c")
        est.append(diagnose(idata, "c")["ess_bulk"][0])
    est = np.asarray(est)
    se = est.std(ddof=1) / math.sqrt(reps)
    assert abs(est.mean() - expect) < 3 * se + 0.02 * expect, (est.mean(), expect, se)
    assert (np.abs(est - expect) < 5 * est.std(ddof=1) + 0.05 * expect).all()


def test_stuck_chain_is_flagged_by_name():
    gen = torch.Generator().manual_seed(1)
    draws = torch.randn(4, 500, 2, generator=gen, dtype=torch.float64)
    draws[0, :, 1] += 3.0  # one chain in another basin, in y only
    d = diagnose(to_inference_data(draws, "position", coords=["x", "y"]), "position")
    lines = diagnostic_warnings(d, ["x", "y"], what="position ")
    assert len(lines) == 1 and lines[0].startswith("position y: R-hat"), lines


def test_posterior_to_arviz_round_trips_through_netcdf(tmp_path):
    x = torch.tensor([[0.3, -0.2], [0.4, -0.1]], dtype=torch.float64)
    post = multiview_posterior(Reading(), x, num_samples=100, warmup_steps=100, seed=0,
                               check_range=False, event_dim=1, observed=["a.png", "b.png"])
    idata = post.to_arviz()
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data"}
    assert dict(idata.posterior["position"].sizes) == {"chain": 4, "draw": 100,
                                                       "position_dim": 2}
    assert list(idata.posterior["position_dim"].values) == ["x", "y"]
    path = tmp_path / "post.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_array_equal(back.posterior["position"].values,
                                  post.draws.numpy())
    np.testing.assert_array_equal(back.sample_stats["step_size"].values,
                                  post.stats["step_size"].numpy())
    assert list(back.observed_data["image"].values) == ["a.png", "b.png"]
    assert back.posterior.attrs["sampler"] == "mala"
    np.testing.assert_allclose(az.rhat(back)["position"].values, post.diagnostics["rhat"])


def test_nuts_posterior_carries_divergences_and_tree_depth():
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    post = multiview_posterior(Reading(), x, num_samples=50, warmup_steps=50, seed=0,
                               check_range=False, event_dim=1, sampler="nuts", chains=2)
    stats = post.to_arviz().sample_stats
    assert {"diverging", "tree_depth", "step_size", "acceptance_rate", "energy", "lp"} <= set(
        stats.data_vars)
    assert stats["tree_depth"].shape == (2, 50) and int(stats["tree_depth"].min()) >= 1
    assert post.diagnostics["divergences"] == int(stats["diverging"].sum())


def test_without_arviz_one_line_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)  # import arviz now fails
    with pytest.raises(ArvizMissing) as err:
        require_arviz()
    assert "\n" not in str(err.value) and "conceptebm[posterior]" in str(err.value)
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    # the posterior still comes, with Pyro's diagnostics, and says whose they are
    post = multiview_posterior(Reading(), x, num_samples=50, warmup_steps=50, seed=0,
                               check_range=False, event_dim=1)
    assert post.diagnostics["source"].startswith("pyro")
    with pytest.raises(ArvizMissing):
        post.to_arviz()


def test_nuts_progress_bar_shows_divergences():
    import pyro
    import pyro.distributions as dist

    from conceptebm.infer.pyro import energy_factor, nuts_posterior

    def model():
        c = pyro.sample("c", dist.Uniform(-1., 1.).expand([2]).to_event(1))
        energy_factor("ebm", Gaussian(torch.tensor([0.3, -0.2]), 0.1), c, event_dim=1)

    mcmc = nuts_posterior(model, num_samples=10, warmup_steps=10)
    shown = mcmc.kernel.logging()
    assert {"step size", "acc. prob", "div."} <= set(shown) and shown["div."] >= 0


def test_multi_start_map_as_arviz_round_trips(tmp_path):
    from conceptebm.evaluate.posterior import map_to_arviz
    from conceptebm.infer import map_estimate
    from conceptebm.infer.optimize import ConceptProblem

    target = torch.tensor([[0.3, -0.5], [0.9, 1.0]])
    problem = ConceptProblem(lambda c: ((c - target[:, None]) ** 2).sum(-1), batch_size=2,
                             dim=2, bounds=([-1, -1], [1, 1]))
    r = map_estimate(problem, grid=5, restarts=3, steps=50)
    idata = map_to_arviz(r, name="position", coords=["x", "y"], observed=["a.png", "b.png"])
    path = tmp_path / "map.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert dict(back.map_starts["position"].sizes) == {"observation": 2, "start": 3,
                                                       "position_dim": 2}
    np.testing.assert_allclose(back.map["position"].values, r.c.numpy())
    np.testing.assert_allclose(back.map_starts["energy"].values, r.candidate_energy.numpy())
    assert list(back.observed_data["image"].values) == ["a.png", "b.png"]

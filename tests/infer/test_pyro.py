"""The Pyro glue against closed-form targets (float64, fixed seeds, tolerances from MC error).

Statistical tests run many independent chains (the chain plate) and use only their final
states: i.i.d. draws once the start is forgotten (contraction factors are given in comments).
Tolerances are Z = 5 standard errors. NUTS has no generator argument, so its test seeds the
global RNG inside ``torch.random.fork_rng`` (the global state is restored afterwards).
All tests also pass with every seed shifted by 100, 200, ..., 600 (checked once by hand).
"""

import doctest
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import HMC, MCMC
from pyro.infer.autoguide.initialization import init_to_value
from pyro.infer.mcmc.util import initialize_model
from scipy.stats import truncnorm
from torch import nn

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy, Energy, Gaussian
from conceptebm.infer import langevin, mala
from conceptebm.infer.pyro import (
    LangevinKernel,
    MALAKernel,
    ModelPotential,
    energy_factor,
    nuts_posterior,
    pyro_map,
    run_kernel,
)
from conceptebm.infer.pyro import factor as pyro_glue
from conceptebm.infer.pyro import inference as pyro_inference
from conceptebm.infer.pyro import kernels as pyro_kernels
from conceptebm.infer.pyro import potential as pyro_potential

F64 = torch.float64
Z = 5.0
MU = torch.tensor([1.0, -2.0], dtype=F64)
SIGMA = torch.tensor([[1.0, 0.8], [0.8, 2.0]], dtype=F64)
REAL2 = dist.ImproperUniform(dist.constraints.real, (), (2,))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_gaussian_moments(x, mean, cov):
    """Mean and covariance of i.i.d. Gaussian draws ``x (n, d)`` against the closed form."""
    n = x.shape[0]
    se_mean = (torch.diag(cov) / n).sqrt()
    assert ((x.mean(0) - mean).abs() < Z * se_mean).all(), (x.mean(0), mean)
    emp = torch.cov(x.T)
    # Var of a sample covariance entry of a Gaussian: (S_ii S_jj + S_ij^2) / n.
    se_cov = ((torch.diag(cov)[:, None] * torch.diag(cov)[None] + cov**2) / n).sqrt()
    assert ((emp - cov).abs() < Z * se_cov).all(), (emp, cov)


def gaussian_model(chains):
    """A correlated 2-D Gaussian written as an energy factor on a flat (improper) prior."""
    with pyro.plate("chains", chains):
        x = pyro.sample("x", REAL2)
        energy_factor("ebm", Gaussian(MU, SIGMA), x, event_dim=1)


class ViewEnergy(ConditionalEnergy):
    """E(x | c) = |x - c|^2 / (2 s^2): a view x is the concept plus N(0, s^2) noise."""

    def __init__(self, dim=2, s=0.3):
        super().__init__(Concept.continuous("pos", dim=dim, low=-1.0, high=1.0))
        self.s, self.calls = s, []

    def energy(self, x, c):
        self.calls.append((tuple(x.shape), tuple(c.shape)))
        return ((x - c) ** 2).sum(-1) / (2 * self.s**2)


def concept_model(net, views, particles=1):
    """p(c | views) with c ~ U([-1, 1]^dim): particles (dim -2) x views (dim -1)."""
    dim = views.shape[-1]
    with pyro.plate("particles", particles, dim=-2):
        box = dist.Uniform(views.new_tensor(-1.0), views.new_tensor(1.0))
        c = pyro.sample("c", box.expand([dim]).to_event(1))  # (P, 1, dim)
        with pyro.plate("views", views.shape[0], dim=-1):
            energy_factor("ebm", net, views, c, event_dim=1)  # (P, V)


# ------------------------------------------------------------------ energy_factor
def test_energy_factor_flattens_broadcast_plates_and_reshapes_back():
    net = ViewEnergy()
    views = torch.randn(4, 2, dtype=F64, generator=_gen())  # (V, 2)
    c = torch.rand(3, 1, 2, dtype=F64, generator=_gen(1))  # (P, 1, 2)
    tr = poutine.trace(poutine.condition(concept_model, data={"c": c})).get_trace(
        net, views, particles=3)
    assert net.calls == [((12, 2), (12, 2))]  # one batched call over P * V pairs
    tr.compute_log_prob()
    lp = tr.nodes["ebm"]["log_prob"]  # (P, V)
    want = ((views[None] - c) ** 2).sum(-1) / (2 * 0.3**2)  # (P, V)
    torch.testing.assert_close(lp, -want)


def test_factor_of_shape_b1_inside_plate_b_raises():
    g = Gaussian(torch.zeros(2, dtype=F64), 1.0)

    def model():
        with pyro.plate("batch", 5):
            x = torch.zeros(5, 1, 2, dtype=F64)  # (B, 1, 2): would broadcast to (B, B)
            energy_factor("ebm", g, x, event_dim=1)

    with pytest.raises(ValueError, match=r"\(5, 1\).*enclosing plates give \(5,\)"):
        poutine.trace(model).get_trace()

    def no_plate():
        energy_factor("ebm", g, torch.zeros(5, 2, dtype=F64), event_dim=1)

    with pytest.raises(ValueError, match="declare a pyro.plate"):
        poutine.trace(no_plate).get_trace()


def test_energy_factor_argument_errors():
    net, g, x = ViewEnergy(), Gaussian(torch.zeros(2), 1.0), torch.zeros(2)
    with pytest.raises(ValueError, match="conditional; pass its concept value as c"):
        energy_factor("e", net, x, event_dim=1)
    with pytest.raises(ValueError, match="unconditional but c was given"):
        energy_factor("e", g, x, torch.zeros(2), event_dim=1)
    with pytest.raises(ValueError, match="event_dim must be an integer >= 0"):
        energy_factor("e", g, x, event_dim=-1)


# ------------------------------------------------------------------ potentials
def test_potential_sums_to_pyro_potential_in_both_spaces():
    views = torch.randn(3, 2, dtype=F64, generator=_gen()) * 0.3
    args = (ViewEnergy(), views, 4)
    pot_u = ModelPotential(concept_model, args, space="unconstrained")
    _, pe, _, _ = initialize_model(concept_model, args)
    assert pot_u.chain_plate == "particles" and pot_u.initial.shape == (4, 1, 2)
    e = pot_u(pot_u.initial)  # (4,)
    torch.testing.assert_close(e.sum(), pe({"c": pot_u.initial}))
    # Constrained: -log_prob_sum of the conditioned model minus the flat prior's constant.
    pot_c = ModelPotential(concept_model, args)
    c = pot_u.constrained(pot_u.initial)["c"]
    tr = poutine.trace(poutine.condition(concept_model, data={"c": c})).get_trace(*args)
    log_box = 4 * 2 * math.log(2.0)  # U([-1, 1]^2) density 1/4 per particle
    torch.testing.assert_close(pot_c(c).sum(), -tr.log_prob_sum() - log_box)
    assert pot_c.bounds == (-1.0, 1.0) and pot_u.bounds is None


def test_potential_per_chain_honours_scale_and_mask_on_energy_factors():
    # The potential reads an energy_factor's E from its site (not Pyro's Unit log-prob); a
    # poutine.scale or poutine.mask around the factor must still weigh it as Pyro does.
    views = torch.randn(3, 2, dtype=F64, generator=_gen(1)) * 0.3
    keep = torch.tensor([True, False, True])

    def model(net, views, particles):
        with pyro.plate("particles", particles, dim=-2):
            box = dist.Uniform(views.new_tensor(-1.0), views.new_tensor(1.0))
            c = pyro.sample("c", box.expand([2]).to_event(1))
            with pyro.plate("views", 3, dim=-1), poutine.scale(scale=0.5), \
                    poutine.mask(mask=keep):
                energy_factor("ebm", net, views, c, event_dim=1)
            pyro.sample("prior", dist.Normal(c.new_zeros(()), 1.0).expand([2]).to_event(1),
                        obs=c)

    args = (ViewEnergy(), views, 4)
    pot = ModelPotential(model, args)
    c = torch.rand(4, 1, 2, dtype=F64, generator=_gen(2)) * 2 - 1
    tr = poutine.trace(poutine.condition(model, data={"c": c})).get_trace(*args)
    tr.compute_log_prob()
    want = -(tr.nodes["ebm"]["log_prob"].sum(-1) + tr.nodes["prior"]["log_prob"][:, 0])
    torch.testing.assert_close(pot(c), want)
    assert not torch.equal(want, -(tr.nodes["prior"]["log_prob"][:, 0] +  # the mask matters
                                   tr.nodes["ebm"]["fn"].log_prob(c.new_empty(4, 3, 0)).sum(-1)))


def test_potential_errors_are_loud():
    with pytest.raises(ValueError, match="pass init="):
        ModelPotential(gaussian_model, (4,))  # an improper prior cannot be sampled
    with pytest.raises(ValueError, match="latent=\\['y'\\]"):
        ModelPotential(gaussian_model, (4,), latent=["y"], init={"x": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="chain_plate='views' must enclose"):
        ModelPotential(concept_model, (ViewEnergy(), torch.zeros(3, 2)), chain_plate="views")
    with pytest.raises(ValueError, match="space must be one of"):
        ModelPotential(gaussian_model, (4,), space="logit")


# ------------------------------------------------------------------ kernels via MCMC
def _mcmc_final(kernel, chains, warmup, seed):
    x0 = 3 * torch.randn(chains, 2, dtype=F64, generator=_gen(seed + 1))
    mcmc = MCMC(kernel, num_samples=5, warmup_steps=warmup, initial_params={"x": x0},
                disable_progbar=True)
    mcmc.run(chains)
    return mcmc, mcmc.get_samples()["x"][-1]  # (chains, 2): the final state of every chain


def test_mala_kernel_through_mcmc_matches_gaussian():
    # Per-chain adaptation to accept 0.574 gives steps ~1; 200 steps forget the N(0, 9) start.
    kernel = MALAKernel(gaussian_model, step_size=0.5, generator=_gen(0))
    mcmc, x = _mcmc_final(kernel, 3000, 200, 0)
    assert_gaussian_moments(x, MU, SIGMA)
    acc = mcmc.diagnostics()["acceptance rate"]["chain 0"]
    assert 0.4 < acc < 0.8, acc


@pytest.mark.parametrize("noise_scale", [None, 0.5])
def test_langevin_kernel_through_mcmc_hits_exact_discretised_law(noise_scale):
    # x' = x - a P (x - mu) + n N(0, I) with P = SIGMA^-1 is a Gaussian AR(1); per eigenvalue
    # v of SIGMA its stationary variance is n^2 / (1 - (1 - a / v)^2). ULA (eq. 3): a = l / 2,
    # n^2 = l. Contraction per step 1 - a / 2.44 <= 0.96, so 250 steps forget the start.
    step = 0.2
    a, n2 = (step / 2, step) if noise_scale is None else (step, noise_scale**2)
    v, u = torch.linalg.eigh(SIGMA)
    cov = u @ torch.diag(n2 / (1 - (1 - a / v) ** 2)) @ u.T
    kernel = LangevinKernel(gaussian_model, step_size=step, noise_scale=noise_scale,
                            generator=_gen(3))
    _, x = _mcmc_final(kernel, 3000, 250, 3)
    assert_gaussian_moments(x, MU, cov)
    assert not torch.allclose(cov, SIGMA, atol=0.05)  # the discretisation bias is visible


@pytest.mark.parametrize("space", ["constrained", "unconstrained"])
def test_mala_kernel_on_a_box_targets_the_truncated_density(space):
    # N(0.7, 0.25^2) truncated to [-1, 1]: reject at the faces (constrained) or the logit
    # transform with its Jacobian (unconstrained) must give the same truncated law.
    def model(chains):
        with pyro.plate("chains", chains):
            c = pyro.sample("c", dist.Uniform(torch.tensor(-1.0, dtype=F64), 1.0)
                            .expand([1]).to_event(1))
            energy_factor("e", Gaussian(torch.tensor([0.7], dtype=F64), 0.25**2), c,
                          event_dim=1)

    chains = 3000
    init = {"c": torch.zeros(chains, 1, dtype=F64)}  # c = 0 is z = 0 in logit space too
    kernel = MALAKernel(model, step_size=0.05, space=space, generator=_gen(5))
    out = run_kernel(kernel, 150, chains, warmup_steps=150, initial_params=init)
    c = out["c"][:, 0]
    law = truncnorm((-1 - 0.7) / 0.25, (1 - 0.7) / 0.25, loc=0.7, scale=0.25)
    se = math.sqrt(law.var() / chains)
    assert abs(c.mean().item() - law.mean()) < Z * se, (c.mean(), law.mean())
    assert c.min() >= -1 and c.max() <= 1


@pytest.mark.parametrize("warmup", [0, 20])
def test_mala_kernel_is_the_engine_mala(warmup):
    # Same start, generator seed and step (or step adaptation over the warmup): the kernel and
    # infer.mala draw the same noise and uniforms in the same order, so the chains coincide.
    g = Gaussian(MU, SIGMA)
    x0 = torch.randn(64, 2, dtype=F64, generator=_gen(7))
    direct, info = mala(g, x0, num_steps=30 + warmup, step_size=0.01, adapt_steps=warmup,
                        generator=_gen(8), return_info=True)
    kernel = MALAKernel(gaussian_model, step_size=0.01, adapt_step_size=warmup > 0,
                        generator=_gen(8))
    out = run_kernel(kernel, 30, 64, warmup_steps=warmup, initial_params={"x": x0})
    torch.testing.assert_close(out["x"], direct, rtol=0, atol=1e-10)
    if warmup:
        torch.testing.assert_close(kernel._eps, info.step_size)
        assert kernel.diagnostics()["step size"] > 0.3  # the search climbed from 0.01
    else:
        assert kernel.diagnostics()["acceptance rate"] == pytest.approx(
            info.accept_rate.mean().item())
    # potential_fn form: a plain Energy as the target, no Pyro model at all.
    k2 = MALAKernel(potential_fn=g, step_size=0.01, adapt_step_size=warmup > 0,
                    generator=_gen(8))
    out2 = run_kernel(k2, 30, warmup_steps=warmup, initial_params={"x": x0})
    torch.testing.assert_close(out2["x"], direct)


class IsoEnergy(Energy):
    def energy(self, x):
        return 0.5 * (x**2).sum(-1) / 0.1**2  # N(0, 0.1^2 I)


def test_per_chain_accept_beats_pyro_global_accept_on_a_batch():
    # 64 chains of a 768-dim N(0, 0.01 I) started in equilibrium; MALA step l = 1.1e-3, i.e.
    # h = l / sigma^2 = 0.11, for which a chain accepts with probability about
    # 2 Phi(-h^1.5 sqrt(d) / 8) = 0.90. Pyro's HMC with one leapfrog step of size sqrt(l) makes
    # the same proposal (Pyro's own MALA-style proposal) but accepts or rejects all 64 chains at
    # once on the summed log-ratio: about 2 Phi(-8 * 0.126) = 0.31 (sd 0.065 over 50 decisions).
    def model():
        with pyro.plate("chains", 64):
            x = pyro.sample("x", dist.ImproperUniform(dist.constraints.real, (), (768,)))
            energy_factor("ebm", IsoEnergy(), x, event_dim=1)

    x0 = 0.1 * torch.randn(64, 768, dtype=F64, generator=_gen(9))
    ours = MALAKernel(model, step_size=1.1e-3, adapt_step_size=False, generator=_gen(10))
    run_kernel(ours, 50, initial_params={"x": x0})
    hmc = HMC(model, step_size=1.1e-3**0.5, num_steps=1, adapt_step_size=False,
              max_plate_nesting=1, init_strategy=init_to_value(values={"x": x0}))
    with torch.random.fork_rng():
        pyro.set_rng_seed(0)
        mcmc = MCMC(hmc, num_samples=50, warmup_steps=0, initial_params={"x": x0},
                    disable_progbar=True)
        mcmc.run()
    per_chain = ours.diagnostics()["acceptance rate"]
    global_ = mcmc.diagnostics()["acceptance rate"]["chain 0"]
    assert per_chain > 0.85 and global_ < 0.6, (per_chain, global_)


# ------------------------------------------------------------------ generation loop
class TinyConvEnergy(ConditionalEnergy):
    def __init__(self):
        super().__init__(Concept.continuous("pos", dim=2))
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.film = nn.Linear(2, 4)
        self.head = nn.Linear(4 * 4 * 4, 1)
        self.requires_grad_(False)

    def energy(self, x, c):
        h = torch.nn.functional.silu(self.conv(x) * (1 + self.film(c))[:, :, None, None])
        return self.head(h.flatten(1))[:, 0]


def image_model(net, c):
    """Generation: images in pixel space with a U(0, 1) prior; the kernel clamps to [0, 1]."""
    with pyro.plate("images", c.shape[0]):
        x = pyro.sample("x", dist.Uniform(0.0, 1.0).expand([3, 8, 8]).to_event(3))
        energy_factor("ebm", net, x, c, event_dim=3)


def test_run_kernel_generation_is_the_engine_langevin():
    net = TinyConvEnergy()
    c = torch.rand(6, 2, generator=_gen(0)) * 2 - 1
    x0 = torch.rand(6, 3, 8, 8, generator=_gen(1))
    kernel = LangevinKernel(image_model, step_size=10.0, noise_scale=0.005, generator=_gen(2))
    out = run_kernel(kernel, 15, net, c, initial_params={"x": x0})["x"]
    assert kernel.bounds == (0.0, 1.0) and out.min() >= 0 and out.max() <= 1
    direct = langevin(net.given(c), x0, num_steps=15, step_size=10.0, noise_scale=0.005,
                      bounds=(0, 1), generator=_gen(2))
    torch.testing.assert_close(out, direct)
    assert net(out, c).mean() < net(x0, c).mean()  # the chains moved downhill
    # unadjusted steps accept every chain; a step that is not finite raises instead
    assert kernel.diagnostics()["acceptance rate"] == 1.0
    assert kernel.diagnostics()["nonfinite"] == 0 and kernel.logging()["acc. prob"] == "1.000"
    fresh = LangevinKernel(image_model, step_size=10.0, noise_scale=0.005)
    fresh.setup(0, net, c)
    assert fresh.diagnostics()["acceptance rate"] == 0.0  # no step taken yet


# ------------------------------------------------------------------ concept inference
def test_map_has_no_jacobian_bias_near_the_boundary():
    # Five views of an object at 0.93, s = 0.08: the energy's argmin is exactly 0.93. The
    # potential of initialize_model adds -log|J| of the logit transform, whose minimum in c
    # solves (c - 0.93) / (s^2 / 5) = -2c / (1 - c^2), c ~ 0.912: biased toward the centre.
    net = ViewEnergy(dim=1, s=0.08)
    views = torch.full((5, 1), 0.93, dtype=F64)
    est = pyro_map(concept_model, net, views, grid=21, steps=200)
    assert est.values["c"].shape == (1, 1, 1)
    assert abs(est.values["c"].item() - 0.93) < 1e-3
    _, pe, tf, _ = initialize_model(concept_model, (net, views))
    u = torch.zeros(1, 1, 1, dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS([u], line_search_fn="strong_wolfe", max_iter=100)

    def closure():
        opt.zero_grad()
        loss = pe({"c": u})
        loss.backward()
        return loss

    opt.step(closure)
    biased = tf["c"].inv(u.detach()).item()
    assert 0.905 < biased < 0.92, biased


def test_map_is_batched_over_the_chain_plate():
    # One concept per observation: the MAP of |x_b - c_b|^2 on [-1, 1] is x_b clipped to the
    # box, so the third observation's answer lies exactly on the face.
    def model(net, x):
        with pyro.plate("obs", x.shape[0]):
            box = dist.Uniform(x.new_tensor(-1.0), x.new_tensor(1.0))
            c = pyro.sample("c", box.expand([1]).to_event(1))  # (B, 1)
            energy_factor("ebm", net, x, c, event_dim=1)

    x = torch.tensor([[-0.4], [0.25], [1.3]], dtype=F64)
    est = pyro_map(model, ViewEnergy(dim=1), x, grid=9, restarts=2, optimizer="lbfgs")
    torch.testing.assert_close(est.values["c"], x.clamp(-1, 1), atol=1e-4, rtol=0)
    assert est.result.candidates.shape == (3, 2, 1) and est.energy.shape == (3,)


def test_nuts_on_a_concept_posterior_matches_closed_form():
    # p(c | views) ∝ prod_v N(x_v; c, s^2 I) on U([-1, 1]^2): N(mean of views, s^2 / V)
    # truncated 5 sd away from the faces, i.e. Gaussian to ~1e-7.
    s, nv = 0.3, 5
    views = torch.tensor([0.2, -0.3], dtype=F64) + s * torch.randn(nv, 2, dtype=F64,
                                                                   generator=_gen(4))
    mean, sd = views.mean(0), s / math.sqrt(nv)
    with torch.random.fork_rng():
        pyro.set_rng_seed(0)
        mcmc = nuts_posterior(concept_model, ViewEnergy(s=s), views, num_samples=300,
                              warmup_steps=150)
    c = mcmc.get_samples()["c"][:, 0, 0]  # (300, 2)
    ess = pyro.ops.stats.effective_sample_size(c[None]).clamp(min=10)  # (2,)
    assert ((c.mean(0) - mean).abs() < Z * sd / ess.sqrt()).all(), (c.mean(0), mean, ess)
    assert ((c.std(0) / sd - 1).abs() < Z / (2 * ess).sqrt()).all(), (c.std(0), sd, ess)


def test_docstring_examples_run():
    for module in (pyro_glue, pyro_potential, pyro_kernels, pyro_inference):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__

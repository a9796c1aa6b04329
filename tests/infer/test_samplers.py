"""Samplers against closed-form targets (float64, fixed seeds, tolerances from MC error).

Every statistical test runs many independent chains and looks only at their final states,
which are then i.i.d. draws from the chain's law after ``num_steps``; the step counts are
long enough that the start is forgotten (the contraction factor is given where it is short).
Tolerances are Z standard errors of the estimator, Z = 5 unless noted, so a test that fails
signals a real discrepancy, not bad luck. All tests also pass with the seeds shifted by
100, 200, ..., 800 (checked once by hand).
"""

import math

import pytest
import torch
from scipy.stats import norm

from conceptebm.energies import Energy, Gaussian, Not, Or
from conceptebm.infer import langevin, langevin_step, mala, mala_step, ula_step
from conceptebm.infer.samplers import LangevinState, apply_bounds, check_bounds, init_state

F64 = torch.float64
Z = 5.0


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _gauss(mean, cov):
    return Gaussian(torch.tensor(mean, dtype=F64), torch.tensor(cov, dtype=F64))


def assert_mean(x, mean, var, what=""):
    """Sample mean of i.i.d. ``x (n,)`` within Z standard errors sqrt(var / n) of ``mean``."""
    se = math.sqrt(var / x.shape[0])
    assert abs(x.mean().item() - mean) < Z * se, (what, x.mean().item(), mean, se)


def assert_var(x, var, what=""):
    """Sample variance of i.i.d. Gaussian ``x (n,)`` within Z * var * sqrt(2 / n) of ``var``."""
    se = var * math.sqrt(2 / x.shape[0])
    assert abs(x.var().item() - var) < Z * se, (what, x.var().item(), var, se)


def assert_gaussian_moments(x, mean, cov):
    """Mean and covariance of i.i.d. Gaussian draws ``x (n, d)`` against the closed form."""
    n = x.shape[0]
    mean, cov = torch.as_tensor(mean, dtype=F64), torch.as_tensor(cov, dtype=F64)
    se_mean = (torch.diag(cov) / n).sqrt()
    assert ((x.mean(0) - mean).abs() < Z * se_mean).all(), (x.mean(0), mean)
    emp = torch.cov(x.T)
    # Var of a sample covariance entry of a Gaussian: (S_ii S_jj + S_ij^2) / n.
    se_cov = ((torch.diag(cov)[:, None] * torch.diag(cov)[None] + cov**2) / n).sqrt()
    assert ((emp - cov).abs() < Z * se_cov).all(), (emp, cov)


# ------------------------------------------------------------- step conventions (eq. 3)
def test_ula_hits_its_exact_stationary_variance():
    # E = x^2 / (2 s^2); eq. (3) x' = x - (l/2) x / s^2 + N(0, l) is AR(1) with coefficient
    # a = 1 - l / (2 s^2) and stationary variance l / (1 - a^2). With l = 0.5, s = 1 that is
    # 1.1429, 17 standard errors away from the target 1.0 and from the other conventions
    # (x - l g + N(0, 2l): 1.333; x - (l/2) g + N(0, 2l): 2.29).
    s2, step = 1.0, 0.5
    expect = step / (1 - (1 - step / (2 * s2)) ** 2)
    x0 = torch.randn(10000, 4, generator=_gen(1), dtype=F64)
    x = langevin(_gauss([0.0] * 4, s2), x0, num_steps=80, step_size=step, generator=_gen(2))
    assert_var(x.flatten(), expect, "ULA")  # 4 independent coordinates, 40000 draws
    assert_mean(x.flatten(), 0.0, expect)


def test_ula_per_chain_step_sizes():
    # One (chains,) tensor of step sizes: each half of the chains has its own AR(1) law.
    steps = torch.cat([torch.full((5000,), 0.2), torch.full((5000,), 0.8)]).to(F64)
    x0 = torch.randn(10000, 2, generator=_gen(3), dtype=F64)
    x = langevin(_gauss([0.0, 0.0], 1.0), x0, num_steps=120, step_size=steps,
                 generator=_gen(4))
    for half, step in ((x[:5000], 0.2), (x[5000:], 0.8)):
        assert_var(half.flatten(), step / (1 - (1 - step / 2) ** 2), f"step {step}")


def test_decoupled_langevin_step_stationary_variance():
    # x' = x - a x / s^2 + b N(0, 1): variance b^2 / (1 - (1 - a / s^2)^2) = 0.25 here,
    # not the target's 1: the training sampler does not target exp(-E).
    a, b, s2 = 0.2, 0.3, 1.0
    expect = b**2 / (1 - (1 - a / s2) ** 2)
    x0 = torch.randn(10000, 4, generator=_gen(5), dtype=F64)
    x = langevin(_gauss([0.0] * 4, s2), x0, num_steps=120, step_size=a, noise_scale=b,
                 generator=_gen(6))
    assert_var(x.flatten(), expect, "decoupled")


# ------------------------------------------------------------------------------ MALA
@pytest.mark.parametrize("grad_clip", [None, 0.5])
def test_mala_recovers_a_correlated_gaussian(grad_clip):
    # Clipping the drift changes the proposal at both ends of the MH ratio: still exact.
    mean, cov = [1.0, -2.0], [[1.0, 0.8], [0.8, 2.0]]
    x0 = torch.randn(4000, 2, generator=_gen(7), dtype=F64)
    x, info = mala(_gauss(mean, cov), x0, num_steps=250, step_size=0.5, generator=_gen(8),
                   grad_clip=grad_clip, return_info=True)
    assert_gaussian_moments(x, mean, cov)
    assert info.accept_rate.mean() > 0.5


def test_and_of_two_gaussians_samples_the_product():
    a, b = _gauss([1.0, 0.0], [[1.0, 0.3], [0.3, 0.5]]), _gauss([-1.0, 1.0], [2.0, 1.0])
    prec = a.precision + b.precision  # eq. (4): a product of Gaussians is Gaussian
    cov = torch.linalg.inv(prec)
    mean = cov @ (a.precision @ a.mean + b.precision @ b.mean)
    x0 = torch.randn(4000, 2, generator=_gen(9), dtype=F64)
    x = mala(a & b, x0, num_steps=250, step_size=0.3, generator=_gen(10))
    assert_gaussian_moments(x, mean, cov)


def test_grounded_not_pushes_mass_away():
    # E = (x - 0)^2 / 2 - 0.5 (x - 1)^2 / 2: precision 1 - 0.5 = 0.5, mean (0 - 0.5) / 0.5 = -1
    # (away from the negated mode at +1), variance 2.
    b, a = _gauss([0.0], 1.0), _gauss([1.0], 1.0)
    x0 = torch.randn(4000, 1, generator=_gen(11), dtype=F64)
    x = mala(b & Not(a, alpha=0.5), x0, num_steps=300, step_size=1.0, generator=_gen(12))
    assert_mean(x.flatten(), -1.0, 2.0, "mean")
    assert_var(x.flatten(), 2.0, "var")


def _frac_right(x):
    return (x > 0).double().mean().item()


@pytest.mark.parametrize(
    ("sd", "log_partitions", "weights"),
    [
        ((0.7, 0.7), None, (0.5, 0.5)),  # equal widths: half the mass on each side
        ((0.5, 1.0), None, (1 / 3, 2 / 3)),  # eq. (7) weights the alternatives by Z_i
        ((0.5, 1.0), "logZ", (0.5, 0.5)),  # eq. (6) with log Z_i restores equal mass
    ],
)
def test_or_splits_mass_by_partition_functions(sd, log_partitions, weights):
    # Modes at -1.5 and +1.5, close enough (barrier ~1 nat) that MALA chains cross between
    # them many times, so the answer comes from the sampler, not from the start: every chain
    # starts at the left mode. Statistic: P(x > 0) of the mixture sum_i w_i N(m_i, sd_i^2).
    left, right = _gauss([-1.5], sd[0] ** 2), _gauss([1.5], sd[1] ** 2)
    lz = [left.log_partition(), right.log_partition()] if log_partitions else None
    expr = Or(left, right, log_partitions=lz)
    p_right = weights[0] * norm.sf(1.5 / sd[0]) + weights[1] * norm.cdf(1.5 / sd[1])
    x0 = torch.full((3000, 1), -1.5, dtype=F64)
    x = mala(expr, x0, num_steps=600, step_size=0.5, generator=_gen(13))
    assert_mean((x > 0).double().flatten(), p_right, p_right * (1 - p_right), "P(x>0)")
    mix_mean = 1.5 * (weights[1] - weights[0])
    mix_var = sum(w * (s**2 + 1.5**2) for w, s in zip(weights, sd, strict=True)) - mix_mean**2
    assert_mean(x.flatten(), mix_mean, mix_var, "mean")


# ---------------------------------------------------------------------------- bounds
class Flat(Energy):
    def energy(self, x):
        return x.flatten(1).sum(1) * 0.0


def test_reflect_is_uniform_on_a_flat_energy_and_clamp_stays_in_the_box():
    # All chains start at 0.1; reflection at the walls makes the random walk's law uniform.
    x0 = torch.full((8000, 1), 0.1, dtype=F64)
    x = langevin(Flat(), x0, num_steps=150, step_size=0.05, bounds=(0.0, 1.0),
                 boundary="reflect", generator=_gen(14)).flatten()
    assert ((x >= 0) & (x <= 1)).all()
    assert_mean(x, 0.5, 1 / 12, "uniform mean")
    # Var of the sample variance of U(0,1) draws: (mu4 - sigma^4) / n = (1/80 - 1/144) / n.
    se = math.sqrt((1 / 80 - 1 / 144) / x.shape[0])
    assert abs(x.var().item() - 1 / 12) < Z * se
    xc = langevin(_gauss([2.0], 0.1), x0, num_steps=50, step_size=0.05, bounds=(0.0, 1.0),
                  boundary="clamp", generator=_gen(15))
    assert ((xc >= 0) & (xc <= 1)).all() and (xc == 1.0).float().mean() > 0.5


def test_reflection_folds_far_points_back():
    b = check_bounds((0.0, 1.0))
    x = torch.tensor([[-0.25], [1.25], [2.5], [-1.75], [0.5]], dtype=F64)
    y = apply_bounds(x, b, "reflect")
    torch.testing.assert_close(y.flatten(), torch.tensor([0.25, 0.75, 0.5, 0.25, 0.5],
                                                         dtype=F64))


def test_mala_reject_samples_a_truncated_gaussian():
    lo, hi = 0.5, 2.0  # N(0, 1) restricted to [0.5, 2]
    alpha, beta = lo, hi
    zmass = norm.cdf(beta) - norm.cdf(alpha)
    mean = (norm.pdf(alpha) - norm.pdf(beta)) / zmass
    var = 1 + (alpha * norm.pdf(alpha) - beta * norm.pdf(beta)) / zmass - mean**2
    x = mala(_gauss([0.0], 1.0), (4000, 1), num_steps=300, step_size=0.5, bounds=(lo, hi),
             init="uniform", generator=_gen(16), dtype=F64).flatten()
    assert ((x >= lo) & (x <= hi)).all()
    assert_mean(x, mean, var, "truncated mean")


# ----------------------------------------------------------------------- non-finite
class NaNAbove(Energy):
    """x^2 / 2, but NaN for x > 1.5: a broken region MALA must never enter."""

    def energy(self, x):
        e = 0.5 * (x**2).sum(1)
        return torch.where(x[:, 0] > 1.5, torch.full_like(e, float("nan")), e)


def test_mala_rejects_nan_proposals_and_counts_them():
    x0 = torch.zeros(500, 1, dtype=F64)
    x, info = mala(NaNAbove(), x0, num_steps=100, step_size=1.0, generator=_gen(17),
                   return_info=True)
    assert info.nonfinite.sum() > 0
    assert torch.isfinite(x).all() and (x <= 1.5).all()
    state, step_info = mala_step(init_state(NaNAbove(), x0), NaNAbove(), step_size=1.0,
                                 generator=_gen(18))
    assert step_info.nonfinite.dtype == torch.bool
    assert not step_info.accepted[step_info.nonfinite].any()


def test_ula_raises_on_non_finite_energy():
    x0 = torch.full((4, 1), 2.0, dtype=F64)
    with pytest.raises(FloatingPointError, match=r"non-finite energy or gradient .* chains \["):
        langevin(NaNAbove(), x0, num_steps=3, step_size=0.1)
    with pytest.raises(FloatingPointError, match="MALA needs a finite start"):
        mala(NaNAbove(), x0, num_steps=3, step_size=0.1)


# ----------------------------------------------------------------- clipping, bad input
class Linear(Energy):
    """E = <w_i, x>: chain i has the constant gradient w_i."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def energy(self, x):
        return (self.w * x).sum(1)


def test_grad_clip_is_per_chain():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 10.0]], dtype=F64)  # norms 5, 0.5, 10
    state = LangevinState(torch.zeros(3, 2, dtype=F64))
    new, info = langevin_step(state, Linear(w), step_size=0.1, noise_scale=0.0, grad_clip=1.0)
    moved = -new.x / 0.1
    torch.testing.assert_close(moved, torch.stack([w[0] / 5, w[1], w[2] / 10]))
    torch.testing.assert_close(info.grad_norm, torch.tensor([5.0, 0.5, 10.0], dtype=F64))


@pytest.mark.parametrize("step", [0.0, -0.1, float("nan"), torch.tensor([0.1, 0.0])])
def test_step_size_must_be_positive(step):
    state = LangevinState(torch.zeros(2, 1))
    g = _gauss([0.0], 1.0)
    for fn in (ula_step, mala_step):
        with pytest.raises(ValueError, match="step_size must be"):
            fn(state, g, step_size=step)
    with pytest.raises(ValueError, match="step_size must be"):
        langevin(g, (2, 1), num_steps=2, step_size=step)


def test_other_sampler_arguments_are_validated():
    g, state = _gauss([0.0], 1.0), LangevinState(torch.zeros(2, 1, dtype=F64))
    with pytest.raises(ValueError, match="noise_scale must be a finite number >= 0"):
        langevin_step(state, g, step_size=0.1, noise_scale=-1.0)
    with pytest.raises(ValueError, match="'clamp' or 'reflect'"):
        ula_step(state, g, step_size=0.1, bounds=(0, 1), boundary="reject")
    with pytest.raises(ValueError, match="boundary must be one of"):
        mala_step(state, g, step_size=0.1, bounds=(0, 1), boundary="wrap")
    with pytest.raises(ValueError, match="low < high, got low=1.0, high=0.0"):
        langevin(g, (2, 1), num_steps=1, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"bounds must be a pair \(low, high\)"):
        mala(g, (2, 1), num_steps=1, bounds=(0.0,))
    with pytest.raises(ValueError, match="at least 2 dims"):
        init_state(g, torch.zeros(3))


def test_per_chain_step_sizes_must_match_the_chains():
    state = LangevinState(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"needs 1 or 3 values \(one per chain\), got shape"):
        ula_step(state, _gauss([0.0, 0.0], 1.0), step_size=torch.tensor([0.1, 0.2]))


def test_energy_without_a_graph_raises_clearly():
    def detached(x):
        with torch.no_grad():
            return 0.5 * (x**2).sum(1)

    with pytest.raises(ValueError, match="does not depend differentiably on x"):
        langevin(detached, (4, 2), num_steps=1)
    # an energy that ignores x but keeps a graph (a parameter) is flat: gradient zero
    w = torch.nn.Parameter(torch.ones(()))
    state = init_state(lambda x: w * torch.ones(x.shape[0]), torch.zeros(4, 2))
    assert torch.equal(state.grad, torch.zeros(4, 2))


def test_huge_finite_gradients_are_clipped_not_treated_as_non_finite():
    # float32 entries of 1e20 square to inf: the norm must still come out finite (1e20 * 2)
    w = torch.tensor([[1e20, 1e20, 1e20, 1e20], [3.0, 4.0, 0.0, 0.0]])
    state = LangevinState(torch.zeros(2, 4))
    new, info = langevin_step(state, Linear(w), step_size=0.1, noise_scale=0.0, grad_clip=1.0)
    torch.testing.assert_close(new.x[0], torch.full((4,), -0.05))  # unit direction, step 0.1
    torch.testing.assert_close(info.grad_norm, torch.tensor([2e20, 5.0]))
    w_inf = w.clone()
    w_inf[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"chains \[0\]"):
        langevin_step(state, Linear(w_inf), step_size=0.1, noise_scale=0.0, grad_clip=1.0)

"""The energy algebra: each composite equals its formula in value and gradient, reads well,
and refuses bad input loudly. (Sampling the composites is tested in tests/infer/test_samplers.py.)
"""

import math

import pytest
import torch
from scipy.stats import multivariate_normal

from conceptebm.concepts import Concept
from conceptebm.energies import (
    And,
    Bound,
    ConditionalEnergy,
    Energy,
    Gaussian,
    GaussianMixture,
    Not,
    Or,
    Scale,
    require_grounded,
)
from conceptebm.infer import langevin, mala

F64 = torch.float64


def _g(mean, cov):
    return Gaussian(torch.tensor(mean, dtype=F64), torch.tensor(cov, dtype=F64))


A = _g([1.0, 0.0], [[1.0, 0.3], [0.3, 0.5]])
B = _g([-1.0, 1.0], [2.0, 1.0])
C = _g([0.0, -0.5], 0.7)
D = _g([0.5, 0.5], [[0.4, -0.1], [-0.1, 0.9]])


def _x(n=7, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64) * 1.5


def _value_and_grad(f, x):
    x = x.clone().requires_grad_(True)
    e = f(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), g


def _assert_same(energy, formula, x=None):
    """energy(x) equals formula(x) in value and in gradient."""
    x = _x() if x is None else x
    e1, g1 = _value_and_grad(energy, x)
    e2, g2 = _value_and_grad(formula, x)
    assert e1.shape == (x.shape[0],)
    torch.testing.assert_close(e1, e2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


def _maha(mean, cov):
    """Hand-written Gaussian energy 0.5 (x-m)^T S^-1 (x-m), independent of the class."""
    m, s = torch.tensor(mean, dtype=F64), torch.tensor(cov, dtype=F64)
    s = torch.diag(s) if s.dim() == 1 else (s * torch.eye(2, dtype=F64) if s.dim() == 0 else s)
    p = torch.linalg.inv(s)
    return lambda x: 0.5 * (((x - m) @ p) * (x - m)).sum(-1)


EA = _maha([1.0, 0.0], [[1.0, 0.3], [0.3, 0.5]])
EB = _maha([-1.0, 1.0], [2.0, 1.0])
EC = _maha([0.0, -0.5], 0.7)
ED = _maha([0.5, 0.5], [[0.4, -0.1], [-0.1, 0.9]])


# ------------------------------------------------------------------------- formulas
def test_gaussian_matches_scipy_and_its_normalizer():
    x = _x()
    ref = -multivariate_normal([1.0, 0.0], [[1.0, 0.3], [0.3, 0.5]]).logpdf(x.numpy())
    g = Gaussian(torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([[1.0, 0.3], [0.3, 0.5]],
                                                                   dtype=F64), normalized=True)
    torch.testing.assert_close(g(x), torch.from_numpy(ref))
    _assert_same(A, EA)


def test_gaussian_mixture_matches_scipy():
    means, covs, w = [[-1.0, 0.0], [2.0, 1.0]], [0.5, 2.0], [0.25, 0.75]
    gm = GaussianMixture(torch.tensor(means, dtype=F64), torch.tensor(covs, dtype=F64), w)
    x = _x()
    dens = sum(wi * multivariate_normal(m, c * torch.eye(2).numpy()).pdf(x.numpy())
               for wi, m, c in zip(w, means, covs, strict=True))
    torch.testing.assert_close(gm(x), torch.from_numpy(-torch.log(torch.tensor(dens)).numpy()))


def test_and_is_the_sum():
    _assert_same(A & B, lambda x: EA(x) + EB(x))
    _assert_same(And(A, B, C), lambda x: EA(x) + EB(x) + EC(x))
    assert len((A & B & C).terms) == 3  # a & b & c is one flat And


@pytest.mark.parametrize("temperature", [1.0, 0.3, 0.01])
def test_or_is_the_soft_minimum(temperature):
    t = temperature
    _assert_same(Or(A, B, C, temperature=t),
                 lambda x: -t * torch.logsumexp(torch.stack([-EA(x), -EB(x), -EC(x)]) / t, 0))


def test_or_with_log_partitions():
    # eq. (6): dividing each term by its partition function Z_i
    lz = [0.7, -1.2]
    _assert_same(Or(A, B, temperature=0.5, log_partitions=lz),
                 lambda x: -0.5 * torch.logsumexp(
                     torch.stack([-EA(x) / 0.5 - lz[0], -EB(x) / 0.5 - lz[1]]), 0))


def test_or_of_gaussians_is_the_mixture_with_normaliser_weights():
    # exp(-E_or) = sum_i Z_i N_i: a mixture weighted by Z_i (eq. 7 assumes equal Z_i);
    # log_partitions = log Z_i makes the weights equal again.
    za, zb = math.exp(A.log_partition()), math.exp(B.log_partition())
    weighted = GaussianMixture(torch.stack([A.mean, B.mean]), torch.stack([A.cov, B.cov]),
                               [za, zb])
    _assert_same(A | B, lambda x: weighted(x) - math.log(za + zb))
    equal = GaussianMixture(torch.stack([A.mean, B.mean]), torch.stack([A.cov, B.cov]))
    _assert_same(Or(A, B, log_partitions=[A.log_partition(), B.log_partition()]),
                 lambda x: equal(x) - math.log(2))


def test_not_and_scale():
    _assert_same(B & Not(A, alpha=0.3), lambda x: EB(x) - 0.3 * EA(x))
    _assert_same(B & ~A, lambda x: EB(x) - 0.01 * EA(x))  # the paper's alpha
    _assert_same(2.5 * A, lambda x: 2.5 * EA(x))
    _assert_same(A * 0.5, lambda x: 0.5 * EA(x))
    _assert_same(Scale(A, 3.0), lambda x: 3.0 * EA(x))
    _assert_same(B & Not(A, alpha=0.0), EB)


def test_nested_three_levels():
    expr = Or(2.0 * (A & Not(B, alpha=0.2)), (C | D) & Scale(A, 0.5), temperature=0.3)

    def formula(x):
        left = 2.0 * (EA(x) - 0.2 * EB(x))
        inner_or = -torch.logsumexp(torch.stack([-EC(x), -ED(x)]), 0)
        right = inner_or + 0.5 * EA(x)
        return -0.3 * torch.logsumexp(torch.stack([-left, -right]) / 0.3, 0)

    _assert_same(expr, formula)
    assert expr.is_grounded


def test_or_flattens_only_when_it_is_associative():
    assert len((A | B | C).terms) == 3
    hard = Or(A, B, temperature=0.1) | C  # a tempered Or keeps its own temperature
    assert len(hard.terms) == 2
    _assert_same(hard, lambda x: -torch.logsumexp(torch.stack([
        0.1 * torch.logsumexp(torch.stack([-EA(x), -EB(x)]) / 0.1, 0), -EC(x)]), 0))


# ----------------------------------------------------------------------------- repr
class Lookup(ConditionalEnergy):
    """A tiny conditional energy: squared distance between x and the concept code."""

    def energy(self, x, c):
        return ((x[:, : c.shape[1]] - c) ** 2).sum(-1)


POSITION = Lookup(Concept.continuous("position", dim=2))
COLOR = Lookup(Concept.categorical("color", ["red", "green", "blue"]))
SHAPE = Lookup(Concept.categorical("shape", ["sphere", "cube", "cylinder"]))


def test_repr_reads_like_the_expression_language():
    expr = (POSITION.given((0.3, -0.2)) & COLOR.given("red")) | ~SHAPE.given("cube")
    assert repr(expr) == "(position(0.3,-0.2) & color('red')) | ~shape('cube')"
    assert repr(0.5 * COLOR.given("blue")) == "0.5*color('blue')"
    assert repr(Not(COLOR.given(1), alpha=0.2)) == "Not(color('green'), alpha=0.2)"
    assert repr(Or(COLOR.given(0), SHAPE.given(2), temperature=0.01)) == \
        "Or(color('red') | shape('cylinder'), temperature=0.01)"
    assert repr(~(COLOR.given(0) & SHAPE.given(0))) == "~(color('red') & shape('sphere'))"
    assert repr(POSITION.given(torch.zeros(3, 2))) == "position[3 values]"
    assert repr(POSITION) == "Lookup(position)"


def test_bound_value_per_chain_and_shared():
    x = torch.rand(3, 3, dtype=F64)
    per_chain = torch.tensor([[0.1, 0.2], [0.3, 0.4], [-0.5, 0.6]], dtype=F64)
    e = POSITION.given(per_chain)(x)
    torch.testing.assert_close(e, ((x[:, :2] - per_chain) ** 2).sum(-1))
    shared = POSITION.given((0.1, 0.2))(x)
    torch.testing.assert_close(shared, ((x[:, :2] - torch.tensor([0.1, 0.2],
                                                                  dtype=F64)) ** 2).sum(-1))
    with pytest.raises(ValueError, match="binds 3 concept values but got a batch of 2"):
        POSITION.given(per_chain)(x[:2])


# ---------------------------------------------------------------------- bad input
class Unreduced(Energy):
    def energy(self, x):
        return (x**2).sum(-1, keepdim=True)  # (B, 1): a classic silent-broadcast bug


def test_energy_with_wrong_output_shape_raises():
    with pytest.raises(ValueError, match=r"shape \(4, 1\).*shape\s+\(4,\)"):
        Unreduced()(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"shape \(4, 1\)"):
        (A & Unreduced())(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="one energy per chain"):
        langevin(lambda x: (x**2).sum(-1, keepdim=True), (4, 2), num_steps=1)


def test_x_of_wrong_dimension_raises():
    with pytest.raises(ValueError, match=r"dimension 2 expects x of shape \(batch, 2\)"):
        A(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"c must have shape \(4, 2\)"):
        POSITION(torch.zeros(4, 3), torch.zeros(4, 3))


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_or_temperature_must_be_positive(t):
    with pytest.raises(ValueError, match="Or temperature must be a finite number > 0"):
        Or(A, B, temperature=t)


def test_or_log_partitions_validated():
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(2, batch\) for 2 terms, got \(3,\)"):
        Or(A, B, log_partitions=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        Or(A, B, log_partitions=[0.0, float("nan")])


@pytest.mark.parametrize("alpha", [-0.1, float("nan")])
def test_not_alpha_must_be_nonnegative(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        Not(A, alpha=alpha)


@pytest.mark.parametrize("t", [0.0, -2.0])
def test_scale_must_be_positive(t):
    with pytest.raises(ValueError, match="Scale weight must be a finite number > 0.*negation"):
        t * A


@pytest.mark.parametrize("op", [And, Or])
def test_empty_composition_raises(op):
    with pytest.raises(ValueError, match="needs at least one energy"):
        op()


def test_terms_must_be_energies():
    with pytest.raises(TypeError, match=r"bind a ConditionalEnergy with \.given\(value\)"):
        And(A, POSITION)
    with pytest.raises(TypeError, match="must be Energy instances"):
        Or(A, "red")
    with pytest.raises(TypeError):
        A * B  # energies do not multiply; & is the product of experts


def test_double_negation_raises():
    with pytest.raises(ValueError, match="double negation"):
        _ = ~~A


@pytest.mark.parametrize("expr", [~A, ~A & ~B, 2.0 * ~A, (~A) | B])
def test_sampling_an_ungrounded_negation_says_how_to_ground_it(expr):
    assert not expr.is_grounded
    with pytest.raises(ValueError, match=r"Ground it with a positive concept, e\.g\."):
        require_grounded(expr)
    for sampler in (langevin, mala):
        with pytest.raises(ValueError, match="not a distribution on its own"):
            sampler(expr, (4, 2), num_steps=1)


def test_sampling_an_unbound_conditional_energy_raises():
    with pytest.raises(TypeError, match=r"bind a concept value first"):
        langevin(POSITION, (4, 2), num_steps=1)


def test_grounded_negation_is_accepted():
    assert (B & ~A).is_grounded and (~A & B).is_grounded
    require_grounded(B & ~A)


def test_given_validates_the_concept_value():
    with pytest.raises(ValueError, match="unknown color 'purple'; known values: red, green, blue"):
        COLOR.given("purple")
    with pytest.raises(ValueError, match=r"position values must lie in \[-1.0, 1.0\]"):
        POSITION.given((1.5, 0.0))
    with pytest.raises(TypeError, match="needs a ConditionalEnergy"):
        Bound(A, 0.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.0, 0.0], [[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
        (([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (([0.0, 0.0], [1.0, 1.0, 1.0]), r"cov must be a scalar, \(2,\) or \(2, 2\)"),
    ],
)
def test_gaussian_validates_covariance(args, match):
    with pytest.raises(ValueError, match=match):
        Gaussian(torch.tensor(args[0], dtype=F64), torch.tensor(args[1], dtype=F64))


def test_gaussian_mixture_validates_weights():
    with pytest.raises(ValueError, match="weights must be 2 positive numbers"):
        GaussianMixture(torch.zeros(2, 2, dtype=F64), torch.ones(2, dtype=F64), [1.0, -1.0])

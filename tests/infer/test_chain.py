"""The chain driver: results and trajectories, seeds, schedules, step adaptation, inits."""

import pytest
import torch

from conceptebm.energies import Gaussian
from conceptebm.infer import (
    ChainResult,
    LangevinState,
    StepInfo,
    init_state,
    initial_samples,
    langevin,
    mala,
    mala_step,
    run_chain,
    ula_step,
)
from conceptebm.infer.adapt import StepSizeState, init_step_size, update_step_size

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _std_normal(d):
    return Gaussian(torch.zeros(d, dtype=F64), 1.0)


class Quadratic(torch.nn.Module):
    """0.5 |x|^2 over any event shape (images too)."""

    def forward(self, x):
        return 0.5 * (x**2).flatten(1).sum(1)


def test_trajectory_shape_and_result_fields():
    x0 = torch.rand(3, 2, 4, 4, generator=_gen(), dtype=F64)  # (chains, C, H, W)
    x, info = langevin(Quadratic(), x0, num_steps=20, step_size=0.1, keep_every=5,
                       generator=_gen(1), return_info=True)
    assert isinstance(info, ChainResult)
    assert set(info._fields) == {"state", "trajectory", "accept_rate", "nonfinite",
                                 "energy_trace", "step_size", "accept_trace",
                                 "accepted_trace", "step_size_trace"}
    assert info.accept_trace is None  # kept only with return_trace=True
    assert info.trajectory.shape == (4, 3, 2, 4, 4)  # (kept, chains, *event)
    assert torch.equal(info.trajectory[-1], x) and torch.equal(info.state.x, x)
    assert info.energy_trace.shape == (20, 3)
    torch.testing.assert_close(info.energy_trace[0], Quadratic()(x0))
    assert torch.equal(info.accept_rate, torch.ones(3))  # unadjusted: every step "accepted"
    assert torch.equal(info.nonfinite, torch.zeros(3, dtype=torch.long))
    assert info.step_size == 0.1
    # without keep_every there is no trajectory, and no return_info means just the samples
    assert langevin(Quadratic(), x0, num_steps=2, step_size=0.1, return_info=True)[1] \
        .trajectory is None
    assert isinstance(langevin(Quadratic(), x0, num_steps=2, step_size=0.1), torch.Tensor)


def test_mala_result():
    x, info = mala(_std_normal(2), (50, 2), num_steps=30, step_size=0.5, init="gaussian",
                   generator=_gen(), return_info=True, dtype=F64)
    assert x.dtype == F64 and x.shape == (50, 2)
    assert ((info.accept_rate >= 0) & (info.accept_rate <= 1)).all()
    assert 0.3 < info.accept_rate.mean() < 1.0  # some proposals rejected, most accepted
    assert info.step_size == 0.5 and info.energy_trace.shape == (30, 50)


def test_run_chain_with_a_custom_step_and_zero_steps():
    def halve(state, k):
        e = (state.x**2).sum(1)
        ones = torch.ones_like(e)
        info = StepInfo(e, ones, ones.bool(), torch.zeros_like(ones, dtype=torch.bool), ones)
        return LangevinState(state.x / 2), info

    state, res = run_chain(halve, LangevinState(torch.ones(4, 2)), 3, keep_every=1)
    assert torch.equal(state.x, torch.full((4, 2), 0.125))
    assert res.trajectory.shape == (3, 4, 2)
    _, res0 = run_chain(halve, LangevinState(torch.ones(4, 2)), 0)
    assert res0.energy_trace.shape == (0, 4) and res0.trajectory is None


@pytest.mark.parametrize("sampler", [langevin, mala])
def test_same_seed_same_samples(sampler):
    def draw(seed):
        return sampler(_std_normal(3), (64, 3), num_steps=15, step_size=0.3, init="uniform",
                       bounds=(-2.0, 2.0), generator=_gen(seed), dtype=F64)

    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


def test_step_size_schedule_is_used():
    seen = []

    def schedule(k):
        seen.append(k)
        return 0.2 / (1 + k)

    x0 = torch.randn(16, 2, generator=_gen(), dtype=F64)
    x, info = langevin(_std_normal(2), x0, num_steps=6, step_size=schedule, generator=_gen(9),
                       return_info=True)
    assert seen[:6] == list(range(6))
    # the same chain written by hand with the pure step
    g, state = _gen(9), LangevinState(x0)
    for k in range(6):
        state, _ = ula_step(state, _std_normal(2), step_size=0.2 / (1 + k), generator=g)
    torch.testing.assert_close(x, state.x)
    assert info.step_size == pytest.approx(0.2 / 6)


@pytest.mark.parametrize(("target", "start_step"), [(0.574, 8.0), (0.8, 0.001)])
def test_mala_adaptation_reaches_the_target_acceptance(target, start_step):
    g = Gaussian(torch.zeros(4, dtype=F64), torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64))
    x0 = torch.randn(400, 4, generator=_gen(), dtype=F64)
    x, info = mala(g, x0, num_steps=300, step_size=start_step, adapt_steps=300,
                   target_accept=target, generator=_gen(1), return_info=True)
    assert isinstance(info.step_size, torch.Tensor) and info.step_size.shape == (400,)
    # frozen adapted step sizes, fresh run: 400 chains x 200 steps of acceptance
    _, after = mala(g, x, num_steps=200, step_size=info.step_size, generator=_gen(2),
                    return_info=True)
    assert abs(after.accept_rate.mean().item() - target) < 0.1


def test_adaptive_mala_is_the_pure_adaptation_written_by_hand():
    # infer.adapt is the one adaptation: mala(adapt_steps=...) must equal the loop of its
    # pure pieces, bit for bit (same generator draws in the same order).
    g = Gaussian(torch.zeros(3, dtype=F64), torch.tensor([0.3, 1.0, 3.0], dtype=F64))
    x0 = torch.randn(20, 3, generator=_gen(), dtype=F64)
    x, info = mala(g, x0, num_steps=15, step_size=1e-3, adapt_steps=10, generator=_gen(4),
                   return_info=True)
    gen = _gen(4)
    state = init_state(g, x0)
    adapt = init_step_size(state, g, 1e-3, generator=gen)
    assert adapt.count == 0 and adapt.step_size.min() > 0.01  # the search climbed from 1e-3
    for k in range(15):
        state, step_info = mala_step(state, g, step_size=adapt.step_size, generator=gen)
        if k < 10:
            adapt = update_step_size(adapt, step_info.accept_prob, target_accept=0.574)
    assert adapt.count == 10
    assert torch.equal(x, state.x) and torch.equal(info.step_size, adapt.step_size)
    assert torch.equal(info.state.x, x)  # the result carries the chain state, not the wrapper


def test_step_size_update_moves_toward_the_target():
    a = StepSizeState(torch.zeros(3, dtype=F64))
    accept = torch.tensor([0.0, 0.574, 1.0], dtype=F64)
    b = update_step_size(a, accept, target_accept=0.574)
    # too few accepts shrink the step, too many grow it, on target it stays; gain 1 at count 0
    torch.testing.assert_close(b.log_step, accept - 0.574)
    c = update_step_size(b, accept, target_accept=0.574)
    torch.testing.assert_close(c.log_step - b.log_step, (accept - 0.574) * 2 ** -0.6)


def test_initial_samples():
    u = initial_samples((500, 3), bounds=(-2.0, 1.0), generator=_gen(), dtype=F64)
    assert u.dtype == F64 and u.min() >= -2.0 and u.max() <= 1.0 and u.min() < -1.9
    s = initial_samples((2, 3, 16, 16), init="smooth", generator=_gen())
    assert s.shape == (2, 3, 16, 16) and 0.0 <= s.min() and s.max() <= 1.0
    # smooth noise is low-frequency: neighbouring pixels differ far less than i.i.d. uniform
    # pixels, whose mean absolute difference is 1/3 (about 0.06 here, from 4x4 upsampled)
    assert (s[..., 1:] - s[..., :-1]).abs().mean() < 0.15
    t = initial_samples((4, 2), init=torch.tensor([[0.5, -0.5]]))
    assert torch.equal(t, torch.tensor([[0.5, -0.5]]).expand(4, 2))


def test_bad_arguments_raise_clearly():
    g = _std_normal(2)
    with pytest.raises(ValueError, match="unknown init 'laplace'; use one of"):
        langevin(g, (4, 2), num_steps=1, init="laplace")
    with pytest.raises(ValueError, match="does not fit"):
        langevin(g, (4, 2), num_steps=1, init=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"image shape \(N, C, H, W\)"):
        langevin(g, (4, 2), num_steps=1, init="smooth")
    with pytest.raises(ValueError, match="num_steps must be an integer >= 0, got -1"):
        langevin(g, (4, 2), num_steps=-1)
    with pytest.raises(ValueError, match="keep_every must be >= 0"):
        langevin(g, (4, 2), num_steps=1, keep_every=-2)
    with pytest.raises(ValueError, match=r"target_accept must lie in \(0, 1\), got 1.5"):
        mala(g, (4, 2), num_steps=1, target_accept=1.5)
    with pytest.raises(ValueError, match="adapt_steps must be >= 0"):
        mala(g, (4, 2), num_steps=1, adapt_steps=-1)
    with pytest.raises(ValueError, match="either a step-size schedule or adapt_steps"):
        mala(g, (4, 2), num_steps=1, step_size=lambda k: 0.1, adapt_steps=5)
    with pytest.raises(TypeError, match="energy must be an Energy or a callable"):
        langevin(3.0, (4, 2), num_steps=1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(chains, \*event\)"):
        langevin(g, torch.zeros(4), num_steps=1)
    with pytest.raises(ValueError, match="boundary='reject' chains must start inside"):
        mala(g, torch.full((4, 2), 3.0, dtype=F64), num_steps=1, bounds=(-1.0, 1.0))


def test_progress_bar_smoke(capsys):
    x = langevin(_std_normal(2), (8, 2), num_steps=12, step_size=0.1, progress=True,
                 dtype=F64)
    assert torch.isfinite(x).all()

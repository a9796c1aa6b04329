"""The chain driver and the convenience calls ``langevin`` and ``mala``.

``run_chain`` repeats a step function, with a tqdm bar, optional trajectory keeping and
per-chain diagnostics. ``langevin``/``mala`` accept any :class:`~conceptebm.energies.Energy`
(composites included) or any callable ``(chains, *event) -> (chains,)``, and an initial batch
or a shape plus an init rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.energies.ops import require_grounded
from conceptebm.infer.adapt import StepSizeState, init_step_size, update_step_size
from conceptebm.infer.init import initial_samples
from conceptebm.infer.samplers import (
    LangevinState,
    StepInfo,
    check_bounds,
    init_state,
    langevin_step,
    mala_step,
    ula_step,
)
from conceptebm.infer.settings import settings_of

__all__ = ["ChainResult", "AdaptiveState", "run_chain", "langevin", "mala"]

StepFn = Callable[[LangevinState, int], tuple[LangevinState, StepInfo]]

#: The progress bar's statistics (mean energy, acceptance, step size) are read every this many
#: steps: each read waits for the step (``.item()``), so reading every step would cost more.
BAR_EVERY = 25


class ChainResult(NamedTuple):
    """What a run returns besides the samples.

    Attributes:
        state: final :class:`LangevinState`.
        trajectory: ``(kept, chains, *event)`` states every ``keep_every`` steps, or ``None``.
        accept_rate: ``(chains,)`` fraction of accepted proposals (1 for unadjusted steps).
        nonfinite: ``(chains,)`` count of rejected non-finite proposals.
        energy_trace: ``(num_steps, chains)`` energy at the start of each step.
        step_size: final step size, a float or ``(chains,)`` after adaptation.
        accept_trace: ``(num_steps, chains)`` each step's acceptance probability, with
            ``record_stats=True`` (else ``None``).
        accepted_trace: ``(num_steps, chains)`` bool, whether each step moved (``record_stats``).
        step_size_trace: ``(num_steps, chains)`` the step size each step used (``record_stats``).
    """

    state: LangevinState
    trajectory: Tensor | None
    accept_rate: Tensor
    nonfinite: Tensor
    energy_trace: Tensor
    step_size: float | Tensor
    accept_trace: Tensor | None = None
    accepted_trace: Tensor | None = None
    step_size_trace: Tensor | None = None


class AdaptiveState(NamedTuple):
    """A chain state together with its step-size adaptation state (adaptive :func:`mala`).

    ``x`` is the chains' position, so :func:`run_chain` treats it as any other state.
    """

    chain: LangevinState
    adapt: StepSizeState

    @property
    def x(self) -> Tensor:
        return self.chain.x  # (chains, *event)


def run_chain(step_fn: StepFn, state, num_steps: int, *,
              keep_every: int = 0, progress: bool = False,
              desc: str = "sampling", record_stats: bool = False,
              step_size_of: Callable | None = None) -> tuple[LangevinState, ChainResult]:
    """Run ``num_steps`` of ``step_fn(state, k) -> (state, info)`` and collect diagnostics.

    ``state`` is a :class:`LangevinState` or any state whose ``.x`` is ``(chains, *event)``
    (e.g. :class:`AdaptiveState`); ``info`` is a :class:`StepInfo`. ``record_stats=True`` keeps
    every step's acceptance probability, accept decision and step size
    (``step_size_of(state, k)``, the size step ``k`` uses; NaN without it) in the result, the
    per-draw sampler statistics of :mod:`conceptebm.evaluate.posterior`. The bar (``progress``)
    shows the mean energy, acceptance and step size, read every :data:`BAR_EVERY` steps.

    Example:
        >>> from conceptebm.energies import Gaussian
        >>> g = Gaussian(torch.zeros(2), 1.0)
        >>> step = lambda s, k: ula_step(s, g, step_size=0.1)
        >>> state, result = run_chain(step, init_state(g, torch.zeros(8, 2)), 5, keep_every=1)
        >>> tuple(result.trajectory.shape), tuple(result.energy_trace.shape)
        ((5, 8, 2), (5, 8))
    """
    if int(num_steps) != num_steps or num_steps < 0:
        raise ValueError(f"num_steps must be an integer >= 0, got {num_steps}")
    if keep_every < 0:
        raise ValueError(f"keep_every must be >= 0, got {keep_every}")
    chains = state.x.shape[0]
    accepted = torch.zeros(chains, device=state.x.device)
    nonfinite = torch.zeros(chains, dtype=torch.long, device=state.x.device)
    trace, kept = None, []
    stats = None
    if record_stats:  # preallocated, written in place (see the energy trace below)
        stats = (torch.empty(num_steps, chains, device=state.x.device),
                 torch.zeros(num_steps, chains, dtype=torch.bool, device=state.x.device),
                 torch.full((num_steps, chains), float("nan"), device=state.x.device))
    bar = tqdm(range(num_steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for k in bar:
        show = progress and k % BAR_EVERY == 0
        eps = step_size_of(state, k) if (step_size_of is not None and
                                         (record_stats or show)) else None
        state, info = step_fn(state, k)
        if stats is not None:
            stats[0][k] = info.accept_prob
            stats[1][k] = info.accepted
            if eps is not None:
                stats[2][k] = torch.as_tensor(eps, dtype=stats[2].dtype,
                                              device=stats[2].device)
        accepted += info.accepted
        nonfinite += info.nonfinite
        # One preallocated trace written in place, not a list of per-step tensors: those
        # small live blocks fragment the heap between the step's big buffers, so the next
        # step's activations land on cache-cold memory (+0.2 ms a step measured on 64
        # images; benchmarks/engine_overhead.py).
        if trace is None:
            trace = info.energy.new_empty((num_steps, chains))
        trace[k] = info.energy
        if keep_every and (k + 1) % keep_every == 0:
            kept.append(state.x.clone())
        if show:  # drawn at tqdm's own pace (refresh=False): the bar costs < 2%
            post = {"energy": f"{info.energy.mean().item():.4g}",
                    "accept": f"{info.accept_prob.mean().item():.2f}"}
            if eps is not None:
                post["step"] = f"{torch.as_tensor(eps).float().mean().item():.3g}"
            bar.set_postfix(post, refresh=False)
    if trace is None:
        trace = state.x.new_zeros(0, chains)
    result = ChainResult(
        state=state,
        trajectory=torch.stack(kept) if kept else None,
        accept_rate=accepted / max(num_steps, 1),
        nonfinite=nonfinite,
        energy_trace=trace,
        step_size=float("nan"),
        accept_trace=None if stats is None else stats[0],
        accepted_trace=None if stats is None else stats[1],
        step_size_trace=None if stats is None else stats[2],
    )
    return state, result


def _prepare(energy, x0_or_shape, init, bounds, generator, device, dtype) -> Tensor:
    require_grounded(energy)
    if not callable(energy):
        raise TypeError(f"energy must be an Energy or a callable, got {type(energy).__name__}")
    if isinstance(x0_or_shape, Tensor):
        x0 = x0_or_shape.detach()
        if device is not None or dtype is not None:
            x0 = x0.to(device=device, dtype=dtype)
    else:
        x0 = initial_samples(tuple(x0_or_shape), init=init, bounds=bounds, generator=generator,
                             device=device, dtype=dtype)
    if x0.dim() < 2:
        raise ValueError(f"x0 must have shape (chains, *event), got {tuple(x0.shape)}")
    return x0


def _step_at(step_size, k: int):
    return step_size(k) if callable(step_size) else step_size


def _finish(x: Tensor, result: ChainResult, return_info: bool):
    return (x, result) if return_info else x


class _Own:
    """The default of a :func:`langevin` setting: the models' own, else the engine's."""

    def __repr__(self) -> str:
        return "<the model's own>"


OWN = _Own()
#: What :func:`langevin` uses for a setting not given when no model inside the energy records
#: settings (an analytic energy, a plain callable): eq. (3) with a small step from uniform noise.
ENGINE_DEFAULTS = {"num_steps": 100, "step_size": 0.01, "noise_scale": None, "init": "uniform",
                   "bounds": None, "denoise_steps": 0}


def langevin(energy, x0_or_shape, num_steps: int = OWN, step_size=OWN,
             noise_scale: float | None = OWN, *, init=OWN, bounds=OWN,
             boundary: str = "clamp", grad_clip: float | None = None,
             generator: torch.Generator | None = None, keep_every: int = 0,
             progress: bool = False, return_info: bool = False, device=None, dtype=None,
             denoise_steps: int = OWN, return_trace: bool = False):
    """Unadjusted Langevin dynamics on ``energy``; returns the final samples.

    With ``noise_scale=None`` each step is exactly the paper's eq. (3),
    ``x - (step_size/2) grad E + N(0, step_size)``, which targets exp(-E) up to an
    O(step_size) bias. With a ``noise_scale`` it is the decoupled form used in EBM training,
    ``x - step_size * grad E + noise_scale * N(0, 1)``, which does not target exp(-E).

    A setting not given is the models' own: an energy built from loaded models
    (``pos.given(c) & col.given("red")``) is sampled with the settings they were trained for
    (:func:`~conceptebm.infer.settings_of`: steps, step size, noise, init, bounds); an energy
    with none (an analytic one, a callable) gets :data:`ENGINE_DEFAULTS` (100 steps of eq. (3)
    with step 0.01 from uniform noise, unbounded).

    Args:
        energy: an Energy (any composite) or callable ``(chains, *event) -> (chains,)``.
        x0_or_shape: the initial batch, or its shape ``(chains, *event)``.
        step_size: float, ``(chains,)`` tensor, or a schedule ``k -> float``.
        init: for a shape: ``"uniform"`` (in ``bounds``, default [0, 1]), ``"gaussian"``,
            ``"smooth"`` (low-frequency uniform noise for images), or a tensor.
        bounds: ``(low, high)`` box kept by ``boundary`` = ``"clamp"`` or ``"reflect"``.
        grad_clip: per-chain L2 norm limit on the gradient.
        return_info: also return a :class:`ChainResult` with diagnostics (of the noisy steps).
        denoise_steps: after the ``num_steps`` steps, this many noise-free steps (the same
            drift at the last step size, no noise): a short descent that removes the pixel
            speckle the last noisy steps leave in generated images. 0 (default) keeps the
            chain's last sample. The result no longer targets exp(-E); use it for images.
        return_trace: return ``(x, ChainResult)`` with every state kept (``keep_every``
            defaults to 1) and each step's acceptance and step size
            (``accept_trace``, ``accepted_trace``, ``step_size_trace``): the draws and
            sampler statistics :func:`conceptebm.evaluate.posterior.chain_to_arviz` reads.

    Example:
        >>> from conceptebm.energies import Gaussian
        >>> g = Gaussian(torch.zeros(2), 1.0)
        >>> langevin(g, (512, 2), num_steps=200, step_size=0.1, init="gaussian").shape
        torch.Size([512, 2])
        >>> x = langevin(g, (512, 2), num_steps=200, step_size=0.1, init="gaussian",
        ...              denoise_steps=50)     # noise-free steps pull every chain to the mode
        >>> bool(x.std() < 0.5)
        True
    """
    given = {"num_steps": num_steps, "step_size": step_size, "noise_scale": noise_scale,
             "init": init, "bounds": bounds, "denoise_steps": denoise_steps}
    unset = [k for k, v in given.items() if v is OWN]
    if unset:
        own = settings_of(energy, strict=step_size is OWN)  # a step given settles the scale
        base = ENGINE_DEFAULTS if own is None else own.kwargs()
        given.update({k: base[k] for k in unset})
    num_steps, step_size, noise_scale = (given[k] for k in ("num_steps", "step_size",
                                                             "noise_scale"))
    init, bounds, denoise_steps = given["init"], given["bounds"], given["denoise_steps"]
    if isinstance(denoise_steps, bool) or int(denoise_steps) != denoise_steps or \
            denoise_steps < 0:
        raise ValueError(f"denoise_steps must be an integer >= 0, got {denoise_steps!r}")
    bounds = check_bounds(bounds)
    x0 = _prepare(energy, x0_or_shape, init, bounds, generator, device, dtype)
    if noise_scale is None:
        def step(state, k):
            return ula_step(state, energy, step_size=_step_at(step_size, k), bounds=bounds,
                            boundary=boundary, grad_clip=grad_clip, generator=generator)
    else:
        def step(state, k):
            return langevin_step(state, energy, step_size=_step_at(step_size, k),
                                 noise_scale=noise_scale, bounds=bounds, boundary=boundary,
                                 grad_clip=grad_clip, generator=generator)
    state = init_state(energy, x0, evaluate=False)
    if return_trace:
        keep_every, return_info = keep_every or 1, True
    state, result = run_chain(step, state, num_steps, keep_every=keep_every, progress=progress,
                              desc="langevin", record_stats=return_trace,
                              step_size_of=lambda s, k: _step_at(step_size, k))
    last = _step_at(step_size, max(num_steps - 1, 0))
    result = result._replace(step_size=last)
    if denoise_steps:
        # eq. (3)'s drift is half the step; the decoupled form's is the whole step
        drift = last if noise_scale is not None else last / 2

        def descend(state, k):
            return langevin_step(state, energy, step_size=drift, noise_scale=0.0,
                                 bounds=bounds, boundary=boundary, grad_clip=grad_clip)
        state, _ = run_chain(descend, state, int(denoise_steps), desc="denoise")
    return _finish(state.x, result, return_info)


def mala(energy, x0_or_shape, num_steps: int = 100, step_size=0.01, *, init="uniform",
         bounds=None, boundary: str = "reject", grad_clip: float | None = None,
         adapt_steps: int = 0, target_accept: float = 0.574,
         generator: torch.Generator | None = None, keep_every: int = 0,
         progress: bool = False, return_info: bool = False, device=None, dtype=None,
         return_trace: bool = False):
    """Metropolis-adjusted Langevin (per-chain accept/reject); returns the final samples.

    Targets exp(-E) exactly (restricted to ``bounds`` with the default ``boundary="reject"``).
    The proposal is the paper's eq. (3) step. During the first ``adapt_steps`` steps each
    chain's step size follows a Robbins-Monro recursion toward ``target_accept`` (0.574 is
    optimal for MALA in high dimension), started from a doubling/halving search around the
    given ``step_size`` (:mod:`conceptebm.infer.adapt`); it is frozen afterwards, so later
    steps are exact MCMC.
    Discard the adaptation steps (e.g. via ``keep_every`` trajectories) for unbiased estimates.

    ``return_trace=True`` returns ``(x, ChainResult)`` with every state kept (``keep_every``
    defaults to 1) and each step's acceptance probability, accept decision and per-chain step
    size (``accept_trace``, ``accepted_trace``, ``step_size_trace``, each ``(steps, chains)``);
    :func:`conceptebm.evaluate.posterior.chain_to_arviz` turns it into ArviZ data. Without it
    nothing changes (same draws from the same generator).

    Example:
        >>> from conceptebm.energies import Gaussian
        >>> g = Gaussian(torch.zeros(2), 1.0)
        >>> x, info = mala(g, (256, 2), num_steps=100, step_size=0.5, init="gaussian",
        ...                return_info=True)
        >>> bool(info.accept_rate.mean() > 0.5)
        True
    """
    bounds = check_bounds(bounds)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
    if adapt_steps < 0:
        raise ValueError(f"adapt_steps must be >= 0, got {adapt_steps}")
    if adapt_steps and callable(step_size):
        raise ValueError("use either a step-size schedule or adapt_steps, not both")
    x0 = _prepare(energy, x0_or_shape, init, bounds, generator, device, dtype)
    if bounds is not None and boundary == "reject" and (
            (x0 < bounds.low) | (x0 > bounds.high)).any():
        raise ValueError(
            f"x0 has values in [{x0.min().item():.4g}, {x0.max().item():.4g}] outside bounds "
            f"({bounds.low}, {bounds.high}); with boundary='reject' chains must start inside "
            "the box (init='uniform' or 'smooth' draws inside it)"
        )
    common = dict(bounds=bounds, boundary=boundary, grad_clip=grad_clip, generator=generator)
    state = init_state(energy, x0)
    if return_trace:
        keep_every, return_info = keep_every or 1, True
    record = dict(record_stats=return_trace, progress=progress, keep_every=keep_every)
    if adapt_steps:
        # The adaptation state travels with the chain state, so the step stays pure.
        def step(s, k):
            chain, info = mala_step(s.chain, energy, step_size=s.adapt.step_size, **common)
            adapt = (update_step_size(s.adapt, info.accept_prob, target_accept=target_accept)
                     if k < adapt_steps else s.adapt)  # frozen afterwards: exact MCMC
            return AdaptiveState(chain, adapt), info

        start = AdaptiveState(state, init_step_size(state, energy, step_size, **common))
        end, result = run_chain(step, start, num_steps, desc="mala",
                                step_size_of=lambda s, k: s.adapt.step_size, **record)
        state, final_eps = end.chain, end.adapt.step_size
    else:
        def step(s, k):
            return mala_step(s, energy, step_size=_step_at(step_size, k), **common)

        state, result = run_chain(step, state, num_steps, desc="mala",
                                  step_size_of=lambda s, k: _step_at(step_size, k), **record)
        final_eps = _step_at(step_size, max(num_steps - 1, 0))
    result = result._replace(state=state, step_size=final_eps)
    if math.isnan(float(result.accept_rate.float().mean())):  # pragma: no cover - defensive
        raise FloatingPointError("MALA produced NaN acceptance rates")
    return _finish(state.x, result, return_info)

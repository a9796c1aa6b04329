"""Per-chain step-size adaptation for MALA, as a pure state and update (BlackJAX style).

Written once and used by :func:`~conceptebm.infer.chain.mala` (``adapt_steps``) and by the
Pyro :class:`~conceptebm.infer.pyro.kernels.MALAKernel` (``adapt_step_size``, during warmup):

* :func:`init_step_size` starts it: a doubling/halving search per chain
  (:func:`initial_log_step`) from the given step size, because the decaying Robbins-Monro gain
  alone cannot recover from a step that is wrong by orders of magnitude;
* :func:`update_step_size` is one Robbins-Monro update of each chain's log step size toward a
  target acceptance probability, with gain ``(count + 1) ** -RM_DECAY``;
* the caller stops updating after its adaptation window and keeps ``state.step_size``, so the
  later steps are an exact MCMC kernel.

Example:
    >>> from conceptebm.energies import Gaussian
    >>> from conceptebm.infer.samplers import init_state, mala_step
    >>> g = Gaussian(torch.zeros(2), 1.0)
    >>> s = init_state(g, torch.randn(64, 2))
    >>> a = init_step_size(s, g, 1e-3)  # the search climbs from 1e-3 toward ~1
    >>> bool(a.step_size.min() > 0.1)
    True
    >>> for _ in range(50):
    ...     s, info = mala_step(s, g, step_size=a.step_size)
    ...     a = update_step_size(a, info.accept_prob, target_accept=0.574)
    >>> a.count, tuple(a.step_size.shape)
    (50, (64,))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from conceptebm.infer.samplers import LangevinState, mala_step

__all__ = ["StepSizeState", "init_step_size", "update_step_size", "initial_log_step",
           "RM_DECAY"]

#: Exponent of the Robbins-Monro gain ``(count + 1) ** -RM_DECAY``: in (1/2, 1], so the gains
#: sum to infinity (the size can still travel) while their squares do not (it settles).
RM_DECAY = 0.6


class StepSizeState(NamedTuple):
    """Adaptation state: each chain's log step size and how many updates it has had."""

    log_step: Tensor  # (chains,)
    count: int = 0

    @property
    def step_size(self) -> Tensor:
        """``(chains,)`` step sizes, ``exp(log_step)``."""
        return self.log_step.exp()


def initial_log_step(state: LangevinState, energy, log_step: Tensor, *, bounds=None,
                     boundary: str = "reject", grad_clip: float | None = None,
                     generator: torch.Generator | None = None, max_tries: int = 30) -> Tensor:
    """Per chain, double or halve the step until one proposal's acceptance crosses 1/2.

    Takes and returns log step sizes ``(chains,)``. The heuristic of Hoffman & Gelman (2014,
    Alg. 4) that starts step adaptation: the Robbins-Monro gain decays, so on its own it
    cannot climb from a step that is wrong by orders of magnitude (from 1e-3 it reached only
    ~0.09 of a needed ~1 in 300 steps). The chains do not move here; each trial draws one
    proposal (and one uniform) from ``generator``.
    """
    prob = mala_step(state, energy, step_size=log_step.exp(), bounds=bounds, boundary=boundary,
                     grad_clip=grad_clip, generator=generator)[1].accept_prob
    direction = torch.where(prob > 0.5, 1.0, -1.0).to(log_step)  # (chains,) grow or shrink
    active = torch.ones_like(prob, dtype=torch.bool)
    for _ in range(max_tries):
        trial = log_step + direction * math.log(2.0) * active
        prob = mala_step(state, energy, step_size=trial.exp(), bounds=bounds,
                         boundary=boundary, grad_clip=grad_clip,
                         generator=generator)[1].accept_prob
        # keep growing while still accepting well / keep shrinking until it accepts
        keep = active & ((direction > 0) == (prob > 0.5))
        log_step = torch.where(active & ((direction < 0) | keep), trial, log_step)
        active = keep
        if not active.any():
            break
    return log_step


def init_step_size(state: LangevinState, energy, step_size, *, bounds=None,
                   boundary: str = "reject", grad_clip: float | None = None,
                   generator: torch.Generator | None = None) -> StepSizeState:
    """Start adaptation at ``state``: :func:`initial_log_step` around ``step_size``.

    Args:
        state: the chains' start, with energy and gradient cached
            (:func:`~conceptebm.infer.samplers.init_state`).
        energy: the target energy ``(chains, *event) -> (chains,)``.
        step_size: a float or ``(chains,)`` tensor, the search's starting point.
        bounds, boundary, grad_clip, generator: as for
            :func:`~conceptebm.infer.samplers.mala_step`.
    """
    x = state.x  # (chains, *event)
    base = torch.as_tensor(step_size, dtype=x.dtype, device=x.device)
    log_step = base.expand(x.shape[0]).log()  # (chains,)
    log_step = initial_log_step(state, energy, log_step, bounds=bounds, boundary=boundary,
                                grad_clip=grad_clip, generator=generator)
    return StepSizeState(log_step, 0)


def update_step_size(adapt: StepSizeState, accept_prob: Tensor, *,
                     target_accept: float = 0.574) -> StepSizeState:
    """One Robbins-Monro update per chain: ``log_step += gain * (accept_prob - target)``.

    ``accept_prob`` is the ``(chains,)`` Metropolis acceptance probability of the step just
    taken (``StepInfo.accept_prob``); 0.574 is MALA's optimal acceptance in high dimension.
    The gain ``(count + 1) ** -RM_DECAY`` decays, so the step size settles.
    """
    gain = (adapt.count + 1) ** -RM_DECAY
    return StepSizeState(adapt.log_step + gain * (accept_prob - target_accept), adapt.count + 1)

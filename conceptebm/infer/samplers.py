"""Langevin samplers as pure state-in/state-out steps (BlackJAX style).

A sampler step is ``step(state, energy_fn, *, step_size, ...) -> (state, info)``. The chain is
the batch dimension: ``energy_fn`` maps ``(chains, *event) -> (chains,)`` and every test is per
chain. ``info`` holds per-chain diagnostics and is never fed back.

Three steps share one proposal machinery:

* :func:`ula_step`: the paper's eq. (3), ``x - (lambda/2) grad E + N(0, lambda)``. Targets
  exp(-E) up to an O(lambda) discretisation bias (no Metropolis correction).
* :func:`langevin_step`: the decoupled form used to train EBMs,
  ``x - step_size * grad E + noise_scale * N(0, 1)``. It does **not** target exp(-E): with
  step 100 and noise 0.005 (the usual training constants) it is noisy gradient descent.
* :func:`mala_step`: the eq. (3) proposal plus a per-chain Metropolis-Hastings test, which
  targets exp(-E) exactly (restricted to ``bounds`` with ``boundary="reject"``). A proposal
  whose energy or gradient is not finite is rejected and counted in ``info.nonfinite``.

Step sizes may be floats or per-chain tensors of shape ``(chains,)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "LangevinState",
    "StepInfo",
    "Bounds",
    "energy_and_grad",
    "init_state",
    "ula_step",
    "langevin_step",
    "mala_step",
    "check_bounds",
    "apply_bounds",
]

BOUNDARIES = ("clamp", "reflect", "reject")


class LangevinState(NamedTuple):
    """Chain state. ``energy``/``grad`` cache E(x) and its gradient at ``x`` (or are ``None``
    when a step did not need them, as ULA's, which saves one energy evaluation per step)."""

    x: Tensor  # (chains, *event)
    energy: Tensor | None = None  # (chains,)
    grad: Tensor | None = None  # (chains, *event)


class StepInfo(NamedTuple):
    """Per-chain diagnostics of one step."""

    energy: Tensor  # (chains,) energy at the state the step started from
    accept_prob: Tensor  # (chains,) Metropolis acceptance probability (1 for ULA)
    accepted: Tensor  # (chains,) bool
    nonfinite: Tensor  # (chains,) bool: proposal energy or gradient was NaN/inf
    grad_norm: Tensor  # (chains,) L2 norm of the (unclipped) gradient


class Bounds(NamedTuple):
    low: float
    high: float


def check_bounds(bounds) -> Bounds | None:
    """Validate ``(low, high)``; ``None`` means unbounded."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds need low < high, got low={low}, high={high}")
    return Bounds(low, high)


def _positive_step(step_size, name: str = "step_size"):
    if isinstance(step_size, Tensor):
        if not (torch.isfinite(step_size).all() and (step_size > 0).all()):
            raise ValueError(f"{name} must be finite and > 0 for every chain")
        return step_size
    step_size = float(step_size)
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {step_size}")
    return step_size


def _per_chain(v, x: Tensor):
    """Broadcast a float or (chains,) tensor against x of shape (chains, *event)."""
    if isinstance(v, Tensor) and v.dim() > 0:
        if v.numel() not in (1, x.shape[0]):
            raise ValueError(
                f"a per-chain step size or noise scale needs 1 or {x.shape[0]} values (one per "
                f"chain), got shape {tuple(v.shape)}"
            )
        return v.to(x).reshape(-1, *([1] * (x.dim() - 1)))
    return v


def energy_and_grad(energy_fn, x: Tensor) -> tuple[Tensor, Tensor]:
    """E(x) of shape ``(chains,)`` and dE/dx, without touching parameter gradients."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy_fn(x)
        if e.shape != (x.shape[0],):
            raise ValueError(
                f"energy returned shape {tuple(e.shape)} for {x.shape[0]} chains; it must "
                f"return one energy per chain, shape ({x.shape[0]},)"
            )
        if not e.requires_grad:
            raise ValueError(
                "the energy's output does not depend differentiably on x (no grad_fn): was it "
                "computed under torch.no_grad(), or detached? Samplers need dE/dx."
            )
        (g,) = torch.autograd.grad(e.sum(), x, allow_unused=True)
    # allow_unused: an energy that ignores x (a flat target) has gradient zero.
    return e.detach(), torch.zeros_like(x) if g is None else g


def init_state(energy_fn, x: Tensor, *, evaluate: bool = True) -> LangevinState:
    """A state at ``x``; with ``evaluate`` the energy and gradient are computed and cached."""
    if x.dim() < 2:
        raise ValueError(
            f"x must have shape (chains, *event) with at least 2 dims, got {tuple(x.shape)}; "
            "for scalar targets use shape (chains, 1)"
        )
    if not evaluate:
        return LangevinState(x.detach())
    e, g = energy_and_grad(energy_fn, x)
    return LangevinState(x.detach(), e, g)


def _chain_norm(g: Tensor) -> Tensor:
    # linalg.vector_norm, not Tensor.norm: the latter goes through torch.functional.norm's
    # Python argument handling (~0.04 ms a call, 3% of a 50-step run in engine_overhead.py).
    norm = torch.linalg.vector_norm(g.flatten(1), dim=1)  # (chains,)
    over = torch.isinf(norm)
    if over.any():
        # Finite entries whose squares overflow (|g| > ~1e19 in float32) give an inf norm,
        # which would read as a non-finite gradient and make grad_clip zero the drift.
        # Rescale those chains; a genuinely inf/NaN entry still gives a non-finite norm.
        gf = g.flatten(1)[over]
        top = gf.abs().amax(1)
        norm = norm.clone()
        norm[over] = (gf / top[:, None]).norm(dim=1) * top
    return norm


def _clip(g: Tensor, grad_clip: float | None) -> tuple[Tensor, Tensor]:
    """Per-chain L2 clipping; returns the clipped gradient and the unclipped norms."""
    norm = _chain_norm(g)
    if grad_clip is None:
        return g, norm
    scale = (grad_clip / norm.clamp_min(1e-12)).clamp(max=1.0)
    return g * _per_chain(scale, g), norm


def apply_bounds(x: Tensor, bounds: Bounds | None, boundary: str) -> Tensor:
    """Project (clamp) or fold (reflect) x into the box; "reject" leaves x for the MH test."""
    if bounds is None or boundary == "reject":
        return x
    if boundary == "clamp":
        return x.clamp(bounds.low, bounds.high)
    width = bounds.high - bounds.low
    y = torch.remainder(x - bounds.low, 2 * width)
    return torch.where(y > width, 2 * width - y, y) + bounds.low


def _noise(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _raise_nonfinite(e: Tensor, gnorm: Tensor, where: str) -> None:
    # A gradient with a NaN/inf entry has a NaN/inf norm: checking the (chains,) norms that
    # _clip computes anyway saves a full isfinite pass over the batch (~0.3 ms per step for
    # 64 images of 3x32x32 on one CPU thread, benchmarks/engine_overhead.py).
    bad = ~(torch.isfinite(e) & torch.isfinite(gnorm))
    if bad.any():
        idx = bad.nonzero().flatten()[:8].tolist()
        raise FloatingPointError(
            f"non-finite energy or gradient {where} for chains {idx}: check the energy for "
            "overflow, or lower step_size / set grad_clip"
        )


def langevin_step(state: LangevinState, energy_fn, *, step_size, noise_scale: float,
                  bounds=None, boundary: str = "clamp", grad_clip: float | None = None,
                  generator: torch.Generator | None = None) -> tuple[LangevinState, StepInfo]:
    """Decoupled Langevin: ``x' = x - step_size * g + noise_scale * N(0, 1)``, then bounds.

    Does not target exp(-E) unless ``noise_scale**2 == 2 * step_size``; it is the sampler of
    EBM training (official code: step 100, noise 0.001-0.005, clamp to [0, 1]). Non-finite
    energies raise ``FloatingPointError`` since there is no Metropolis test to reject them.
    """
    step_size = _positive_step(step_size)
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale}")
    return _unadjusted(state, energy_fn, step_size, noise_scale, bounds, boundary, grad_clip,
                       generator)


def ula_step(state: LangevinState, energy_fn, *, step_size, bounds=None,
             boundary: str = "clamp", grad_clip: float | None = None,
             generator: torch.Generator | None = None) -> tuple[LangevinState, StepInfo]:
    """Unadjusted Langevin in the paper's form, eq. (3): ``x - (l/2) g + N(0, l)``, l = step.

    Targets exp(-E) with an O(step_size) bias: on a Gaussian of variance s^2 the stationary
    variance is s^2 / (1 - step_size / (4 s^2)).
    """
    step_size = _positive_step(step_size)
    half = step_size / 2
    noise = step_size ** 0.5 if not isinstance(step_size, Tensor) else step_size.sqrt()
    return _unadjusted(state, energy_fn, half, noise, bounds, boundary, grad_clip, generator)


def _unadjusted(state, energy_fn, drift, noise, bounds, boundary, grad_clip, generator):
    bounds = check_bounds(bounds)
    if boundary not in ("clamp", "reflect"):
        raise ValueError(f"boundary for unadjusted Langevin must be 'clamp' or 'reflect', "
                         f"got {boundary!r} (use mala_step for 'reject')")
    x = state.x
    if state.grad is None:
        e, g = energy_and_grad(energy_fn, x)
    else:
        e, g = state.energy, state.grad
    g, gnorm = _clip(g, grad_clip)
    _raise_nonfinite(e, gnorm, "in a Langevin step")
    # Fused, in-place updates where the coefficients are floats: one pass per term.
    if isinstance(drift, Tensor):
        x_new = x - _per_chain(drift, x) * g  # (chains, *event)
    else:
        x_new = torch.add(x, g, alpha=-drift)  # (chains, *event)
    if isinstance(noise, Tensor):
        x_new += _per_chain(noise, x) * _noise(x, generator)
    elif noise != 0.0:
        x_new.add_(_noise(x, generator), alpha=noise)
    x_new = apply_bounds(x_new, bounds, boundary)
    ones = torch.ones_like(e)
    info = StepInfo(e, ones, ones.bool(), torch.zeros_like(ones, dtype=torch.bool), gnorm)
    # The next step evaluates at x_new itself: caching here would cost an extra evaluation.
    return LangevinState(x_new.detach()), info


def mala_step(state: LangevinState, energy_fn, *, step_size, bounds=None,
              boundary: str = "reject", grad_clip: float | None = None,
              generator: torch.Generator | None = None) -> tuple[LangevinState, StepInfo]:
    """Metropolis-adjusted Langevin with a per-chain accept/reject.

    Proposal (same as eq. 3): ``x' = x - (l/2) g(x) + sqrt(l) N(0, 1)``. Acceptance
    ``min(1, exp(E(x) - E(x') + log q(x|x') - log q(x'|x)))`` per chain. Targets exp(-E)
    exactly; with ``bounds`` and ``boundary="reject"`` (default) it targets exp(-E) restricted
    to the box (proposals outside are rejected). ``"clamp"``/``"reflect"`` are approximate.
    ``grad_clip`` clips the drift at both ends of the proposal, so the test stays exact.
    A proposal with non-finite energy or gradient is rejected and counted in ``info.nonfinite``.
    """
    step_size = _positive_step(step_size)
    bounds = check_bounds(bounds)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    x = state.x
    if state.grad is None or state.energy is None:
        state = init_state(energy_fn, x)
    e, g = state.energy, state.grad
    eps = _per_chain(step_size, x)  # float or (chains, 1, ...)
    gc, gnorm = _clip(g, grad_clip)
    _raise_nonfinite(e, gnorm, "at the current state (MALA needs a finite start)")

    prop = x - 0.5 * eps * gc + (eps ** 0.5) * _noise(x, generator)
    prop = apply_bounds(prop, bounds, boundary)
    e_p, g_p = energy_and_grad(energy_fn, prop)
    gc_p, gnorm_p = _clip(g_p, grad_clip)

    def log_q(to: Tensor, frm: Tensor, g_frm: Tensor) -> Tensor:  # log q(to | frm), (chains,)
        d = (to - frm + 0.5 * eps * g_frm) ** 2 / (2 * eps)
        return -d.flatten(1).sum(1)

    finite = torch.isfinite(e_p) & torch.isfinite(gnorm_p)  # (chains,) see _raise_nonfinite
    if bounds is not None and boundary == "reject":
        inside = ((prop >= bounds.low) & (prop <= bounds.high)).flatten(1).all(1)
    else:
        inside = torch.ones_like(finite)
    log_alpha = (e - e_p) + log_q(x, prop, gc_p) - log_q(prop, x, gc)
    log_alpha = torch.where(finite & inside, log_alpha, torch.full_like(log_alpha, -math.inf))
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
    accept_prob = log_alpha.clamp(max=0.0).exp()  # (chains,)
    u = torch.rand(accept_prob.shape, generator=generator, device=x.device, dtype=x.dtype)
    accepted = u < accept_prob  # (chains,)

    sel = _per_chain(accepted, x).bool()
    new = LangevinState(
        torch.where(sel, prop, x).detach(),
        torch.where(accepted, e_p, e),
        torch.where(sel, g_p, g),
    )
    return new, StepInfo(e, accept_prob, accepted, ~finite, gnorm)

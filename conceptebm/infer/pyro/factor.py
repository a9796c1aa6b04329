"""EBM terms in Pyro models: ``energy_factor``, a checked ``pyro.factor(name, -E)``.

An EBM enters any Pyro model as ``pyro.factor(name, -E)`` (speak energy: lower is more
probable). :func:`energy_factor` does the bookkeeping Pyro leaves to the user: it flattens the
broadcast plate dims for the network, reshapes back, and refuses a factor whose shape does not
equal the enclosing plates' batch shape (a ``(B, 1)`` factor inside ``plate(B)`` would silently
broadcast to ``(B, B)`` and count every energy B times).

Example (one joint model serves generation and inference):
    >>> import pyro, pyro.distributions as dist
    >>> from pyro import poutine
    >>> from conceptebm.energies import Gaussian
    >>> def model(n):
    ...     with pyro.plate("chains", n):
    ...         x = pyro.sample("x", dist.Uniform(-4., 4.).expand([2]).to_event(1))
    ...         energy_factor("ebm", Gaussian(torch.zeros(2), 1.0), x, event_dim=1)
    >>> from conceptebm.infer.pyro import ModelPotential
    >>> pot = ModelPotential(model, (32,))              # (chains, 2) -> (chains,)
    >>> from conceptebm.infer import mala
    >>> mala(pot, pot.initial, num_steps=20, step_size=0.5, bounds=pot.bounds).shape
    torch.Size([32, 2])
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.runtime import get_plates
from torch import Tensor

from conceptebm.energies.base import ConditionalEnergy, Energy

__all__ = ["energy_factor", "plate_shape"]

#: key of a factor site's ``infer`` dict holding the energy ``E`` (the site's log-prob is -E)
ENERGY_KEY = "conceptebm_energy"


def plate_shape() -> tuple[int, ...]:
    """Batch shape implied by the enclosing vectorized ``pyro.plate`` contexts (right-aligned)."""
    frames = [f for f in get_plates() if f.vectorized]
    if not frames:
        return ()
    shape = [1] * max(-f.dim for f in frames)
    for f in frames:
        shape[f.dim] = f.size
    return tuple(shape)


def energy_factor(name: str, energy, x: Tensor, c=None, *, event_dim: int) -> Tensor:
    """Add ``pyro.factor(name, -E(x[, c]))`` to the current model; returns E (plates' shape).

    Pyro hands sites broadcast leading dims such as ``(particles, views)``; networks want
    ``(N, *event)``. The leading dims of ``x`` (all but the last ``event_dim``) and of ``c``
    (all but its last) are broadcast, flattened for one batched call, and reshaped back. The
    result must have exactly the enclosing plates' batch shape, else ``ValueError``.

    Args:
        name: site name of the factor.
        energy: an :class:`Energy` (or callable ``x -> (N,)``), or a
            :class:`ConditionalEnergy` (or callable ``(x, c) -> (N,)``) when ``c`` is given.
        x: ``(*lead_x, *event)``, e.g. images with ``event_dim=3``.
        c: concept value for a conditional energy: a tensor ``(*lead_c, dim)``, or anything
            ``energy.concept.encode`` accepts (``"red"``, numbers).
        event_dim: number of trailing dims of ``x`` that form one item.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> def model():
        ...     with pyro.plate("chains", 4):
        ...         x = pyro.sample("x", dist.Normal(0., 3.).expand([2]).to_event(1))
        ...         energy_factor("ebm", Gaussian(torch.zeros(2), 1.0), x, event_dim=1)
        >>> tr = pyro.poutine.trace(model).get_trace()
        >>> tr.nodes["ebm"]["fn"].batch_shape
        torch.Size([4])
    """
    if int(event_dim) != event_dim or event_dim < 0:
        raise ValueError(f"event_dim must be an integer >= 0, got {event_dim!r}")
    if not isinstance(x, Tensor) or x.dim() < event_dim:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"energy_factor {name!r}: x must be a tensor with at least "
                         f"event_dim={event_dim} dims, got {shape}")
    conditional = isinstance(energy, ConditionalEnergy)
    if conditional and c is None:
        raise ValueError(f"energy_factor {name!r}: {energy!r} is conditional; pass its concept "
                         "value as c (a tensor (..., dim) or a name such as 'red')")
    if isinstance(energy, Energy) and c is not None:
        raise ValueError(f"energy_factor {name!r}: {energy!r} is unconditional but c was given; "
                         "drop c or pass the ConditionalEnergy itself")
    event = x.shape[x.dim() - event_dim:]
    if c is None:
        lead = x.shape[: x.dim() - event_dim]
        e = energy(_flat(x, lead, event))  # (N,)
    else:
        if not isinstance(c, Tensor):
            concept = getattr(energy, "concept", None)
            c = concept.encode(c) if concept is not None else torch.as_tensor(c)
        c = c.to(device=x.device, dtype=x.dtype) if c.is_floating_point() else c.to(x.device)
        if c.dim() < 1:
            raise ValueError(f"energy_factor {name!r}: c must have shape (..., dim), got ()")
        lead_x, lead_c = x.shape[: x.dim() - event_dim], c.shape[:-1]
        # the common case, equal leading shapes, skips torch.broadcast_shapes: ~28 us a call
        # inside Pyro's handlers, once per sampler step (benchmarks/engine_overhead.py)
        lead = lead_x if lead_x == lead_c else torch.broadcast_shapes(lead_x, lead_c)
        xf = _flat(x, lead, event)  # (N, *event)
        cf = _flat(c, lead, c.shape[-1:])  # (N, dim)
        e = energy(xf, cf)  # (N,)
    n = math.prod(lead)
    if not isinstance(e, Tensor) or e.shape != (n,):
        got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
        raise ValueError(f"energy_factor {name!r}: the energy returned {got} for a flattened "
                         f"batch of {n}; it must return shape ({n},)")
    if len(lead) != 1:
        e = e.reshape(lead)
    _check_plates(name, tuple(lead))
    # pyro.factor(name, -e), spelled out so the site also carries E itself: ModelPotential
    # sums energies from there instead of from Pyro's Unit log-prob (-E, expanded twice)
    unit = dist.Unit(-e)
    pyro.sample(name, unit, obs=unit.sample(), infer={"is_auxiliary": True, ENERGY_KEY: e})
    return e


def _flat(t: Tensor, lead: tuple, event: tuple) -> Tensor:
    """``t`` broadcast to ``(*lead, *event)`` and flattened to ``(N, *event)``; returned as it
    is when it already has that shape (one plate: no view ops for the backward pass to walk)."""
    if len(lead) == 1 and t.shape[:1] == lead and t.dim() == 1 + len(event):
        return t
    return t.expand(*lead, *event).reshape(-1, *event)


def _check_plates(name: str, lead: tuple[int, ...]) -> None:
    want = plate_shape()
    got = lead
    while len(got) > len(want) and got[0] == 1:  # extra leading singleton dims are harmless
        got = got[1:]
    padded = (1,) * (len(want) - len(got)) + got
    if padded != want:
        raise ValueError(
            f"energy_factor {name!r}: energies have batch shape {lead} but the enclosing plates "
            f"give {want}. Pyro would broadcast the factor to the plates' shape and count energies "
            "more than once (a (B, 1) factor inside plate(B) becomes (B, B)). Give x and c one "
            "leading dim per plate, each of the plate's size or 1, aligned with the plates' dims, "
            "and declare a pyro.plate for every batch dim."
        )

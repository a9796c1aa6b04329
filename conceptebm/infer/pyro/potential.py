"""Per-chain potentials derived from a Pyro model (part of the Pyro glue).

:class:`ModelPotential` turns a (conditioned) model into an :class:`~conceptebm.energies.Energy`
over its latent sites, ``potential(z (chains, *rest)) -> (chains,)``, which every sampler and
optimizer of the engine consumes directly. Each chain is one element of the model's chain plate;
site log-probs are reduced to that plate's dim, so a Metropolis test can be per chain. Two spaces:

* ``"constrained"``: the sites' own space (pixels, concept values) and **no Jacobian**. Flat box
  priors (``Uniform``, ``ImproperUniform``) are constant inside the box and are left out; the box
  itself becomes :attr:`ModelPotential.bounds`, kept by the sampler (clamp/reflect/reject) or
  the optimizer. This is the space for pixel-space Langevin and for MAP: the Jacobian of a
  change of variables moves the mode.
* ``"unconstrained"``: Pyro's HMC convention, ``z = biject_to(support).inv(value)`` and the
  potential includes ``-log|det J|``; it targets the same distribution with no bounds to keep.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.distributions.util import scale_and_mask
from pyro.infer.autoguide.initialization import InitMessenger, init_to_uniform, init_to_value
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import Tensor
from torch.distributions import biject_to, constraints

from conceptebm.energies.base import Energy
from conceptebm.infer.pyro.factor import ENERGY_KEY
from conceptebm.infer.samplers import Bounds

__all__ = ["ModelPotential", "support_limits", "SPACES"]

SPACES = ("constrained", "unconstrained")


def _base(fn):
    """Strip Independent / expand / mask wrappers to reach the underlying distribution."""
    while isinstance(fn, (dist.Independent, ExpandedDistribution, MaskedDistribution)):
        fn = fn.base_dist
    return fn


def _is_flat_box(fn) -> bool:
    return isinstance(_base(fn), (dist.Uniform, dist.ImproperUniform))


def support_limits(support) -> tuple:
    """``(lower, upper)`` of a support (numbers or tensors; ``None`` where unbounded), after
    unwrapping ``independent``. Raises for supports that are neither boxes nor the real line."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.real:
        return None, None
    low = getattr(support, "lower_bound", None)
    high = getattr(support, "upper_bound", None)
    if low is None and high is None:
        raise ValueError(f"support {support} is not a box; use space='unconstrained' for it")
    return low, high


def _support_bounds(name: str, support) -> Bounds | None:
    """Scalar (low, high) of a box support for the samplers; None for the real line."""
    limits = support_limits(support)
    if limits == (None, None):
        return None
    vals = []
    for b, inf in zip(limits, (-math.inf, math.inf), strict=True):
        if b is None:
            vals.append(inf)
            continue
        t = torch.as_tensor(b)
        if t.numel() > 1 and not bool((t == t.flatten()[0]).all()):
            raise ValueError(f"site {name!r} has a support with per-coordinate bounds; the "
                             "samplers keep one (low, high) box, so use space='unconstrained'")
        vals.append(float(t.flatten()[0]))
    return Bounds(vals[0], vals[1])


class _Sites(Messenger):
    """What ``block(trace(condition(model, data)))`` gives the potential, in one handler.

    Sets the named sample sites to ``data`` (observed), keeps each sample site's message in
    :attr:`sites` (name -> message; no copies, no ``Trace`` graph) and hides every message from
    the handlers outside, as ``poutine.block`` does. The potential runs the model once per
    sampler step, and the three stacked handlers cost about 0.05 ms a run of Python bookkeeping
    (``benchmarks/engine_overhead.py``). The validated ``Trace`` of the model is built once,
    at construction.
    """

    def __init__(self, data: dict):
        super().__init__()
        self.data, self.sites = data, {}

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample":
            value = self.data.get(msg["name"])
            if value is not None:
                msg["value"], msg["is_observed"] = value, True
        msg["stop"] = True  # hidden from outer handlers (poutine.block)

    def _postprocess_message(self, msg) -> None:
        if msg["type"] == "sample":
            self.sites[msg["name"]] = msg


def _unvalidated():
    """Pyro's validation switched off for one model run (support checks of every pixel each
    sampler step), or nothing to do when a caller such as ``run_kernel`` or ``MCMC`` already
    switched it off for the whole loop (the context manager costs ~0.02 ms a call)."""
    if dist.is_validation_enabled() or poutine.is_validation_enabled():
        return pyro.validation_enabled(False)
    return contextlib.nullcontext()


def _with_outer_plate(model, size: int, dim: int):
    def wrapped(*args, **kwargs):
        with pyro.plate("_restarts", size, dim=dim):
            return model(*args, **kwargs)

    return wrapped


class ModelPotential(Energy):
    """``-log p(latent, observed)`` of a Pyro model as an energy over its latent sites.

    Built once from a validated trace of the model (MCMC disables validation, so shape bugs
    surface here). Calling it maps ``z (chains, *rest)`` to energies ``(chains,)``; with several
    latent sites ``z`` packs them as ``(chains, D)``. :meth:`pack`/:meth:`unpack` convert between
    ``z`` and the dict of site values, :meth:`constrained` maps ``z`` to the model's space.

    Args:
        model: a Pyro model whose unobserved sample sites are the latent (condition the rest,
            e.g. ``poutine.condition(model, data={"c": c})``).
        args, kwargs: the model's arguments.
        latent: optional names of the latent sites, checked against the model (and their order).
        space: ``"constrained"`` (default; no Jacobian, flat box priors become :attr:`bounds`)
            or ``"unconstrained"`` (Pyro's transforms and ``-log|det J|``).
        chain_plate: name of the plate whose elements are chains; default the outermost plate
            enclosing every latent site, or a single chain if there is none. Every term that
            depends on a chain's latent should sit inside this plate; terms outside it are split
            evenly over the chains (sums and gradients stay exact; per-chain MH is exact only
            when the model factorizes over the chain plate).
        init: constrained initial values ``{site: tensor}``; other sites use ``init_strategy``.
            Needed for improper priors (``ImproperUniform``), which cannot be sampled.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model():
        ...     with pyro.plate("chains", 8):
        ...         x = pyro.sample("x", dist.ImproperUniform(dist.constraints.real, (), (2,)))
        ...         energy_factor("ebm", Gaussian(torch.zeros(2), 1.0), x, event_dim=1)
        >>> pot = ModelPotential(model, init={"x": torch.zeros(8, 2)})
        >>> pot(torch.ones(8, 2)).shape
        torch.Size([8])
    """

    def __init__(self, model: Callable, args: Sequence = (), kwargs: dict | None = None, *,
                 latent: Sequence[str] | None = None, space: str = "constrained",
                 chain_plate: str | None = None, init: dict | None = None,
                 init_strategy: Callable = init_to_uniform):
        super().__init__()
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model, self.args, self.kwargs = model, tuple(args), dict(kwargs or {})
        self.space = space
        trace = self._prototype(init or {}, init_strategy)
        self._find_latent(trace, latent)
        self._find_chain_plate(trace, chain_plate)
        self._layout(trace)

    # ------------------------------------------------------------------ setup
    def _prototype(self, init: dict, init_strategy):
        strategy = init_to_value(values=dict(init), fallback=init_strategy)
        try:
            with pyro.validation_enabled(True), poutine.block():
                return poutine.trace(InitMessenger(strategy)(self.model)).get_trace(
                    *self.args, **self.kwargs)
        except NotImplementedError as err:
            raise ValueError(
                "could not draw initial values for the model's latent sites (an improper prior "
                "such as ImproperUniform cannot be sampled): pass init={'site': value} "
                f"(or MCMC(initial_params=...)). Pyro said: {err}") from err

    def _find_latent(self, trace, latent) -> None:
        found = [n for n, s in trace.nodes.items() if s["type"] == "sample"
                 and not s["is_observed"] and not site_is_subsample(s)]
        for n in found:
            if trace.nodes[n]["fn"].has_enumerate_support:
                raise ValueError(f"site {n!r} is discrete; the engine's samplers move continuous "
                                 "latents only: condition it or marginalize it in the model")
        if not found:
            raise ValueError("the model has no latent sample sites: nothing to sample or "
                             "optimize (did you condition every site?)")
        if latent is not None:
            latent = [latent] if isinstance(latent, str) else list(latent)
            if sorted(latent) != sorted(found):
                raise ValueError(f"latent={latent} but the model's unobserved sites are {found}; "
                                 "condition the others with poutine.condition(model, data=...)")
            found = latent
        self.sites = tuple(found)
        self.max_plate_nesting = max(
            [-f.dim for s in trace.nodes.values() if s["type"] == "sample"
             for f in s["cond_indep_stack"] if f.vectorized] or [0])
        self._flat_prior = {n for n in self.sites if _is_flat_box(trace.nodes[n]["fn"])}

    def _find_chain_plate(self, trace, name) -> None:
        stacks = [{f.name: f for f in trace.nodes[n]["cond_indep_stack"] if f.vectorized}
                  for n in self.sites]
        common = set.intersection(*(set(s) for s in stacks))
        if name is not None:
            if name not in common:
                raise ValueError(f"chain_plate={name!r} must enclose every latent site "
                                 f"{list(self.sites)}; plates enclosing all of them: "
                                 f"{sorted(common)}")
        elif common:
            name = min(common, key=lambda k: stacks[0][k].dim)  # outermost
        frame = stacks[0][name] if name is not None else None
        self.chain_plate = name
        self.chain_dim = frame.dim if frame else None  # negative batch dim, or None
        self.chains = frame.size if frame else 1

    def _layout(self, trace) -> None:
        self.transforms, self.site_shapes, self._axes, self._events = {}, {}, {}, {}
        self.site_fns = {n: trace.nodes[n]["fn"] for n in self.sites}
        bounds, init = [], {}
        for n in self.sites:
            site = trace.nodes[n]
            fn, value = site["fn"], site["value"].detach()
            shape = fn.shape()
            if torch.broadcast_shapes(value.shape, shape) != shape:
                raise ValueError(f"initial value of site {n!r} has shape {tuple(value.shape)}; "
                                 f"inside its plates the site has shape {tuple(shape)}")
            value = value.expand(shape)
            self.site_shapes[n] = shape
            self._events[n] = fn.event_dim
            self._axes[n] = None if self.chain_dim is None else len(fn.batch_shape) + \
                self.chain_dim  # axis of the chain plate in the site's value
            if self.space == "unconstrained":
                self.transforms[n] = biject_to(fn.support).inv
                value = self.transforms[n](value)
            else:
                bounds.append(_support_bounds(n, fn.support))
            init[n] = value
        if len(set(bounds)) > 1:
            raise ValueError(f"latent sites {list(self.sites)} have different supports "
                             f"{bounds}; the samplers keep one box: use space='unconstrained' or "
                             "condition all but one site")
        self.bounds: Bounds | None = bounds[0] if bounds else None
        self.initial = self.pack(init)  # (chains, *rest)

    # ------------------------------------------------------------------ packing
    def pack(self, values: dict) -> Tensor:
        """Site values (kernel space) -> ``z (chains, *rest)`` (a view for a single site)."""
        zs = []
        for n in self.sites:
            v = values[n]
            v = v.unsqueeze(0) if self._axes[n] is None else v.movedim(self._axes[n], 0)
            zs.append(v)
        if len(zs) == 1:
            return zs[0]
        return torch.cat([z.reshape(z.shape[0], -1) for z in zs], dim=1)  # (chains, D)

    def unpack(self, z: Tensor, lead: int = 0) -> dict:
        """Inverse of :meth:`pack`; ``lead`` extra leading dims (e.g. restarts) are kept."""
        out, start = {}, 0
        for n in self.sites:
            shape = self.site_shapes[n]
            axis = self._axes[n]
            moved = (shape[axis], *shape[:axis], *shape[axis + 1:]) if axis is not None else \
                (1, *shape)
            if len(self.sites) == 1:  # the samplers' hot path: no view ops when none is needed
                v = z if z.shape[lead:] == moved else z.reshape(*z.shape[:lead], *moved)
            else:
                k = math.prod(moved[1:])
                v = z[..., start:start + k].reshape(*z.shape[:lead], *moved)
                start += k
            out[n] = v.squeeze(lead) if axis is None else \
                v if axis == 0 else v.movedim(lead, lead + axis)
        return out

    def constrained(self, z: Tensor) -> dict:
        """``z`` -> the site values in the model's own space."""
        values = self.unpack(z)
        return {n: self.transforms[n].inv(v) if n in self.transforms else v
                for n, v in values.items()}

    def __repr__(self) -> str:
        return (f"ModelPotential({getattr(self.model, '__name__', type(self.model).__name__)}, "
                f"latent={list(self.sites)}, chains={self.chains}, space={self.space!r})")

    # ------------------------------------------------------------------ energy
    def energy(self, z: Tensor) -> Tensor:
        if z.shape[0] != self.chains:
            raise ValueError(f"potential of {self.chains} chains got z of shape "
                             f"{tuple(z.shape)}; the first dim must be the chain dim")
        return self.energy_of(self.unpack(z))

    def energy_of(self, values: dict, restarts: int | None = None) -> Tensor:
        """Energy of kernel-space site values: ``(chains,)``, or ``(restarts, chains)`` when the
        values carry one extra leading restarts dim (evaluated in an outermost plate)."""
        model = self.model
        if restarts is not None:
            model = _with_outer_plate(model, restarts, -(self.max_plate_nesting + 1))
        data = {n: self.transforms[n].inv(v) if n in self.transforms else v
                for n, v in values.items()}
        with _unvalidated(), _Sites(data) as run:
            model(*self.args, **self.kwargs)
        keep = 0 if restarts is None else 1
        total = None  # energy per chain, -log density
        for name, site in run.sites.items():
            if site_is_subsample(site):
                continue
            if name in self._flat_prior and not self.transforms:
                continue  # constant inside the box that the sampler keeps (see module doc)
            e = site["infer"].get(ENERGY_KEY)
            if e is not None and e.dim() <= self.max_plate_nesting + keep:
                # an energy_factor: its energy E, not the log-prob -E expanded by Pyro's
                # Unit distribution (four fewer ops for every backward pass)
                term = self._per_chain(name, scale_and_mask(e, site["scale"], site["mask"]), keep)
            else:
                lp = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
                term = -self._per_chain(name, scale_and_mask(lp, site["scale"], site["mask"]),
                                        keep)
            total = term if total is None else total + term
        for n, t in self.transforms.items():
            ladj = t.log_abs_det_jacobian(data[n], values[n])
            batch = len(self.site_shapes[n]) - self._events[n] + keep
            ladj = ladj.reshape(*ladj.shape[:batch], -1).sum(-1) if ladj.dim() > batch else ladj
            term = self._per_chain(n, ladj, keep)
            total = term if total is None else total + term
        if total is None:
            raise ValueError("the model has no log-density terms")
        shape = (restarts, self.chains) if keep else (self.chains,)
        return total if total.shape == shape else total.expand(shape)

    def candidate_energy(self, c: Tensor) -> Tensor:
        """Energies ``(chains, R)`` of ``R`` candidate values per chain, in one model run.

        ``c`` is ``(chains, R, D)``, each candidate a packed latent flattened to ``D``
        coordinates (kernel space); the candidates run in an extra outermost plate. This is the
        ``energy`` of the :class:`~conceptebm.infer.optimize.ConceptProblem` that
        :func:`~conceptebm.infer.pyro.pyro_map` solves.
        """
        if c.dim() != 3 or c.shape[0] != self.chains:
            raise ValueError(f"c must have shape ({self.chains}, R, D) for {self.chains} chains, "
                             f"got {tuple(c.shape)}")
        b, r = c.shape[:2]
        z = c.transpose(0, 1).reshape(r, b, *self.initial.shape[1:])  # (R, chains, *rest)
        e = self.energy_of(self.unpack(z, lead=1), restarts=r)  # (R, chains)
        return e.transpose(0, 1)  # (chains, R)

    def _per_chain(self, name: str, lp, keep: int) -> Tensor:
        """Sum a plate-shaped log-prob to ``(*restarts, chains)``; global terms split evenly."""
        n = self.max_plate_nesting + keep
        lp = torch.as_tensor(lp)
        if lp.dim() > n:
            raise ValueError(
                f"site {name!r} has log-prob shape {tuple(lp.shape)} but only {n} plate dims "
                "are declared; wrap its batch dims in pyro.plate (energy_factor checks this)")
        if lp.dim() < n:
            lp = lp.reshape((1,) * (n - lp.dim()) + tuple(lp.shape))
        kept = list(range(keep))
        if self.chain_dim is not None:
            kept.append(n + self.chain_dim)
        summed = [d for d in range(n) if d not in kept]
        out = lp.sum(summed) if summed else lp  # (*restarts, chains or 1)
        if self.chain_dim is None:
            out = out.unsqueeze(-1)
        elif out.shape[-1] == 1 and self.chains > 1:
            out = out / self.chains  # a term outside the chain plate, shared by all chains
        return out

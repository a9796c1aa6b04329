"""Pyro glue: concept inference on a Pyro model, by MAP and by NUTS.

* :func:`pyro_map` finds the MAP of the latent concept of a model whose likelihood is energy
  factors. It optimizes the energy in the concept's **own** space with
  :func:`~conceptebm.infer.optimize.map_estimate` (grid, restarts, Adam/LBFGS projected on the
  box). The potential of ``initialize_model`` would add ``-log|det J|`` of the logit transform
  and pull estimates toward the centre of the box: an object at 0.93 reads as about 0.91
  (``tests/infer/test_optimize.py`` checks it). The Jacobian is right for sampling, wrong
  for MAP.
* :func:`nuts_posterior` runs Pyro's NUTS on a low-dimensional concept posterior, started from
  the MAP (or given values). NUTS makes one accept decision for its whole state and no single
  chain crosses between well separated modes: use the energy map for multimodal posteriors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from pyro.infer import MCMC
from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value
from torch import Tensor

from conceptebm.infer.optimize import ConceptProblem, MAPResult, map_estimate
from conceptebm.infer.pyro.kernels import StatsNUTS
from conceptebm.infer.pyro.potential import ModelPotential, support_limits

__all__ = ["PyroMAP", "pyro_map", "nuts_posterior"]


class PyroMAP(NamedTuple):
    """Result of :func:`pyro_map`.

    Attributes:
        values: ``{site: tensor}`` the MAP of each latent site, in the site's shape and space.
        energy: ``(chains,)`` the energy (``-log joint`` without flat box priors) at the MAP.
        result: the :class:`~conceptebm.infer.optimize.MAPResult` of the packed problem, with
            ``c (chains, D)`` and every candidate.
    """

    values: dict
    energy: Tensor
    result: MAPResult


def _box(target: ModelPotential) -> tuple[Tensor, Tensor]:
    """Per-coordinate (low (D,), high (D,)) of the packed latent from the sites' supports."""
    lows, highs = {}, {}
    for n in target.sites:
        lo, hi = support_limits(target.site_fns[n].support)
        if lo is None or hi is None:
            raise ValueError(f"site {n!r} has support {target.site_fns[n].support}, not a "
                             "bounded box; pass bounds=(low, high) to pyro_map")
        shape = target.site_shapes[n]
        lows[n] = torch.as_tensor(lo).to(target.initial).expand(shape)
        highs[n] = torch.as_tensor(hi).to(target.initial).expand(shape)
    low, high = target.pack(lows), target.pack(highs)  # (chains, *rest)
    if not (bool((low == low[:1]).all()) and bool((high == high[:1]).all())):
        raise ValueError("the latent's bounds differ between chains; pass bounds= to pyro_map")
    return low[0].reshape(-1), high[0].reshape(-1)  # (D,)


def pyro_map(model, *model_args, latent: Sequence[str] | None = None,
             chain_plate: str | None = None, model_kwargs: dict | None = None,
             bounds=None, init: dict | None = None, **map_kwargs) -> PyroMAP:
    """MAP of a model's latent sites in their own space (no Jacobian), one per chain.

    The model's chain plate (e.g. one element per observation) gives the batch of independent
    problems; ``map_kwargs`` (``grid``, ``restarts``, ``optimizer``, ``steps``, ``lr``,
    ``generator``, ...) go to :func:`~conceptebm.infer.optimize.map_estimate`. ``bounds``
    default to the latent's support (e.g. ``Uniform(-1, 1)`` gives ``(-1, 1)``); ``init`` are
    constrained values ``{site: tensor}`` used as extra starts and for tracing improper priors.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model():
        ...     c = pyro.sample("c", dist.Uniform(-1., 1.).expand([2]).to_event(1))
        ...     energy_factor("ebm", Gaussian(torch.tensor([0.9, -0.2]), 0.05), c, event_dim=1)
        >>> est = pyro_map(model, grid=11, steps=100)
        >>> [round(v, 3) for v in est.values["c"].tolist()]
        [0.9, -0.2]
    """
    target = ModelPotential(model, model_args, model_kwargs, latent=latent,
                            space="constrained", chain_plate=chain_plate, init=init)
    x = target.initial  # (chains, *rest): the packed latent
    problem = ConceptProblem(target.candidate_energy, batch_size=target.chains,
                             dim=x[0].numel(), bounds=_box(target) if bounds is None else bounds,
                             dtype=x.dtype, device=x.device)
    if init is not None:
        map_kwargs["init"] = target.pack({n: init[n].to(x) for n in target.sites}
                                         ).reshape(target.chains, 1, -1)  # (B, 1, D)
    result = map_estimate(problem, **map_kwargs)
    values = target.unpack(result.c.reshape(target.initial.shape))
    return PyroMAP({k: v.detach() for k, v in values.items()}, result.energy, result)


def _inside(values: dict, target: ModelPotential) -> dict:
    """Move values on a box face a hair inside: the logit transform of NUTS maps a face to
    +-inf. The move is 1e-6 of the box width, far below any posterior scale we infer."""
    out = {}
    for n, v in values.items():
        lo, hi = support_limits(target.site_fns[n].support)
        if lo is not None and hi is not None:
            lo, hi = torch.as_tensor(lo).to(v), torch.as_tensor(hi).to(v)
            eps = 1e-6 * (hi - lo)
            v = torch.maximum(torch.minimum(v, hi - eps), lo + eps)
        out[n] = v
    return out


def nuts_posterior(model, *model_args, num_samples: int = 500, warmup_steps: int = 300,
                   init="map", map_kwargs: dict | None = None,
                   model_kwargs: dict | None = None, progress: bool = False,
                   **nuts_kwargs) -> MCMC:
    """Run Pyro's NUTS on a (low-dimensional) concept posterior defined by energy factors.

    The model is traced once with validation on (``MCMC`` turns validation off, so shape bugs
    would otherwise pass silently). ``init="map"`` starts NUTS at :func:`pyro_map` (with
    ``map_kwargs``; default a 17-point grid per coordinate and 60 Adam steps), a dict gives
    constrained starting values, ``None`` uses Pyro's ``init_to_uniform``. ``nuts_kwargs`` go
    to ``pyro.infer.NUTS`` (e.g. ``jit_compile=True``, ``target_accept_prob``). Returns the
    finished ``pyro.infer.MCMC``: ``.get_samples()``, ``.summary()``, ``.diagnostics()``; its
    kernel (a :class:`~conceptebm.infer.pyro.kernels.StatsNUTS`, Pyro's NUTS unchanged) holds
    each iteration's step size, acceptance, divergence and tree depth in
    ``mcmc.kernel.stats`` (warm-up first).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model():
        ...     c = pyro.sample("c", dist.Uniform(-1., 1.).expand([2]).to_event(1))
        ...     energy_factor("ebm", Gaussian(torch.tensor([0.3, -0.2]), 0.1), c, event_dim=1)
        >>> mcmc = nuts_posterior(model, num_samples=50, warmup_steps=50)
        >>> mcmc.get_samples()["c"].shape
        torch.Size([50, 2])
    """
    for name, v in (("num_samples", num_samples), ("warmup_steps", warmup_steps)):
        if int(v) != v or v < (1 if name == "num_samples" else 0):
            raise ValueError(f"{name} must be a non-negative integer (num_samples >= 1), got {v}")
    kwargs = dict(model_kwargs or {})
    user_init = init if isinstance(init, dict) else None
    target = ModelPotential(model, model_args, kwargs, space="constrained", init=user_init)
    if isinstance(init, str):
        if init != "map":
            raise ValueError(f"init must be 'map', a dict of values or None, got {init!r}")
        mk = {"grid": 17, "steps": 60, **(map_kwargs or {})}
        dim = target.initial[0].numel()
        if dim > 3 and "grid" not in (map_kwargs or {}):
            mk.pop("grid")  # a full grid is too large beyond 3 coordinates: random restarts
            mk.setdefault("restarts", 16)
        init = pyro_map(model, *model_args, model_kwargs=kwargs, **mk).values
    strategy = init_to_uniform if init is None else init_to_value(
        values=_inside(init, target))
    kernel = StatsNUTS(model, init_strategy=strategy, max_plate_nesting=target.max_plate_nesting,
                  **nuts_kwargs)
    mcmc = MCMC(kernel, num_samples=int(num_samples), warmup_steps=int(warmup_steps),
                disable_progbar=not progress)
    mcmc.run(*model_args, **kwargs)
    return mcmc

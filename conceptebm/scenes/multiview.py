"""Multi-view concept estimation (paper eq. 11) as a Pyro model, with posterior intervals.

Several images ``x_1..x_V`` of one object position, taken with different cameras, sizes,
shapes and lighting, share one concept value ``c``:

    p(c | x_1..x_V)  ∝  p(c) * exp(-sum_v E(x_v | c))          (eq. 11, flat prior on the box)

:func:`multiview_model` writes that as a Pyro model: one latent ``c`` with a ``Uniform`` prior
on the concept's box and one energy factor per view inside a ``views`` plate. Its MAP is
:func:`~conceptebm.scenes.inference.infer_concept` with ``views=True`` (the energy in the
concept's own space, no Jacobian); :func:`multiview_posterior` runs Pyro's NUTS on it,
started at that MAP, and reports equal-tailed credible intervals; :func:`grid_posterior` is
the exact posterior of a low-dimensional concept on a grid, to check NUTS against and to
measure calibration cheaply; :func:`fit_temperature` finds the temperature that makes its
intervals cover held-out truths at their nominal rate.

A ``temperature`` T divides every energy (``poutine.scale(1/T)`` around the factors only):
an EBM trained by contrastive divergence has no reason to have a likelihood's scale, so its
intervals may be too narrow or too wide; T is the one knob that recalibrates them.

Example (an analytic stand-in whose "views" are noisy 2-D readings of the position):
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Reading(ConditionalEnergy):
    ...     def energy(self, x, c):
    ...         return ((x - c) ** 2).sum(-1) / (2 * 0.1 ** 2)
    >>> model = Reading(Concept.continuous("position", dim=2))
    >>> views = torch.tensor([[0.30, -0.20], [0.40, -0.10]])    # (V, 2)
    >>> post = multiview_posterior(model, views, num_samples=200, warmup_steps=100, seed=0,
    ...                            check_range=False, event_dim=1)
    >>> [round(v, 2) for v in post.map.tolist()]  # the views' mean
    [0.35, -0.15]
    >>> bool((post.interval[0] < post.map).all() and (post.map < post.interval[1]).all())
    True
"""

from __future__ import annotations

from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.ops.stats import effective_sample_size
from torch import Tensor

from conceptebm.infer.energy_map import concept_grid, energy_map
from conceptebm.infer.pyro import energy_factor
from conceptebm.infer.pyro.inference import nuts_posterior
from conceptebm.scenes.inference import concept_of, check_images, infer_concept

__all__ = ["Posterior", "GridPosterior", "multiview_model", "multiview_posterior",
           "grid_posterior", "equal_tailed_interval", "interval_coverage", "fit_temperature"]


class Posterior(NamedTuple):
    """Result of :func:`multiview_posterior`.

    Attributes:
        samples: ``(S, dim)`` NUTS draws of the concept value.
        mean: ``(dim,)`` posterior mean.
        interval: ``(2, dim)`` equal-tailed ``level`` credible interval (low row, high row).
        map: ``(dim,)`` the MAP the chain started from.
        level: the interval's probability (0.9 = 5%..95% quantiles).
        ess: ``(dim,)`` effective sample size of each coordinate (1 if the chain never moved:
            too short a warm-up can leave NUTS with a step size at which nothing is accepted).
        mcmc: the finished ``pyro.infer.MCMC`` (``.summary()``, ``.diagnostics()``).
    """

    samples: Tensor
    mean: Tensor
    interval: Tensor
    map: Tensor
    level: float
    ess: Tensor
    mcmc: object


class GridPosterior(NamedTuple):
    """Result of :func:`grid_posterior` for ``B`` multi-view sets.

    Attributes:
        probs: ``(B, G)`` posterior mass of each grid point (rows sum to 1).
        grid: ``(G, dim)`` the grid (:func:`~conceptebm.infer.concept_grid` layout).
        mean: ``(B, dim)``; interval: ``(B, 2, dim)`` equal-tailed marginal intervals.
        level: the interval's probability.
        energies: ``(B, G)`` summed energies at the grid points (before the temperature).
        temperature: the temperature ``probs`` were made with.
    """

    probs: Tensor
    grid: Tensor
    mean: Tensor
    interval: Tensor
    level: float
    energies: Tensor | None = None
    temperature: float = 1.0


def _check_views(model, views: Tensor, check_range: bool, event_dim: int) -> Tensor:
    if isinstance(views, Tensor) and views.dim() == event_dim + 2:
        raise ValueError(f"views must be one multi-view set (V, *event), got "
                         f"{tuple(views.shape)}; call once per set (views[i])")
    check_images(views[None] if isinstance(views, Tensor) else views, model, views=True,
                 check_range=check_range, event_dim=event_dim)
    return views


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), e.g. 0.9 for a 90% interval, got {level!r}")
    return float(level)


def _check_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (1 = the energies as trained), "
                         f"got {temperature!r}")
    return float(temperature)


def multiview_model(model, views: Tensor, *, temperature: float = 1.0,
                    check_range: bool = True, event_dim: int = 3):
    """The Pyro model of eq. 11 for one multi-view set: latent ``model.concept.name``.

    Args:
        model: a :class:`~conceptebm.energies.ConditionalEnergy` over a continuous concept.
        views: ``(V, C, H, W)`` images of one concept value (or ``(V, *event)`` data for
            non-image energies, with ``event_dim`` and ``check_range=False``).
        temperature: energies are divided by it (see the module docstring).

    Returns a function of no arguments: ``c ~ Uniform(low, high)`` (a ``(dim,)`` vector),
    then ``pyro.factor(-E(x_v | c) / T)`` for each view inside ``pyro.plate("views", V)``.
    """
    concept = concept_of(model)
    if concept.is_categorical:
        raise ValueError(f"multiview_model needs a continuous concept, got the categorical "
                         f"{concept.name!r}; infer it by enumeration "
                         "(infer_concept(model, views[None], views=True))")
    views = _check_views(model, views, check_range, event_dim)
    t = _check_temperature(temperature)
    low = torch.full((concept.dim,), concept.low, dtype=views.dtype, device=views.device)
    high = torch.full((concept.dim,), concept.high, dtype=views.dtype, device=views.device)

    # The views are fixed: their image features are computed once here, and every potential
    # evaluation (NUTS takes hundreds) runs only the concept-dependent head on them. For an
    # early-conditioned net the features are the views themselves (the full pass, as before).
    with torch.no_grad():
        feats = model.features(views)  # (V, *feat)
    head = model.on_features()

    def pyro_model():
        c = pyro.sample(concept.name, dist.Uniform(low, high).to_event(1))  # (dim,)
        with pyro.plate("views", views.shape[0]), poutine.scale(scale=1.0 / t):
            energy_factor("view_energy", head, feats, c, event_dim=feats.dim() - 1)  # (V,)

    pyro_model.concept = concept
    return pyro_model


def equal_tailed_interval(samples: Tensor, level: float = 0.9) -> Tensor:
    """``(2, dim)`` quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of ``(S, dim)``."""
    level = _check_level(level)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype,
                     device=samples.device)
    return torch.quantile(samples, q, dim=0)


def multiview_posterior(model, views: Tensor, *, num_samples: int = 300,
                        warmup_steps: int = 200, level: float = 0.9, init: Tensor | None = None,
                        temperature: float = 1.0, seed: int | None = None,
                        map_kwargs: dict | None = None, check_range: bool = True,
                        event_dim: int = 3, progress: bool = False,
                        **nuts_kwargs) -> Posterior:
    """NUTS posterior of the shared concept of one multi-view set, started at its MAP.

    Args:
        views: ``(V, C, H, W)``: one set (run one call per set: NUTS makes one accept
            decision for its whole state, so independent sets are better kept apart).
        init: the starting value ``(dim,)``; default the MAP from
            :func:`~conceptebm.scenes.inference.infer_concept` (``map_kwargs`` go there).
        seed: seeds NUTS (Pyro draws from torch's global generator; its state is restored
            afterwards, so a seeded call leaves the caller's random stream untouched).
        nuts_kwargs: passed to ``pyro.infer.NUTS`` (``target_accept_prob``,
            ``jit_compile``, ``max_tree_depth``, ...).

    NUTS explores one basin well; a posterior with well separated modes needs the grid
    (:func:`grid_posterior`).
    """
    level = _check_level(level)
    pyro_model = multiview_model(model, views, temperature=temperature, check_range=check_range,
                                 event_dim=event_dim)
    name = pyro_model.concept.name
    if init is None:
        est = infer_concept(model, views[None], views=True, check_range=check_range,
                            event_dim=event_dim, **(map_kwargs or {}))
        init = est.value[0]
    init = torch.as_tensor(init).to(views)
    pyro_model.concept.check_range(init)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        mcmc = nuts_posterior(pyro_model, num_samples=num_samples, warmup_steps=warmup_steps,
                              init={name: init.reshape(-1)}, progress=progress, **nuts_kwargs)
    samples = mcmc.get_samples()[name].detach()  # (S, dim)
    ess = effective_sample_size(samples[None].double(), chain_dim=0, sample_dim=1)  # (dim,)
    ess = torch.nan_to_num(ess, nan=1.0)  # a chain that never moved: one effective sample
    return Posterior(samples, samples.mean(0), equal_tailed_interval(samples, level),
                     init.reshape(-1).detach(), level, ess, mcmc)


def _marginal_quantile(p: Tensor, axis: Tensor, q: float) -> Tensor:
    """Quantile ``q`` of marginals ``p (B, n)`` on ``axis (n,)``: each point's mass is spread
    evenly over its cell (half-way to the neighbours, clipped to the box), so the quantile
    is a linear interpolation of the cumulative mass rather than a grid point."""
    n = axis.shape[0]
    mid = (axis[1:] + axis[:-1]) / 2
    lo_edge = torch.cat([axis[:1], mid])  # (n,)
    hi_edge = torch.cat([mid, axis[-1:]])
    cdf_hi = p.cumsum(-1)  # (B, n) mass up to each cell's upper edge
    i = torch.searchsorted(cdf_hi, torch.full_like(cdf_hi[:, :1], q)).clamp(max=n - 1)  # (B, 1)
    cdf_lo = cdf_hi.gather(1, i) - p.gather(1, i)
    frac = ((q - cdf_lo) / p.gather(1, i).clamp_min(1e-30)).clamp(0, 1)
    return (lo_edge[i] + frac * (hi_edge[i] - lo_edge[i]))[:, 0]  # (B,)


def _summarise(e: Tensor, grid: Tensor, n: int, level: float, t: float, dtype) -> GridPosterior:
    """Posterior mass, mean and marginal intervals from grid energies ``e (B, G)``."""
    d = grid.shape[1]
    probs = torch.softmax(-e.double() / t, dim=-1)  # (B, G), flat prior on the box
    axis = grid[:n, -1].double()  # (n,) the last coordinate varies fastest
    cube = probs.reshape(-1, *([n] * d))  # (B, n, ..., n), coordinate j on axis j + 1
    lows, highs = [], []
    for j in range(d):
        others = [k + 1 for k in range(d) if k != j]
        marg = cube.sum(dim=others) if others else cube  # (B, n)
        lows.append(_marginal_quantile(marg, axis, (1 - level) / 2))
        highs.append(_marginal_quantile(marg, axis, (1 + level) / 2))
    interval = torch.stack([torch.stack(lows, -1), torch.stack(highs, -1)], dim=1)  # (B, 2, d)
    mean = probs @ grid.double()  # (B, d)
    return GridPosterior(probs.to(dtype), grid, mean.to(dtype), interval.to(dtype), level,
                         e, t)


def grid_posterior(model, views: Tensor, points: int = 64, *, level: float = 0.9,
                   temperature: float = 1.0, chunk_size: int = 4096, check_range: bool = True,
                   event_dim: int = 3, progress: bool = False) -> GridPosterior:
    """The exact posterior of eq. 11 on a grid, for ``B`` multi-view sets at once.

    Args:
        views: ``(B, V, C, H, W)`` (or ``(B, V, *event)`` for non-image energies).
        points: grid points per coordinate (``points ** dim`` energies per view: keep
            ``dim <= 3``).

    Intervals are equal-tailed quantiles of each coordinate's marginal, interpolated within
    grid cells (see ``_marginal_quantile``), so they are not limited to the grid spacing.
    """
    concept = concept_of(model)
    if concept.is_categorical or concept.dim > 3:
        raise ValueError(f"grid_posterior needs a continuous concept of dim <= 3, got "
                         f"{concept.name!r} ({concept.kind}, dim {concept.dim})")
    level, t = _check_level(level), _check_temperature(temperature)
    check_images(views, model, views=True, check_range=check_range, event_dim=event_dim)
    if int(points) != points or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    grid = concept_grid(concept, int(points), dtype=views.dtype, device=views.device)  # (G, d)
    e = energy_map(model, views, grid, chunk_size=chunk_size, views=True,
                   event_dim=event_dim, progress=progress)  # (B, G)
    return _summarise(e, grid, int(points), level, t, views.dtype)


def interval_coverage(interval: Tensor, truth: Tensor) -> Tensor:
    """``(B, d)`` booleans: does ``interval (B, 2, d)`` contain ``truth (B, d)``?"""
    if interval.dim() != 3 or interval.shape[1] != 2 or truth.shape != (interval.shape[0],
                                                                          interval.shape[2]):
        raise ValueError(f"interval must be (B, 2, d) and truth (B, d), got "
                         f"{tuple(interval.shape)} and {tuple(truth.shape)}")
    truth = truth.to(interval)
    return (interval[:, 0] <= truth) & (truth <= interval[:, 1])


def fit_temperature(posterior: GridPosterior, truth: Tensor, *, low: float = 1e-2,
                    high: float = 1e2, iters: int = 40) -> float:
    """The temperature at which ``posterior``'s intervals cover ``truth`` at their level.

    Contrastive-divergence energies have no likelihood scale, so intervals at T = 1 can be
    far too narrow or too wide. Fit T on held-out sets with known truth (a
    :func:`grid_posterior` of them, any temperature; its energies are reused, so this costs
    no network calls), then pass ``temperature=T`` to :func:`grid_posterior`,
    :func:`multiview_model` or :func:`multiview_posterior` for new sets. Per-coordinate
    coverage grows with T; bisection in ``log T`` finds the smallest T in ``[low, high]``
    whose coverage reaches the level (a boundary value means the target lies outside).
    """
    if posterior.energies is None:
        raise ValueError("posterior carries no energies; make it with grid_posterior")
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low}, high={high}")
    n = round(posterior.grid.shape[0] ** (1 / posterior.grid.shape[1]))

    def cover(t: float) -> float:
        p = _summarise(posterior.energies, posterior.grid, n, posterior.level, t,
                       posterior.mean.dtype)
        return interval_coverage(p.interval, truth).double().mean().item()

    lo, hi = torch.tensor(low).log().item(), torch.tensor(high).log().item()
    if cover(low) >= posterior.level:
        return float(low)
    if cover(high) < posterior.level:
        return float(high)
    for _ in range(int(iters)):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if cover(float(torch.tensor(mid).exp())) >= posterior.level else \
            (mid, hi)
    return float(torch.tensor(hi).exp())

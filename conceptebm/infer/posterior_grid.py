"""The exact posterior of a low-dimensional concept on a grid, and its temperature.

For a concept of dimension <= 3 (a position, a size) the posterior of ``B`` multi-view sets,
``p(c | x_1..x_V) ∝ exp(-sum_v E(x_v | c) / T)`` on a flat prior over the concept's box, is
computed exactly on a grid: :func:`grid_energies` gives the summed energies (optionally
refined: see below), :func:`summarise_grid` the mass, mean and equal-tailed marginal
intervals at a temperature ``T``, :func:`regrid_temperature` the same at another ``T``
without a network call, :func:`interval_coverage` whether intervals hold known truths, and
:func:`fit_temperature` the ``T`` at which they cover at their level on held-out sets.

This is engine-level math (no images, no scenes): :func:`conceptebm.scenes.grid_posterior`
adds the image checks for scene models, and a training run (:mod:`conceptebm.train.folder`)
fits its model's temperature on its held-out images with it.

Refinement (``refine=k``): a sharp posterior (several views, a confident model) may put its
mass on a few cells of a coarse grid, so its intervals follow the cells rather than the
energy, and a temperature fitted on them is not the continuous posterior's (the one a sampler
draws from). With ``refine=k`` the grid has ``(points - 1) * k + 1`` points a coordinate, but
energies are computed only where they matter (:func:`refine_grid`): on the coarse ``points``
grid everywhere, and on the fine points of the coarse cells that hold mass at the
temperature (within ``REFINE_DELTA * T`` of the set's best coarse energy, and their
neighbours); elsewhere a fine point takes its nearest coarse point's energy.
:func:`calibrate_temperature` fits on the coarse grid first, then refines at that
temperature and fits again.

Example (two noisy readings of a 2-D position; the posterior mean is their mean):
    >>> from conceptebm.concepts import Concept
    >>> class Reading(torch.nn.Module):
    ...     concept = Concept.continuous("position", dim=2)
    ...     def forward(self, x, c):
    ...         return ((x - c) ** 2).sum(-1) / (2 * 0.1 ** 2)
    >>> views = torch.tensor([[[0.30, -0.20], [0.40, -0.10]]])    # (B=1, V=2, 2)
    >>> g = grid_posterior_of(Reading(), views, 33, refine=4, event_dim=1)
    >>> [round(v, 2) for v in g.mean[0].tolist()], g.grid.shape[0] == 129 ** 2
    ([0.35, -0.15], True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from conceptebm.infer.energy_map import (
    candidate_energies,
    concept_grid,
    energy_map,
    image_features,
)
from conceptebm.infer.settings import MAP_CHUNK

__all__ = ["GridPosterior", "grid_energies", "refine_grid", "summarise_grid", "grid_posterior_of",
           "regrid_temperature", "interval_coverage", "fit_temperature", "marginal_quantile",
           "calibrate_temperature", "half_split_check", "REFINE_DELTA", "CALIBRATION_GRID"]

#: Energy above a set's best coarse energy, in units of the temperature, beyond which a coarse
#: cell is not refined: its points hold under exp(-9) = 1.2e-4 of the mode's mass.
REFINE_DELTA = 9.0


class GridPosterior(NamedTuple):
    """Result of a grid posterior for ``B`` multi-view sets.

    Attributes:
        probs: ``(B, G)`` posterior mass of each grid point (rows sum to 1).
        grid: ``(G, dim)`` the grid (:func:`~conceptebm.infer.concept_grid` layout).
        mean: ``(B, dim)``; interval: ``(B, 2, dim)`` equal-tailed marginal intervals.
        level: the interval's probability.
        energies: ``(B, G)`` summed energies at the grid points (before the temperature).
        temperature: the temperature ``probs`` were made with.
        evaluated: energies computed a set (``points ** dim`` without refinement).
    """

    probs: Tensor
    grid: Tensor
    mean: Tensor
    interval: Tensor
    level: float
    energies: Tensor | None = None
    temperature: float = 1.0
    evaluated: float | None = None


def check_level(level: float) -> float:
    """``level`` as a float, or a ValueError unless it lies in (0, 1)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), e.g. 0.9 for a 90% interval, got {level!r}")
    return float(level)


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, or a ValueError unless it is > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (1 = the energies as trained), "
                         f"got {temperature!r}")
    return float(temperature)


def _points_per_dim(grid: Tensor) -> int:
    return round(grid.shape[0] ** (1 / grid.shape[1]))


def grid_energies(model, views: Tensor, concept, points: int, *, refine: int = 1,
                  refine_temperature: float = 1.0, refine_delta: float = REFINE_DELTA,
                  chunk_size: int = MAP_CHUNK, event_dim: int = 3,
                  progress: bool = False) -> tuple[Tensor, Tensor, float]:
    """Summed energies of ``views (B, V, *event)`` on a concept grid.

    Returns ``(grid (G, dim), energies (B, G), evaluated)``: ``G = m ** dim`` with ``m =
    (points - 1) * refine + 1`` and ``evaluated`` the mean count of energies computed a set
    (:func:`refine_grid` for the refinement).
    """
    if int(points) != points or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    coarse = concept_grid(concept, int(points), dtype=views.dtype, device=views.device)
    e = energy_map(model, views, coarse, chunk_size=chunk_size, views=True,
                   event_dim=event_dim, progress=progress)  # (B, n^d)
    return refine_grid(model, views, coarse, e, refine, temperature=refine_temperature,
                       delta=refine_delta, chunk_size=chunk_size)


def refine_grid(model, views: Tensor, grid: Tensor, e: Tensor, refine: int, *,
                temperature: float = 1.0, delta: float = REFINE_DELTA,
                chunk_size: int = MAP_CHUNK) -> tuple[Tensor, Tensor, float]:
    """A ``refine`` times finer grid from coarse energies ``e (B, n^d)`` on ``grid``.

    Energies are computed at the fine points of the coarse cells that hold mass at
    ``temperature``: the coarse points within ``delta * temperature`` of the set's best
    coarse energy, grown by one cell (mass below ``exp(-delta)`` of the mode's elsewhere);
    other fine points take their nearest coarse point's energy. Returns ``(fine grid,
    energies (B, m^d), evaluated)`` as :func:`grid_energies`.
    """
    if int(refine) != refine or refine < 1:
        raise ValueError(f"refine must be an integer >= 1 (1: no refinement), got {refine!r}")
    d = grid.shape[1]
    n, k = _points_per_dim(grid), int(refine)
    if k == 1:
        return grid, e, float(n ** d)
    b, v = views.shape[0], views.shape[1]
    m = (n - 1) * k + 1
    low, high = grid[0], grid[-1]
    axes = [torch.linspace(float(low[j]), float(high[j]), m, dtype=torch.float64)
            for j in range(d)]
    fine = torch.stack([x.reshape(-1) for x in torch.meshgrid(*axes, indexing="ij")],
                       1).to(grid)  # (m^d, d)
    near = torch.div(torch.arange(m) + k // 2, k, rounding_mode="floor")  # nearest coarse
    mesh = torch.meshgrid(*([near] * d), indexing="ij")
    coarse_of = sum(mesh[j].reshape(-1) * n ** (d - 1 - j) for j in range(d))  # (m^d,)
    on = torch.meshgrid(*([torch.arange(m) % k == 0] * d), indexing="ij")
    on_coarse = torch.stack([o.reshape(-1) for o in on]).all(0)  # (m^d,) exact coarse points
    out = e[:, coarse_of.to(e.device)].clone()  # (B, m^d) nearest coarse energy
    keep = (e - e.min(1, keepdim=True).values) < delta * float(temperature)  # (B, n^d)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[d - 1]
    grown = pool(keep.reshape(b, 1, *([n] * d)).float(), 3, stride=1, padding=1) > 0
    need = grown.reshape(b, -1)[:, coarse_of.to(e.device)] & ~on_coarse.to(e.device)
    count = 0
    with torch.no_grad():
        for i in range(b):
            idx = need[i].nonzero()[:, 0]  # (R,)
            count += idx.numel()
            if idx.numel() == 0:
                continue
            f = image_features(model, views[i])  # (V, *feat)
            per_call = max(1, int(chunk_size) // v)
            parts = []
            for s in range(0, idx.numel(), per_call):
                c = fine[idx[s:s + per_call]].expand(v, -1, -1)  # (V, r, d)
                parts.append(candidate_energies(model, f, c).sum(0))  # (r,)
            out[i, idx] = torch.cat(parts).to(out)
    return fine, out, float(n ** d + count / b)


def marginal_quantile(p: Tensor, axis: Tensor, q: float) -> Tensor:
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


def summarise_grid(e: Tensor, grid: Tensor, level: float, t: float, dtype=None,
                   evaluated: float | None = None) -> GridPosterior:
    """Posterior mass, mean and marginal intervals from grid energies ``e (B, G)`` at
    temperature ``t`` (flat prior on the box)."""
    d = grid.shape[1]
    n = _points_per_dim(grid)
    dtype = dtype or grid.dtype
    probs = torch.softmax(-e.double() / t, dim=-1)  # (B, G)
    axis = grid[:n, -1].double()  # (n,) the last coordinate varies fastest
    cube = probs.reshape(-1, *([n] * d))  # (B, n, ..., n), coordinate j on axis j + 1
    lows, highs = [], []
    for j in range(d):
        others = [k + 1 for k in range(d) if k != j]
        marg = cube.sum(dim=others) if others else cube  # (B, n)
        lows.append(marginal_quantile(marg, axis, (1 - level) / 2))
        highs.append(marginal_quantile(marg, axis, (1 + level) / 2))
    interval = torch.stack([torch.stack(lows, -1), torch.stack(highs, -1)], dim=1)  # (B, 2, d)
    mean = probs @ grid.double()  # (B, d)
    return GridPosterior(probs.to(dtype), grid, mean.to(dtype), interval.to(dtype), level,
                         e, t, evaluated)


def grid_posterior_of(model, views: Tensor, points: int = 64, *, level: float = 0.9,
                      temperature: float = 1.0, refine: int = 1,
                      refine_temperature: float | None = None,
                      refine_delta: float = REFINE_DELTA, chunk_size: int = MAP_CHUNK,
                      event_dim: int = 3, progress: bool = False) -> GridPosterior:
    """The grid posterior of ``views (B, V, *event)`` under ``model`` (a conditional energy
    with a continuous ``.concept`` of dim <= 3) at ``temperature``; no image checks (those
    are :func:`conceptebm.scenes.grid_posterior`'s). ``refine``: see :func:`refine_grid`
    (cells holding mass at ``refine_temperature``, default ``temperature``)."""
    concept = model.concept
    if concept.is_categorical or concept.dim > 3:
        raise ValueError(f"a grid posterior needs a continuous concept of dim <= 3, got "
                         f"{concept.name!r} ({concept.kind}, dim {concept.dim})")
    level, t = check_level(level), check_temperature(temperature)
    rt = t if refine_temperature is None else check_temperature(refine_temperature)
    grid, e, evaluated = grid_energies(model, views, concept, points, refine=refine,
                                       refine_temperature=rt, refine_delta=refine_delta,
                                       chunk_size=chunk_size,
                                       event_dim=event_dim, progress=progress)
    return summarise_grid(e, grid, level, t, views.dtype, evaluated)


def regrid_temperature(posterior: GridPosterior, temperature: float) -> GridPosterior:
    """The same grid posterior at another temperature, from its stored energies (no network
    call)."""
    if posterior.energies is None:
        raise ValueError("posterior carries no energies; make it with grid_posterior")
    t = check_temperature(temperature)
    return summarise_grid(posterior.energies, posterior.grid, posterior.level, t,
                          posterior.mean.dtype, posterior.evaluated)


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
    far too narrow or too wide. Fit T on held-out sets with known truth (a grid posterior of
    them, any temperature; its energies are reused, so this costs no network calls), then
    read new sets at ``temperature=T``. Per-coordinate coverage grows with T (until the
    intervals span the box), noisily: a scan and bisection in ``log T`` find the band of T
    where the empirical coverage crosses the level, and the fit is its middle (a boundary
    value means the target lies outside ``[low, high]``).
    """
    if posterior.energies is None:
        raise ValueError("posterior carries no energies; make it with grid_posterior")
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low}, high={high}")

    def cover(t: float) -> float:
        p = summarise_grid(posterior.energies, posterior.grid, posterior.level, t,
                           posterior.mean.dtype)
        return interval_coverage(p.interval, truth).double().mean().item()

    # Coverage grows with T until the intervals span the box; beyond, a flat posterior's
    # intervals can exclude truths near the box's edges again, so coverage is not monotone
    # at large T. With finitely many sets the empirical coverage is a noisy step function
    # that crosses the level several times within a band of T: the first crossing alone is
    # biased low (it picks the first upward fluctuation). A scan in log T (up to the peak
    # coverage) finds the band: from the first T that reaches the level to the last T below
    # it; each end is refined by bisection and the fit is the band's middle (in log T).
    level = posterior.level
    scan = torch.linspace(math.log(low), math.log(high), 41).tolist()
    covs = [cover(math.exp(lt)) for lt in scan]
    peak = max(range(len(covs)), key=lambda i: (covs[i], -i))
    first = next((i for i in range(peak + 1) if covs[i] >= level), None)
    if first is None:
        return float(high)
    if first == 0:
        return float(low)
    last_miss = max(i for i in range(peak + 1) if covs[i] < level)

    def crossing(lo: float, hi: float) -> float:  # cover(lo) < level <= cover(hi)
        for _ in range(int(iters)):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if cover(math.exp(mid)) >= level else (mid, hi)
        return hi

    lower = crossing(scan[first - 1], scan[first])
    upper = crossing(scan[last_miss], scan[last_miss + 1]) if last_miss > first else lower
    return float(math.exp((lower + upper) / 2))


#: Grid points a coordinate and refinement by concept dimension: fine grids of 129, 65
#: and 33 points a coordinate (:func:`calibrate_temperature`'s defaults).
CALIBRATION_GRID = {1: (129, 1), 2: (17, 4), 3: (9, 4)}


def calibrate_temperature(model, sets: Tensor, truth: Tensor, *, points: int | None = None,
                          refine: int | None = None, level: float = 0.9,
                          event_dim: int = 3) -> dict:
    """The posterior temperature of ``model`` fitted on validation ``sets (B, V, *event)``
    with known ``truth (B, dim)``: the ``T`` at which the grid posterior's ``level``
    intervals cover the truth at their level (:func:`fit_temperature`), with the coverage
    and mean width it gives there, and how it was fitted (the record a checkpoint keeps as
    ``posterior_calibration``). ``points`` / ``refine`` default to
    :data:`CALIBRATION_GRID` for the concept's dimension. With ``refine > 1``: a fit on the
    coarse grid, then one on the grid refined where the mass lies at twice that temperature.
    """
    dim = model.concept.dim
    p0, k0 = CALIBRATION_GRID.get(dim, (9, 1))
    points, refine = int(points or p0), int(refine or k0)
    g = grid_posterior_of(model, sets, points, level=level, temperature=1.0, refine=1,
                          event_dim=event_dim)
    t = t_coarse = fit_temperature(g, truth)
    if refine > 1:
        grid, e, evaluated = refine_grid(model, sets, g.grid, g.energies, refine,
                                         temperature=2 * t_coarse)
        g = summarise_grid(e, grid, level, 1.0, sets.dtype, evaluated)
        t = fit_temperature(g, truth)
    at = regrid_temperature(g, t)
    inside = interval_coverage(at.interval, truth).double()
    return {"temperature": t, "level": level, "points": points, "refine": refine,
            "temperature_coarse": t_coarse, "n": int(sets.shape[0]),
            "views": int(sets.shape[1]), "coverage_fit": float(inside.mean()),
            "width": float((at.interval[:, 1] - at.interval[:, 0]).double().mean()),
            "evaluated": g.evaluated, "half_split": half_split_check(g, truth)}


def half_split_check(posterior: GridPosterior, truth: Tensor) -> dict | None:
    """How well a temperature fitted on these sets carries to others: :func:`fit_temperature`
    on each half of the sets (first and second), and the coverage each fit gives on the
    other half. Returns ``{"temperature": [T_first, T_second], "coverage": [of the second
    half at T_first, of the first at T_second]}`` (``None`` under 4 sets); the spread is
    the fit's sampling error at half the sets (a fit on all of them errs about 1/sqrt(2)
    as much). No network calls: the stored energies are reused."""
    n = truth.shape[0]
    if posterior.energies is None or n < 4:
        return None
    halves = (slice(0, n // 2), slice(n // 2, n))
    parts = [summarise_grid(posterior.energies[h], posterior.grid, posterior.level, 1.0,
                            posterior.mean.dtype) for h in halves]
    ts = [fit_temperature(p, truth[h]) for p, h in zip(parts, halves, strict=True)]
    covs = [interval_coverage(regrid_temperature(parts[1 - i], ts[i]).interval,
                              truth[halves[1 - i]]).double().mean().item() for i in (0, 1)]
    return {"temperature": ts, "coverage": covs, "sets": [n // 2, n - n // 2]}

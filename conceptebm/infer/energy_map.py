"""Energy maps: E(x|c) over a grid of concept values, computed in bounded-memory chunks.

For a low-dimensional concept (a 2-D position, a size) the energy map *is* the exact
posterior up to normalisation: p(c|x) is proportional to exp(-E(x|c)) on a uniform prior, so
its argmin is the MAP and its softmax the posterior on the grid. It is also the robust first
stage of :func:`~conceptebm.infer.map_estimate`, which refines the best grid points.

Grid layout (:func:`concept_grid`): row-major over the concept's coordinates, the last
coordinate varying fastest, as ``torch.meshgrid(..., indexing="ij")``. A 2-D map with ``n``
points per coordinate therefore reshapes to ``(n, n)`` with ``map[i, j]`` at
``c = (v0[i], v1[j])``; plot it with ``plt.imshow(m.reshape(n, n).T, origin="lower",
extent=(low0, high0, low1, high1))`` so the first coordinate runs along the horizontal axis.

Example:
    >>> from conceptebm.concepts import Concept
    >>> pos = Concept.continuous("position", dim=2, low=-1.0, high=1.0)
    >>> concept_grid(pos, 3)[:4].tolist()
    [[-1.0, -1.0], [-1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.concepts import Concept

__all__ = ["concept_grid", "energy_map", "box_bounds", "image_features", "candidate_energies"]


def box_bounds(bounds, dim: int | None = None, *, dtype=torch.float64,
               device=None) -> tuple[Tensor, Tensor]:
    """Per-coordinate box ``(low (dim,), high (dim,))`` from a continuous Concept or a pair.

    ``bounds`` is a continuous :class:`~conceptebm.concepts.Concept`, or ``(low, high)`` where
    each side is a number (the same for every coordinate; then ``dim`` is needed) or a
    sequence / tensor of ``dim`` numbers. Raises unless ``low < high`` in every coordinate.
    """
    if isinstance(bounds, Concept):
        if bounds.is_categorical:
            raise ValueError(
                f"concept {bounds.name!r} is categorical: it has no box; enumerate its values "
                "(infer.map_categorical, or concept_grid(concept) for the one-hot grid)"
            )
        if dim is not None and dim != bounds.dim:
            raise ValueError(f"concept {bounds.name!r} has dim {bounds.dim}, expected {dim}")
        dim = bounds.dim
        bounds = (bounds.low, bounds.high)
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be (low, high) or a continuous Concept, got {bounds!r}"
        ) from None
    low = torch.as_tensor(low, dtype=dtype, device=device).reshape(-1)
    high = torch.as_tensor(high, dtype=dtype, device=device).reshape(-1)
    n = max(low.numel(), high.numel())
    if dim is None:
        if n == 1:
            raise ValueError(
                "scalar bounds do not say the concept's dimension: pass per-coordinate bounds, "
                "e.g. bounds=([-1, -1], [1, 1]), or a Concept"
            )
        dim = n
    if low.numel() not in (1, dim) or high.numel() not in (1, dim):
        raise ValueError(
            f"bounds have {low.numel()} low and {high.numel()} high values for a concept of "
            f"dim {dim}; give one number or {dim} per side"
        )
    low, high = low.expand(dim).clone(), high.expand(dim).clone()
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise ValueError(f"bounds must be finite, got low={low.tolist()}, high={high.tolist()}")
    if not (low < high).all():
        raise ValueError(f"bounds need low < high in every coordinate, got low={low.tolist()}, "
                         f"high={high.tolist()}")
    return low, high


def concept_grid(concept_or_bounds, points_per_dim: int | Sequence[int] = 32, *,
                 dim: int | None = None, dtype=None, device=None) -> Tensor:
    """A ``(G, dim)`` grid of concept values, row-major (last coordinate fastest).

    Args:
        concept_or_bounds: a :class:`~conceptebm.concepts.Concept` or ``(low, high)`` as in
            :func:`box_bounds`. A categorical concept gives its ``K`` one-hot values, ``(K, K)``,
            in the order of ``concept.values`` (``points_per_dim`` is ignored).
        points_per_dim: points per coordinate (``linspace`` including both ends), one int for
            all coordinates or one per coordinate. ``G = prod(points_per_dim)``.
        dim: the concept dimension, needed only for scalar ``(low, high)`` bounds.

    Example:
        >>> concept_grid((-1.0, 1.0), 3, dim=1).flatten().tolist()
        [-1.0, 0.0, 1.0]
    """
    dtype = dtype or torch.get_default_dtype()
    if isinstance(concept_or_bounds, Concept) and concept_or_bounds.is_categorical:
        return torch.eye(concept_or_bounds.dim, dtype=dtype, device=device)
    if dim is None and not isinstance(points_per_dim, int):
        dim = len(points_per_dim)
    low, high = box_bounds(concept_or_bounds, dim, dtype=torch.float64)
    d = low.numel()
    counts = [points_per_dim] * d if isinstance(points_per_dim, int) else list(points_per_dim)
    if len(counts) != d or any(int(n) != n or n < 1 for n in counts):
        raise ValueError(f"points_per_dim must be a positive int or {d} of them, "
                         f"got {points_per_dim!r}")
    axes = [torch.linspace(float(lo), float(hi), int(n), dtype=torch.float64)
            for lo, hi, n in zip(low, high, counts, strict=True)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1).to(dtype=dtype, device=device)


def image_features(cond_energy, x: Tensor) -> Tensor:
    """``cond_energy.features(x)``: what the energy keeps of ``x (N, *event)`` for any concept
    value (the image itself for early-conditioned nets and for plain callables).

    See :meth:`~conceptebm.energies.ConditionalEnergy.features`.
    """
    features = getattr(cond_energy, "features", None)
    return features(x) if callable(features) else x


def candidate_energies(cond_energy, f: Tensor, c: Tensor) -> Tensor:
    """Energies ``(N, R)`` of ``R`` candidate values ``c (N, R, dim)`` per item, from the
    items' :func:`image_features` ``f (N, *feat)``.

    A late-conditioned net reads ``f`` once per candidate with its cheap head; other energies
    (and plain callables ``(x (M, *event), c (M, dim)) -> (M,)``) are called on every (item,
    candidate) pair, as one batch of ``N * R``.
    """
    head = getattr(cond_energy, "energy_from_features", None)
    if callable(head):
        return head(f, c)  # (N, R)
    n, r = c.shape[:2]
    fs = f[:, None].expand(n, r, *f.shape[1:]).reshape(n * r, *f.shape[1:])  # (N * R, *event)
    e = cond_energy(fs, c.reshape(n * r, c.shape[-1]))
    if e.shape != (n * r,):
        raise ValueError(f"{cond_energy!r} returned shape {tuple(e.shape)} for {n * r} (image, "
                         f"concept) pairs; expected ({n * r},)")
    return e.reshape(n, r)  # (N, R)


def energy_map(cond_energy, x: Tensor, grid: Tensor, *, chunk_size: int = 4096,
               event_dim: int = 3, views: bool = False, progress: bool = False) -> Tensor:
    """Energies ``E(x|c)`` of every image against every grid point, under ``no_grad``.

    The image part of the energy (:func:`image_features`) is computed once per image; only the
    concept-dependent part runs per grid point (for an early-conditioned net, all of it).

    Args:
        cond_energy: a :class:`~conceptebm.energies.ConditionalEnergy` or any callable
            ``(x (N, *event), c (N, dim)) -> (N,)``.
        x: one observation ``(*event)`` or a batch ``(B, *event)``; with ``views=True`` one
            observation is ``(V, *event)`` and its energy is the sum over the ``V`` views
            (the paper's multi-view inference, eq. 11).
        grid: ``(G, dim)`` concept values, e.g. from :func:`concept_grid`.
        chunk_size: at most this many (image, grid point) evaluations per call of the energy,
            so peak memory is bounded for any grid size.
        event_dim: number of event dimensions of one image (3 for ``(C, H, W)``; 1 for
            vector data such as the analytic energies).

    Returns:
        ``(G,)`` for one observation, ``(B, G)`` for a batch; reshape a
        :func:`concept_grid` map to ``(n,) * dim`` (row-major, see the module docstring).

    Example:
        >>> from conceptebm.concepts import Concept
        >>> from conceptebm.energies import ConditionalEnergy
        >>> class Dist(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> e = Dist(Concept.continuous("p", dim=1))
        >>> m = energy_map(e, torch.tensor([0.5]), concept_grid((-1.0, 1.0), 5, dim=1),
        ...                event_dim=1)
        >>> m.argmin().item()
        3
    """
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
    if not isinstance(grid, Tensor) or grid.dim() != 2:
        shape = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"grid must be a (G, dim) tensor (see concept_grid), got {shape}")
    lead = 1 + int(views)  # leading dims of one observation: (V,) with views
    if x.dim() == event_dim + lead - 1:
        single, x = True, x.unsqueeze(0)
    elif x.dim() == event_dim + lead:
        single = False
    else:
        want = "(V, *event) or (B, V, *event)" if views else "(*event) or (B, *event)"
        raise ValueError(f"x must have shape {want} with {event_dim} event dims "
                         f"(event_dim={event_dim}), got {tuple(x.shape)}")
    b, g = x.shape[0], grid.shape[0]
    v = x.shape[1] if views else 1
    grid = grid.to(x.device)
    flat = x.reshape(b * v, *x.shape[lead:])  # (B * V, *event)
    per_obs = max(1, min(b, int(chunk_size) // v))  # observations per block
    rows = []
    with torch.no_grad():
        for o in tqdm(range(0, b, per_obs), desc="energy map", disable=not progress,
                      leave=False):
            n = min(per_obs, b - o)
            f = image_features(cond_energy, flat[o * v:(o + n) * v])  # (n * V, *feat)
            per_call = max(1, int(chunk_size) // (n * v))  # grid points per call
            row = []
            for s in range(0, g, per_call):
                c = grid[s:s + per_call].expand(n * v, -1, -1)  # (n * V, k, dim)
                e = candidate_energies(cond_energy, f, c)
                if e.shape != c.shape[:2]:
                    raise ValueError(f"{cond_energy!r} returned shape {tuple(e.shape)} for "
                                     f"{c.shape[0]} images x {c.shape[1]} concept values; "
                                     f"expected {tuple(c.shape[:2])}")
                row.append(e.reshape(n, v, -1).sum(1))  # (n, k): eq. (11) adds the views
            rows.append(torch.cat(row, dim=1))  # (n, G)
    energies = torch.cat(rows)  # (B, G)
    return energies[0] if single else energies

"""Concept inference on rendered scenes: MAP over concepts, energy basins, map comparisons.

Paper section 4.5: a conditional EBM ``E(x|c)`` read backwards. The concept of an image is
``argmin_c E(x|c)`` (the MAP under a flat prior); several images of one object add their
energies (eq. 11); an image holding two objects, seen by a model trained on single objects,
gives an energy map with one basin per object (Figure 12).

* :func:`infer_concept`: MAP of a continuous concept (grid start, projected Adam refinement;
  :func:`~conceptebm.infer.map_estimate`) or of a categorical one (exact enumeration), for a
  batch of images or, with ``views=True``, a batch of multi-view sets.
* :func:`scene_energy_maps`: ``E(x|c)`` on a regular grid of a 2-D concept, as ``(B, n, n)``.
* :func:`energy_basins`: the lowest well separated local minima of such maps (object finding).
* :func:`refine_basins`, :func:`locate_objects`: basins refined by a few Adam steps each.
* :func:`match_objects`, :func:`map_correlation`: scoring helpers for the benchmark.

Example (a hand-made energy that reads the bright pixel of a 1-channel 8x8 "scene"):
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Bright(ConditionalEnergy):
    ...     def energy(self, x, c):   # squared distance of c to the brightest pixel
    ...         g = torch.linspace(-1, 1, 8)
    ...         w = x[:, 0].flatten(1).softmax(-1).reshape(-1, 8, 8) # (B, 8, 8)
    ...         px = (w.sum(1) * g).sum(-1); py = (w.sum(2) * g).sum(-1)
    ...         return 50 * ((c[:, 0] - px) ** 2 + (c[:, 1] - py) ** 2)
    >>> x = torch.zeros(1, 1, 8, 8); x[0, 0, 2, 6] = 20.0   # row 2, column 6
    >>> est = infer_concept(Bright(Concept.continuous("position", dim=2)), x, check_range=False)
    >>> [round(v, 2) for v in est.value[0].tolist()]
    [0.71, -0.43]
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.concepts import Concept
from conceptebm.infer.energy_map import concept_grid, energy_map
from conceptebm.infer.optimize import concept_energy, map_categorical, map_estimate
from conceptebm.infer.settings import DEFAULT_MAP, MAP_CHUNK, default_grid

__all__ = [
    "ConceptEstimate",
    "Basins",
    "check_images",
    "infer_concept",
    "scene_energy_maps",
    "energy_basins",
    "refine_basins",
    "locate_objects",
    "match_objects",
    "map_correlation",
]


class ConceptEstimate(NamedTuple):
    """Result of :func:`infer_concept`.

    Attributes:
        concept: the inferred :class:`~conceptebm.concepts.Concept`.
        value: ``(B, dim)`` values of a continuous concept, or ``(B,)`` category indices.
        energy: ``(B,)`` energy at the estimate (summed over views for multi-view sets).
        names: category names (``B`` strings) for a categorical concept, else ``None``.
        energies: ``(B, K)`` energy of every category (categorical only), else ``None``.
    """

    concept: Concept
    value: Tensor
    energy: Tensor
    names: list[str] | None = None
    energies: Tensor | None = None

    def describe(self, i: int = 0) -> str:
        """One line for observation ``i``: ``position = (+0.312, -0.204)`` or ``color = red``."""
        if self.names is not None:
            return f"{self.concept.name} = {self.names[i]}"
        v = self.value[i].tolist()
        text = ", ".join(f"{x:+.3f}" for x in v)
        return f"{self.concept.name} = ({text})" if len(v) > 1 else f"{self.concept.name} = {text}"


class Basins(NamedTuple):
    """Result of :func:`energy_basins` / :func:`locate_objects`.

    Attributes:
        points: ``(B, k, dim)`` basin locations, lowest energy first.
        energy: ``(B, k)`` their energies.
        found: ``(B,)`` how many separated basins each map has (``<= k``); rows with fewer
            repeat their last basin so the tensors stay rectangular.
    """

    points: Tensor
    energy: Tensor
    found: Tensor


def concept_of(model) -> Concept:
    """The :class:`~conceptebm.concepts.Concept` a model reads (its ``.concept``); a clear
    error for anything that is not a concept model."""
    concept = getattr(model, "concept", None)
    if not isinstance(concept, Concept):
        raise TypeError(f"model must be a ConditionalEnergy with a .concept, got "
                        f"{type(model).__name__}")
    return concept


def check_images(images: Tensor, model=None, *, views: bool = False,
                 check_range: bool = True, event_dim: int = 3) -> Tensor:
    """Raise a clear ``ValueError`` unless ``images`` is a batch the model can read.

    ``images``: ``(B, C, H, W)``, or ``(B, V, C, H, W)`` with ``views=True``; floating, finite,
    in ``[0, 1]`` (``check_range=False`` skips the range test). When the model records its
    ``image_size`` / ``channels`` (as :class:`~conceptebm.energies.nets.ConvEnergyNet` does),
    the image shape must match. Other data (vectors for analytic energies) pass
    ``event_dim`` (1 for ``(B, D)``) and ``check_range=False``. Returns ``images`` unchanged.
    """
    event = "C, H, W" if event_dim == 3 else f"*event ({event_dim} dims)"
    want = f"(B, V, {event})" if views else f"(B, {event})"
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise ValueError(f"images must be a floating tensor {want} in [0, 1], got "
                         f"{type(images).__name__} {getattr(images, 'dtype', '')}")
    if images.dim() != event_dim + 1 + views:
        hint = (" (one set of views? add the batch dim: images[None])"
                if views and images.dim() == event_dim + 1 else "")
        raise ValueError(f"images must have shape {want}, got {tuple(images.shape)}{hint}")
    if images.shape[0] == 0 or (views and images.shape[1] == 0):
        raise ValueError(f"images is empty, shape {tuple(images.shape)}: nothing to infer")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf")
    if check_range and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got min {images.min().item():.3g}, max "
                         f"{images.max().item():.3g}; rescale them (PNG bytes / 255)")
    size, channels = getattr(model, "image_size", None), getattr(model, "channels", None)
    if event_dim != 3:
        return images
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        raise ValueError(
            f"the {concept_of(model).name} model reads {size}x{size} images, got "
            f"{images.shape[-2]}x{images.shape[-1]}; resize them, e.g. torch.nn.functional."
            f"interpolate(images, size={size}, mode='bilinear', antialias=True)")
    if channels is not None and images.shape[-3] != channels:
        raise ValueError(f"the model reads {channels}-channel images, got "
                         f"{images.shape[-3]} channels")
    return images


def infer_concept(model, images: Tensor, *, views: bool = False, grid: int | None = None,
                  steps: int | None = None, optimizer: str | None = None,
                  lr: float | None = None, restarts: int | None = None,
                  chunk_size: int | None = None, check_range: bool = True,
                  event_dim: int = 3, generator: torch.Generator | None = None,
                  progress: bool = False) -> ConceptEstimate:
    """MAP estimate of ``model.concept`` for each image (or each multi-view set).

    Args:
        model: a :class:`~conceptebm.energies.ConditionalEnergy` (e.g.
            ``conceptebm.pretrained.load("position")``).
        images: ``(B, C, H, W)`` in [0, 1]; with ``views=True``, ``(B, V, C, H, W)``: ``V``
            images of one concept value each, whose energies add (paper eq. 11).
        grid: continuous concepts: grid points per coordinate for the start (default 17 for a
            2-D concept, 101 for 1-D, 9 for 3-D, none beyond); the ``restarts`` best grid
            points are refined. ``grid=0``: ``restarts`` uniform random starts drawn with
            ``generator``.
        steps, optimizer, lr, restarts: the refinement (see
            :func:`~conceptebm.infer.map_estimate`); ``steps=0`` is a pure grid search.
        chunk_size: about this many (image, concept) pairs per network call on the grid (a
            multi-view set counts ``V`` images).
        check_range: refuse images outside [0, 1] (turn off for non-image data).

    The search settings not given here come from the model's own ``.map_settings`` (a
    :class:`~conceptebm.infer.MAPSettings` stored in its checkpoint), else
    :data:`~conceptebm.infer.DEFAULT_MAP` (the concept's default grid, 60 Adam steps, one
    restart, chunks of 4096).
        event_dim: dims of one observation (3 for images; 1 for vectors).

    Categorical concepts are inferred exactly, by the energy of every category.

    Returns:
        :class:`ConceptEstimate` (``value (B, dim)`` or category indices ``(B,)``).
    """
    concept = concept_of(model)
    check_images(images, model, views=views, check_range=check_range, event_dim=event_dim)
    settings = (getattr(model, "map_settings", None) or DEFAULT_MAP).replace(
        grid=grid, steps=steps, optimizer=optimizer, lr=lr, restarts=restarts,
        chunk_size=chunk_size)
    grid, steps, optimizer, lr = settings.grid, settings.steps, settings.optimizer, settings.lr
    restarts, chunk_size = settings.restarts, settings.chunk_size
    if concept.is_categorical:
        r = map_categorical(model, images, views=views, event_dim=event_dim,
                            chunk_size=chunk_size)
        rows = torch.arange(r.index.shape[0], device=r.index.device)
        return ConceptEstimate(concept, r.index, r.energies[rows, r.index], r.names, r.energies)
    grid = default_grid(concept) if grid is None else grid
    if int(grid) != grid or grid < 0:
        raise ValueError(f"grid must be an integer >= 0 (points per coordinate; 0 = random "
                         f"starts), got {grid!r}")
    energy_of_c = concept_energy(model, images, views=views)
    per_pair = images.shape[1] if views else 1  # a (set, grid point) pair costs V images
    r = map_estimate(energy_of_c, bounds=concept, grid=int(grid) or None, restarts=restarts,
                     optimizer=optimizer, steps=steps, lr=lr,
                     chunk_size=max(1, chunk_size // per_pair), generator=generator,
                     progress=progress)
    return ConceptEstimate(concept, r.c.detach(), r.energy.detach())


def scene_energy_maps(model, images: Tensor, points: int = 33, *, views: bool = False,
                      chunk_size: int = MAP_CHUNK, check_range: bool = True,
                      progress: bool = False) -> tuple[Tensor, Tensor]:
    """Energy maps of a 2-D concept over an ``points x points`` grid of its box.

    Returns ``(maps (B, points, points), grid (points * points, 2))`` with ``maps[b, i, j]``
    at ``c = (v[i], v[j])``: the first index runs along the first coordinate (for a position,
    x). Plot with ``imshow(maps[b].T, origin="lower", extent=(low, high, low, high))``.
    With ``views=True`` each map is the sum over the views (eq. 11).
    """
    concept = concept_of(model)
    if concept.is_categorical or concept.dim != 2:
        raise ValueError(f"scene_energy_maps needs a 2-D continuous concept (a position), got "
                         f"{concept.name!r} ({concept.kind}, dim {concept.dim}); use "
                         "infer.energy_map with a concept_grid for other concepts")
    check_images(images, model, views=views, check_range=check_range)
    if int(points) != points or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    grid = concept_grid(concept, int(points), dtype=images.dtype, device=images.device)
    # blocks of grid points, so a bar can follow a big map of few images (the engine's bar
    # counts images); each block is computed in bounded-memory chunks by energy_map
    block = max(1, (16 * chunk_size) // images.shape[0])
    with tqdm(total=grid.shape[0], desc="energy map", unit="pt", disable=not progress) as bar:
        parts = []
        for g in grid.split(block):
            parts.append(energy_map(model, images, g, chunk_size=chunk_size, views=views))
            bar.update(g.shape[0])
    maps = torch.cat(parts, dim=-1)  # (B, G)
    return maps.reshape(-1, points, points), grid


def energy_basins(maps: Tensor, grid: Tensor, k: int = 2, *,
                  min_separation: float = 0.3) -> Basins:
    """The ``k`` lowest local minima of 2-D energy maps that lie ``min_separation`` apart.

    A local minimum is a grid point no higher than its 8 neighbours (and not inside a flat
    plateau). Minima are taken in
    order of energy, skipping any closer than ``min_separation`` (Euclidean, in concept units)
    to one already taken, so a wide flat basin counts once.

    Args:
        maps: ``(B, n, n)`` from :func:`scene_energy_maps`; grid: its ``(n * n, 2)`` grid.
    """
    if maps.dim() != 3 or maps.shape[1] != maps.shape[2]:
        raise ValueError(f"maps must have shape (B, n, n), got {tuple(maps.shape)}")
    b, n = maps.shape[0], maps.shape[1]
    if grid.shape != (n * n, 2):
        raise ValueError(f"grid must have shape ({n * n}, 2) for {n}x{n} maps, got "
                         f"{tuple(grid.shape)}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not min_separation >= 0:
        raise ValueError(f"min_separation must be >= 0, got {min_separation!r}")
    # 3x3 neighbourhood min and max (max_pool pads with -inf, which never wins). A minimum is
    # no higher than its neighbours and lower than one of them: the inside of a flat plateau
    # (an energy that saturates far from any object) is not a basin.
    neigh_min = -F.max_pool2d(-maps[:, None], 3, stride=1, padding=1)[:, 0]  # (B, n, n)
    neigh_max = F.max_pool2d(maps[:, None], 3, stride=1, padding=1)[:, 0]
    is_min = ((maps <= neigh_min) & (maps < neigh_max)).reshape(b, -1)  # (B, G)
    flat = maps.reshape(b, -1)
    points = grid.new_zeros(b, k, 2)
    energy = maps.new_zeros(b, k)
    found = torch.zeros(b, dtype=torch.long)
    for i in range(b):
        cand = is_min[i].nonzero().flatten()
        cand = cand[flat[i, cand].argsort()]  # lowest first
        taken: list[int] = []
        for g in cand.tolist():
            if all((grid[g] - grid[t]).norm() >= min_separation for t in taken):
                taken.append(g)
                if len(taken) == k:
                    break
        if not taken:  # a constant map: its global minimum stands for the only basin
            taken = [int(flat[i].argmin())]
        found[i] = len(taken)
        taken += [taken[-1]] * (k - len(taken))  # pad to k
        points[i], energy[i] = grid[taken], flat[i, taken]
    return Basins(points, energy, found)


def refine_basins(model, images: Tensor, basins: Basins, *, steps: int = 30,
                  lr: float = 0.02, chunk_size: int = MAP_CHUNK) -> Basins:
    """Refine each basin of :func:`energy_basins` with ``steps`` projected Adam steps on the
    image's energy (a small ``lr`` keeps each start in its own basin); re-sorted by energy."""
    if steps == 0:
        return basins
    r = map_estimate(concept_energy(model, images), bounds=concept_of(model),
                     init=basins.points, steps=steps, lr=lr, chunk_size=chunk_size)
    order = r.candidate_energy.argsort(dim=1)  # lowest first again after refinement
    dim = r.candidates.shape[-1]
    pts = r.candidates.detach().gather(1, order[..., None].expand(-1, -1, dim))
    return Basins(pts, r.candidate_energy.detach().gather(1, order), basins.found)


def locate_objects(model, images: Tensor, k: int | str = 2, *, points: int = 33,
                   min_separation: float = 0.3, steps: int = 30, lr: float = 0.02,
                   chunk_size: int = MAP_CHUNK, check_range: bool = True,
                   progress: bool = False, **count):
    """Positions of ``k`` objects in each image from one single-object position model.

    The energy map of an image with several objects has a basin at each (paper Figure 12):
    take its ``k`` lowest separated basins (:func:`energy_basins`) on a ``points x points``
    grid and refine each (:func:`refine_basins`); returns :class:`Basins`.

    ``k="auto"``: how many objects there are is decided too, by the count rule fitted on
    validation scenes (:func:`conceptebm.scenes.objects.count_objects`, which takes the
    ``count`` keywords: ``threshold``, ``rule``, ``max_objects``, ...); returns
    :class:`~conceptebm.scenes.objects.Objects` (``found == 0``: no object).
    """
    if isinstance(k, str):
        if k != "auto":
            raise ValueError(f"k must be an integer >= 1 or 'auto', got {k!r}")
        from conceptebm.scenes.objects import count_objects

        return count_objects(model, images, points=points, min_separation=min_separation,
                             steps=steps, lr=lr, chunk_size=chunk_size, progress=progress,
                             **count)
    if count:
        raise TypeError(f"locate_objects: {sorted(count)} only go with k='auto'")
    maps, grid = scene_energy_maps(model, images, points, chunk_size=chunk_size,
                                   check_range=check_range, progress=progress)
    basins = energy_basins(maps, grid, k, min_separation=min_separation)
    return refine_basins(model, images, basins, steps=steps, lr=lr, chunk_size=chunk_size)


def match_objects(found: Tensor, truth: Tensor) -> Tensor:
    """Per image, the largest distance between a true object and its estimate under the best
    one-to-one assignment. ``found``, ``truth``: ``(B, k, dim)`` with small ``k`` (all ``k!``
    assignments are tried). An image is solved at tolerance ``t`` when the result is ``< t``.
    """
    from itertools import permutations

    if found.shape != truth.shape or found.dim() != 3:
        raise ValueError(f"found and truth must both have shape (B, k, dim), got "
                         f"{tuple(found.shape)} and {tuple(truth.shape)}")
    k = found.shape[1]
    worst = [(found[:, list(p)] - truth).norm(dim=-1).max(dim=1).values  # (B,)
             for p in permutations(range(k))]
    return torch.stack(worst, dim=1).min(dim=1).values  # (B,)


def map_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation ``(B,)`` between maps ``a`` and ``b`` (each ``(B, ...)``).

    Energies of an EBM are defined up to an additive constant, and maps from different
    images have different scales; correlation ignores both.
    """
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)

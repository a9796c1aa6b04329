"""Energy calibration: what ``min_c E(x | c)`` looks like on real images, to tell when an
image holds nothing the model recognises.

An EBM's energy is defined up to a constant, so a bare number says nothing; but the best
energy an image reaches (its MAP energy) can be compared with the best energies that held-out
real images of the model's own training distribution reach. :func:`energy_calibration`
records their quantiles (the training loop stores them in every best checkpoint's metadata
as ``energy_calibration``; the shipped models carry them in their JSON), and
:func:`object_found` says whether a new image's best energy lies within them, with a margin:

    threshold = q99 + MARGIN * (q99 - q50)

(an image above the 99th percentile of real images by more than ``MARGIN`` times the spread
between the median and that percentile is "no object found"; a calibration may carry its own
``"margin"``, chosen for that model on validation images with and without objects). A second
test catches what the
first misses for CD-trained models, whose best energies on a blank scene fall inside the real
range: the energy *contrast* ``max_c E - min_c E`` over the concept grid. An image without an
object leaves the energy flat in ``c``; below ``CONTRAST_FRACTION`` times the 1% quantile of
real images' contrast is "no object found" too. A multi-view set sums ``V`` views' energies
(eq. 11): compare ``energy / V`` and ``contrast / V``.

Measured on the shipped models (200 held-out scenes, ``conceptebm calibrate NAME``; five
images without an object: white, black, grey, uniform noise, the empty
background): position_contrastive, position and color refuse all five (grey and background by
contrast for the CD models); position_multiview refuses white, grey and background, not black
or noise; shape and size refuse white, black and noise, not grey or background (their CD
energies on an empty ground are those of real scenes: there the check cannot tell).

Example (a toy energy whose minimum over c is the image's mean brightness):
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Dim(ConditionalEnergy):
    ...     def energy(self, x, c):
    ...         return x.flatten(1).mean(1) + (c[:, 0] - 0.5) ** 2
    >>> net = Dim(Concept.continuous("level", 1, 0.0, 1.0))
    >>> real = torch.rand(64, 3, 4, 4) * 0.2      # dark real images: min energy ~0.1
    >>> from conceptebm.infer import MAPSettings
    >>> cal = energy_calibration(net, real, map_settings=MAPSettings(grid=11, steps=0))
    >>> sorted(cal["quantiles"]), sorted(cal["contrast"]), cal["n"]
    (['0.5', '0.9', '0.99'], ['0.01', '0.1', '0.5'], 64)
    >>> object_found(cal, torch.tensor([0.1, 0.9])).tolist()   # a bright image is not one
    [True, False]
"""

from __future__ import annotations

import torch
from torch import Tensor

from conceptebm.infer.settings import MAP_CHUNK, MAP_GRID, MAPSettings

__all__ = ["map_values", "min_energies", "energy_contrast", "energy_calibration",
           "checkpoint_calibration", "views_disagree", "min_contrast", "no_object_threshold",
           "object_found", "QUANTILES", "CONTRAST_QUANTILES", "MARGIN", "CONTRAST_FRACTION",
           "CHECKPOINT_MAP"]

QUANTILES = (0.5, 0.9, 0.99)
CONTRAST_QUANTILES = (0.01, 0.1, 0.5)
MARGIN = 1.0  # in units of (q99 - q50): see the module docstring
CONTRAST_FRACTION = 0.8  # of the real images' 1% contrast quantile (see the module docstring)
#: The training loop's cheap MAP for the calibration in every best checkpoint
#: (:func:`checkpoint_calibration`): a 9-point grid per coordinate, 30 Adam steps.
CHECKPOINT_MAP = MAPSettings(grid=9, steps=30)


def map_values(net, images: Tensor, *, map_settings: MAPSettings | None = None
               ) -> tuple[Tensor, Tensor]:
    """``(value, energy)``: the MAP of ``net.concept`` for each image ``(n, C, H, W)`` and
    ``min_c E(x | c)`` there, ``(n,)``, under ``map_settings`` (default: the net's own, else
    :data:`~conceptebm.infer.DEFAULT_MAP`). Continuous concepts: grid, then projected Adam
    (as :func:`~conceptebm.evaluate.quality.inference_quality`; the grid kept near 4096
    points beyond 2 dimensions), ``value (n, dim)``; categorical: every category's energy,
    ``value (n,)`` indices."""
    from conceptebm.evaluate.quality import evaluation_grid, map_settings_for
    from conceptebm.infer import concept_energy, map_categorical, map_estimate

    concept, s = net.concept, map_settings_for(net, map_settings)
    if concept.is_categorical:
        with torch.no_grad():
            r = map_categorical(net, images, chunk_size=s.chunk_size)
        return r.index, r.energies.min(dim=1).values.detach()  # (n,), (n,)
    grid = evaluation_grid(s, concept)
    if concept.dim > 2:  # keep the grid near 4096 points
        grid = max(2, min(grid, round(4096 ** (1 / concept.dim))))
    r = map_estimate(concept_energy(net, images), grid=grid, steps=s.steps,
                     optimizer=s.optimizer, lr=s.lr, restarts=s.restarts,
                     chunk_size=s.chunk_size)
    return r.c.detach(), r.energy.detach()  # (n, dim), (n,)


def min_energies(net, images: Tensor, **kw) -> Tensor:
    """``min_c E(x | c)`` for each image: the energy half of :func:`map_values`."""
    return map_values(net, images, **kw)[1]


def energy_contrast(net, images: Tensor, *, grid: int = MAP_GRID, views: bool = False,
                    chunk: int = MAP_CHUNK) -> Tensor:
    """``max_c E(x | c) - min_c E(x | c)`` over a ``grid``-per-coordinate grid of the concept
    (every category of a categorical one), ``(n,)``: how much the image's energy depends on
    the concept at all. With ``views=True`` ``images`` is ``(n, V, C, H, W)``, energies summed."""
    from conceptebm.infer.energy_map import concept_grid, energy_map

    concept = net.concept
    if not concept.is_categorical and concept.dim > 2:
        grid = max(2, min(grid, round(4096 ** (1 / concept.dim))))
    points = concept_grid(concept, grid, dtype=images.dtype, device=images.device)
    e = energy_map(net, images, points, chunk_size=chunk, views=views)  # (n, G)
    return (e.max(dim=1).values - e.min(dim=1).values).detach()


def _quantiles(x: Tensor, quantiles) -> dict[str, float]:
    q = torch.quantile(x.double().cpu(), torch.tensor([float(p) for p in quantiles],
                                                      dtype=torch.float64))
    return {f"{p:g}": float(v) for p, v in zip(quantiles, q, strict=True)}


def energy_calibration(net, images: Tensor, targets: Tensor | None = None, *,
                       quantiles=QUANTILES, map_settings: MAPSettings | None = None) -> dict:
    """Quantiles of the best energies over held-out real ``images`` (MAP under
    ``map_settings``, default the net's own: :func:`map_values`), as checkpoint JSON:
    ``{"quantiles": {"0.5": e, ...}, "n": n, "grid": grid, "steps": steps}`` (the start grid
    per coordinate and the steps of that MAP), and ``"contrast"`` quantiles
    (:func:`energy_contrast` on the :data:`~conceptebm.infer.settings.MAP_GRID` grid). With
    the images' ``targets`` (raw labels), also the model's own spread: ``"error"``, quantiles
    of the distance from MAP to truth (continuous), or ``"accuracy"`` (categorical)."""
    from conceptebm.evaluate.quality import map_settings_for

    if images.shape[0] < 10:
        raise ValueError(f"energy calibration needs >= 10 held-out images, got "
                         f"{images.shape[0]}")
    s = map_settings_for(net, map_settings)
    value, energy = map_values(net, images, map_settings=s)
    contrast = energy_contrast(net, images, chunk=s.chunk_size)
    out = {"quantiles": _quantiles(energy, quantiles), "n": int(images.shape[0]),
           "grid": MAP_GRID if s.grid is None else s.grid, "steps": s.steps,
           "contrast": _quantiles(contrast, CONTRAST_QUANTILES)}
    if targets is not None:
        t = torch.as_tensor(targets).to(value.device)
        if net.concept.is_categorical:
            out["accuracy"] = float((value == t.long()).double().mean())
        else:
            err = (value - t.reshape(value.shape).to(value.dtype)).norm(dim=-1)  # (n,)
            out["error"] = _quantiles(err, quantiles)
    return out


def checkpoint_calibration(net, images: Tensor, targets=None, *,
                           map_settings: MAPSettings = CHECKPOINT_MAP) -> dict | None:
    """:func:`energy_calibration` for a checkpoint's metadata, with the training loop's cheap
    MAP (:data:`CHECKPOINT_MAP`: grid 9, 30 Adam steps; finer searches at inference reach
    slightly lower energies, so the threshold errs towards finding an object); ``None`` for
    fewer than 10 images."""
    if images.shape[0] < 10:
        return None
    return energy_calibration(net, images, targets, map_settings=map_settings)


def no_object_threshold(calibration: dict, margin: float | None = None) -> float:
    """The best-energy level above which an image holds nothing the model recognises;
    ``margin`` defaults to the calibration's own ``"margin"`` (one chosen on validation images
    for that model), else :data:`MARGIN`."""
    if margin is None:
        margin = float(calibration.get("margin", MARGIN)) if isinstance(calibration, dict) \
            else MARGIN
    try:
        q = calibration["quantiles"]
        q50, q99 = float(q["0.5"]), float(q["0.99"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"energy_calibration must hold quantiles '0.5' and '0.99', got "
                         f"{calibration!r}") from None
    return q99 + margin * max(q99 - q50, 0.0)


def min_contrast(calibration: dict) -> float | None:
    """The contrast below which an image's energy is too flat in ``c`` to hold an object
    (``None`` for a calibration without a contrast record)."""
    q01 = (calibration.get("contrast") or {}).get("0.01")
    return None if q01 is None else CONTRAST_FRACTION * float(q01)


def object_found(calibration: dict, energy: Tensor, views: int = 1,
                 contrast: Tensor | None = None, margin: float | None = None, *,
                 familiarity: dict | None = None, images: Tensor | None = None) -> Tensor:
    """``(n,)`` bools: is each best ``energy`` (summed over ``views``) within what real
    images reach, and (given each image's :func:`energy_contrast`) its energy not flat? Given
    the model's ``familiarity`` record and the ``images`` (``(n, C, H, W)`` or sets ``(n, V,
    C, H, W)``), also: is each image of the kind the model was trained on
    (:func:`~conceptebm.evaluate.familiarity.familiar`; an image unlike them has no object the
    model knows, whatever its energy)?"""
    found = torch.as_tensor(energy) / views <= no_object_threshold(calibration, margin)
    low = min_contrast(calibration)
    if contrast is not None and low is not None:
        found = found & (torch.as_tensor(contrast) / views >= low)
    if familiarity is not None and images is not None:
        from conceptebm.evaluate.familiarity import familiar

        found = found & familiar(familiarity, images.detach().cpu()).to(found.device)
    return found


def views_disagree(calibration: dict, values: Tensor, categorical: bool = False,
                   margin: float = 2.0) -> bool:
    """Do separate estimates ``values`` of the views of one set, ``(V, dim)`` (or ``(V,)``
    category indices), disagree beyond the model's own spread? Continuous: two estimates
    further apart than ``margin`` times the 99th percentile of the model's MAP error on real
    images (each view may err that much, in opposite directions); categorical: different
    categories. ``False`` when the calibration has no error record."""
    values = torch.as_tensor(values)
    if categorical:
        return bool((values != values[0]).any())
    q99 = (calibration.get("error") or {}).get("0.99")
    if q99 is None or values.shape[0] < 2:
        return False
    return bool(torch.cdist(values[None].double(), values[None].double()).max() >
                margin * float(q99))

"""Say when an inference does not know: no object, or views that show different scenes.

:func:`check_estimates` looks at a MAP estimate (:func:`~conceptebm.scenes.infer_concept`)
with the model's ``energy_calibration`` (quantiles of the best energies held-out real images
reach, stored with the model; :mod:`conceptebm.evaluate.calibration`):

* **no object found**: the best energy (per view) is far above what real images reach, or
  the energy hardly depends on the concept (its contrast over the concept grid is below what
  real images show; :func:`~conceptebm.evaluate.calibration.object_found`): a blank or
  foreign image gets an answer that means nothing, and is flagged rather than printed as if
  it were sure; and, when the model's record has a ``familiarity`` check
  (:mod:`conceptebm.evaluate.familiarity`), an image (or any view) whose coarse statistics are
  unlike the images the model was trained on (a photograph, a drawing) is "no object found"
  too, with its distance in ``familiarity``;
* **views disagree**: several images given as views of one object (their energies add, eq. 11)
  whose separate estimates lie further apart than the model's own error on real images allows
  (:func:`~conceptebm.evaluate.calibration.views_disagree`), i.e. probably different scenes.

Without a calibration both answers are ``None`` (unknown), never ``True``.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from conceptebm.evaluate.calibration import (
    energy_contrast,
    no_object_threshold,
    object_found,
    views_disagree,
)
from conceptebm.evaluate.familiarity import colourless, familiarity
from conceptebm.infer.settings import MAP_STEPS
from conceptebm.scenes.inference import ConceptEstimate, infer_concept

__all__ = ["EstimateCheck", "check_estimates"]


class EstimateCheck(NamedTuple):
    """What one set's estimate rests on.

    Attributes:
        object_found: ``False`` when the best energy per view is above ``threshold``;
            ``None`` without a calibration.
        threshold: the no-object energy level (per view), or ``None``.
        views_agree: ``False`` when the views' separate estimates disagree; ``None`` for one
            view or without the model's error record.
        separate: the views' separate estimates (``(V, dim)`` values or ``V`` category names),
            when several views were checked.
        familiarity: the set's distance from the images the model was trained on, in units
            of its threshold (above 1: unlike them, and ``object_found`` is ``False``;
            :mod:`~conceptebm.evaluate.familiarity`); ``None`` when the model's record has
            no ``familiarity``.
        colourless: ``True`` when the set (any view) has no patch of colour where every
            training image had one (:func:`~conceptebm.evaluate.familiarity.colourless`: a
            grey or empty image); ``None`` without a ``familiarity`` record.
    """

    object_found: bool | None
    threshold: float | None
    views_agree: bool | None
    separate: list | None
    familiarity: float | None = None
    colourless: bool | None = None


def check_estimates(model, sets: Tensor, est: ConceptEstimate, calibration: dict | None, *,
                    grid: int | None = None, steps: int = MAP_STEPS) -> list[EstimateCheck]:
    """One :class:`EstimateCheck` per set of ``sets (S, V, C, H, W)`` estimated as ``est``.

    Sets of several views are also inferred view by view (one batched MAP of all ``S * V``
    images, with the same ``grid`` and ``steps``) to see whether they agree.
    """
    concept = model.concept
    n_sets, n_views = sets.shape[:2]
    threshold = no_object_threshold(calibration) if calibration else None
    found = [None] * n_sets
    fam_record = (getattr(model, "record", None) or {}).get("familiarity")
    distance, grey = [None] * n_sets, [None] * n_sets
    if fam_record:
        distance = familiarity(fam_record, sets.detach().cpu()).tolist()
        grey = colourless(fam_record, sets.detach().cpu()).tolist()
    if calibration:
        contrast = energy_contrast(model, sets, views=True)  # (S,) summed over the views
        found = object_found(calibration, est.energy, views=n_views, contrast=contrast).tolist()
        found = [f and (d is None or d <= 1.0) for f, d in zip(found, distance, strict=True)]
    per_view = None
    if n_views > 1:
        per_view = infer_concept(model, sets.flatten(0, 1)[:, None], views=True, grid=grid,
                                 steps=steps)
    out = []
    for i in range(n_sets):
        agree, separate = None, None
        if per_view is not None:
            rows = slice(i * n_views, (i + 1) * n_views)
            if concept.is_categorical:
                separate = per_view.names[rows]
                agree = not views_disagree(calibration or {}, per_view.value[rows],
                                           categorical=True)
            else:
                values = per_view.value[rows]  # (V, dim)
                separate = values.tolist()
                if calibration and (calibration.get("error") or {}).get("0.99") is not None:
                    agree = not views_disagree(calibration, values)
        out.append(EstimateCheck(found[i], threshold, agree, separate, distance[i], grey[i]))
    return out


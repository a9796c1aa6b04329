"""Metrics for generated images, each with its standard error (paper section 4.2, Table 1).

Every metric is a mean over ``n`` independent samples and comes back as a :class:`Metric`
``(value, stderr)``:

* accuracies (a fraction of successes) use the binomial standard error
  ``sqrt(p (1 - p) / n)``;
* errors (a mean of per-sample errors) use ``sd / sqrt(n)`` with the sample standard deviation
  (``n - 1`` in the denominator; 0 when ``n == 1``).

Which metrics a concept gets follows from its declaration (a
:class:`~conceptebm.concepts.Concept`), never from its name: a categorical concept is scored by
accuracy; a continuous one by mean absolute error (over samples and coordinates of
``|predicted - target|``) and, at each of its ``accuracy_tolerances``, by the share of values
whose **Euclidean (L2)** distance to the conditioned one is below it. Position accuracy thus
follows the paper: the scene's position concept declares the paper's tolerance 0.4 on the
``[-1, 1]^2`` scale and a stricter 0.15 (:data:`~conceptebm.datasets.scene.POSITION_TOLERANCES`).

Example:
    >>> import torch
    >>> pred = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    >>> target = torch.zeros(2, 2)
    >>> position_accuracy(pred, target, tol=0.4)
    Metric(value=0.5, stderr=0.3536)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from conceptebm.concepts import Concept
from conceptebm.datasets.scene import POSITION_TOLERANCES

__all__ = [
    "Metric",
    "rate_upper_bound",
    "PAPER_POSITION_TOL",
    "STRICT_POSITION_TOL",
    "binomial_metric",
    "mean_metric",
    "position_accuracy",
    "position_distance",
    "euclidean_distance",
    "metric_names",
    "mean_absolute_error",
    "class_accuracy",
    "score_predictions",
    "score_generations",
    "object_present",
]

#: The paper's "correct position" tolerance (section 4.2) and a stricter one we add, as the
#: scene's position concept declares them (:func:`conceptebm.datasets.scene_concepts`).
PAPER_POSITION_TOL, STRICT_POSITION_TOL = POSITION_TOLERANCES


class Metric(NamedTuple):
    """A metric's value and its standard error; unpacks as ``value, stderr = metric``."""

    value: float
    stderr: float

    def __repr__(self) -> str:  # short enough for tables and doctests
        return f"Metric(value={self.value:.4g}, stderr={self.stderr:.4g})"

    def format(self, digits: int = 3) -> str:
        """``"0.981 ± 0.004"``."""
        return f"{self.value:.{digits}f} ± {self.stderr:.{digits}f}"


# ------------------------------------------------------------------------------ reductions
def _check_nonempty(x: Tensor, name: str) -> None:
    if x.dim() != 1:
        raise ValueError(f"{name} must be one value per sample, shape (n,), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one sample")


def binomial_metric(correct: Tensor) -> Metric:
    """Fraction of ``True`` in a ``(n,)`` boolean tensor, with stderr ``sqrt(p(1-p)/n)``."""
    correct = torch.as_tensor(correct)
    _check_nonempty(correct, "correct")
    if correct.dtype != torch.bool:
        raise ValueError(f"correct must be a boolean tensor, got dtype {correct.dtype}")
    n = correct.numel()
    p = correct.double().mean().item()
    return Metric(p, math.sqrt(p * (1.0 - p) / n))


def rate_upper_bound(k: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``k`` times in ``n`` trials: the
    largest rate under which seeing ``k`` or fewer has probability ``1 - level``. With ``k =
    0`` it is ``1 - (1 - level) ** (1 / n)`` (a little under the rule of three, ``3 / n``).

    >>> round(rate_upper_bound(0, 1000), 5)
    0.00299
    """
    if not (0 <= k <= n and n >= 1):
        raise ValueError(f"rate_upper_bound needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if k >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(level, k + 1, n - k))


def mean_metric(values: Tensor) -> Metric:
    """Mean of ``(n,)`` per-sample values, with stderr ``sd / sqrt(n)`` (sd with ``n - 1``)."""
    values = torch.as_tensor(values).double()
    _check_nonempty(values, "values")
    if not torch.isfinite(values).all():
        raise ValueError("values contain NaN or inf; a mean error over them would be meaningless")
    n = values.numel()
    sd = values.std(unbiased=True).item() if n > 1 else 0.0
    return Metric(values.mean().item(), sd / math.sqrt(n))


# ------------------------------------------------------------------------------ metrics
def _pair(pred: Tensor, target: Tensor, name: str, width: int | None = None) -> tuple:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: predictions {tuple(pred.shape)} and targets {tuple(target.shape)} "
            "must have the same shape"
        )
    if width is not None and (pred.dim() != 2 or pred.shape[1] != width):
        raise ValueError(f"{name} expects shape (n, {width}), got {tuple(pred.shape)}")
    return pred.double(), target.to(pred.device).double()


def euclidean_distance(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample Euclidean distance ``(n,)`` between ``(n, d)`` values (``(n,)``: d = 1)."""
    pred, target = _pair(pred, target, "euclidean_distance")
    diff = pred - target
    return diff.reshape(diff.shape[0], -1).norm(dim=1)  # (n,)


def position_distance(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample Euclidean distance ``(n,)`` between ``(n, 2)`` positions."""
    pred, target = _pair(pred, target, "position", width=2)
    return (pred - target).norm(dim=1)  # (n,)


def position_accuracy(pred: Tensor, target: Tensor, tol: float = PAPER_POSITION_TOL) -> Metric:
    """Fraction of samples whose position lies within Euclidean distance ``tol`` (strictly)."""
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return binomial_metric(position_distance(pred, target) < tol)


def mean_absolute_error(pred: Tensor, target: Tensor) -> Metric:
    """Mean of ``|pred - target|`` over samples and coordinates; ``(n,)`` or ``(n, d)`` inputs.

    The standard error treats each sample (its mean over ``d`` coordinates) as one draw.
    """
    pred, target = _pair(pred, target, "mean_absolute_error")
    err = (pred - target).abs()
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1) if err.dim() > 1 else err  # (n,)
    return mean_metric(per_sample)


def class_accuracy(pred: Tensor, target: Tensor) -> Metric:
    """Fraction of equal class indices, ``(n,)`` integer tensors."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(
            "class_accuracy compares integer class indices; got floating tensors (take "
            "argmax of probabilities first)"
        )
    if pred.shape != target.shape:
        raise ValueError(f"class indices {tuple(pred.shape)} vs {tuple(target.shape)} differ")
    return binomial_metric(pred == target.to(pred.device))


# ------------------------------------------------------------------------------ scoring
#: An image shows an object when at least OBJECT_MIN_PIXELS pixels are saturated (max - min
#: over RGB above OBJECT_SATURATION): ground and clutter are grey and every palette colour is
#: saturated. On 2,000 renders of the "general" set the fewest such pixels was 11 (a small,
#: far, dark object); a blank generation has 2-5.
OBJECT_SATURATION = 0.3
OBJECT_MIN_PIXELS = 8


def object_present(images: Tensor, *, saturation: float = OBJECT_SATURATION,
                   min_pixels: int = OBJECT_MIN_PIXELS) -> Tensor:
    """``(n,)`` bool: does each image in ``(n, 3, H, W)`` (values in [0, 1]) show an object?

    The judges read *something* off any image: a blank one is read as some shape and colour.
    Generation metrics count a blank generation as a failure (see :func:`score_predictions`).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (n, 3, H, W), got {tuple(images.shape)}")
    sat = images.amax(1) - images.amin(1)  # (n, H, W)
    return (sat > saturation).flatten(1).sum(1) >= min_pixels


def _target_tensor(concept: Concept, value, n: int, device) -> Tensor:
    """Conditioned values as ``(n,)`` class indices or ``(n, dim)`` floats; one value broadcasts."""
    if concept.is_categorical:
        if isinstance(value, str):
            value = concept.index(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            value = [concept.index(v) for v in value]  # one name per image
        t = torch.as_tensor(value, device=device)
        if t.is_floating_point():  # one-hot or probabilities, (K,) or (n, K)
            if t.shape[-1:] != (concept.dim,):
                raise ValueError(f"{concept.name} one-hot targets need width {concept.dim}, "
                                 f"got shape {tuple(t.shape)}")
            t = t.argmax(dim=-1)
        if t.numel() and (t.min() < 0 or t.max() >= concept.dim):
            raise ValueError(f"{concept.name} indices must lie in [0, {concept.dim - 1}], "
                             f"got {t.tolist()}")
        return t.long().expand(n) if t.dim() == 0 else t.long()
    if concept.dim == 1 and isinstance(value, Tensor) and value.dim() == 1 and len(value) > 1:
        value = value[:, None]  # (n,) per-image values of a 1-d concept such as size
    t = concept.encode(value, device=device)  # validates shape and range
    return t.expand(n, concept.dim) if t.dim() == 1 else t


def metric_names(concept: Concept) -> list[str]:
    """The metrics :func:`score_predictions` reports for ``concept``, main one first.

    Example:
        >>> from conceptebm.datasets import scene_concepts
        >>> for concept in scene_concepts().values():
        ...     print(concept.name, metric_names(concept))
        position ['position_acc', 'position_acc_0.15', 'position_mae']
        size ['size_mae']
        color ['color_acc']
        shape ['shape_acc']
    """
    if concept.is_categorical:
        return [f"{concept.name}_acc"]
    tols = concept.accuracy_tolerances
    return ([f"{concept.name}_acc"] * bool(tols)
            + [f"{concept.name}_acc_{t:g}" for t in tols[1:]] + [f"{concept.name}_mae"])


def score_predictions(predictions: Mapping[str, Tensor], targets: Mapping,
                      concepts: Mapping[str, Concept], *,
                      present: Tensor | None = None, joint: bool = False) -> dict:
    """Score judged ``predictions`` against the ``targets`` the images were conditioned on.

    Args:
        predictions: a judge's output (``Judge.predict``): ``(n, dim)`` floats for continuous
            concepts, ``(n,)`` indices for categorical ones.
        targets: concept name -> conditioned value, for the concepts to score: one value for
            all images (``"red"``, ``(0.3, -0.2)``) or one per image (``(n,)`` indices,
            ``(n, dim)`` floats).
        concepts: the :class:`Concept` of each name (``judge.concepts``): its declaration
            decides the metrics (:func:`metric_names`).
        present: optional ``(n,)`` bool (:func:`object_present`): images without an object
            count as wrong in every accuracy (errors are averaged over all images as judged),
            and ``object_rate`` is reported.
        joint: also report ``all_acc``, the share of images right on *every* target concept
            at once (a continuous one within its first tolerance): what a conjunction asks.

    Returns:
        ``{metric name: Metric}``: ``<name>_acc`` for a categorical concept; for a continuous
        one ``<name>_acc`` (Euclidean distance below its first accuracy tolerance),
        ``<name>_acc_<tol>`` for each further tolerance, and ``<name>_mae``;
        ``object_rate`` with ``present``; ``all_acc`` with ``joint``.
    """
    out: dict[str, Metric] = {}
    hits = []  # (n,) bool per target concept, for ``joint``
    if present is not None:
        present = torch.as_tensor(present, dtype=torch.bool)
        out["object_rate"] = binomial_metric(present)
    for name, value in targets.items():
        if name not in concepts:
            raise ValueError(f"cannot score {name!r}: the judge knows {sorted(concepts)}")
        if name not in predictions:
            raise ValueError(f"predictions have no {name!r}; they have {sorted(predictions)}")
        concept, pred = concepts[name], predictions[name]
        target = _target_tensor(concept, value, pred.shape[0], pred.device)
        if concept.is_categorical:
            if present is not None:
                pred = torch.where(present.to(pred.device), pred, torch.full_like(pred, -1))
            out[f"{name}_acc"] = class_accuracy(pred, target)
            hits.append(pred == target)
            continue
        names = metric_names(concept)
        if concept.accuracy_tolerances:
            dist = euclidean_distance(pred, target)  # (n,)
            for key, tol in zip(names, concept.accuracy_tolerances, strict=False):
                hit = dist < tol
                if present is not None:
                    hit = hit & present.to(hit.device)
                out[key] = binomial_metric(hit)
                if key == names[0]:
                    hits.append(hit)
        elif joint:
            raise ValueError(f"joint: {name!r} declares no accuracy tolerance to be right within")
        out[names[-1]] = mean_absolute_error(pred, target)
    if joint and hits:
        out["all_acc"] = binomial_metric(torch.stack(hits).all(0))
    return out


def score_generations(judge, images: Tensor, targets: Mapping, **kwargs) -> dict:
    """Judge ``images`` and score them against the concept values they were generated for.

    For generated images, ``targets`` are the values the sampler was conditioned on, e.g.
    ``{"position": (0.3, -0.2), "color": "red"}`` for ``pos.given((0.3, -0.2)) &
    col.given("red")``. On renders, the labels are the targets:

    Example:
        >>> from conceptebm.datasets import make_dataset
        >>> from conceptebm.evaluate import load_judges
        >>> images, labels = make_dataset("general", size=16, seed=7).batch(range(16))
        >>> score_generations(load_judges(), images, {"color": labels["color"]})
        {'object_rate': Metric(value=1, stderr=0), 'color_acc': Metric(value=1, stderr=0)}
    """
    predictions = judge.predict(images)
    kwargs.setdefault("present", object_present(images))
    return score_predictions(predictions, targets, judge.concepts, **kwargs)

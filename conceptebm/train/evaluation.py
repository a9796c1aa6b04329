"""How good is a trained concept EBM? Judge its generations; infer concepts with it.

* :func:`generation_quality`: generate one image per target concept value (from fresh noise
  with the test-time sampler) and score what the judges read off them
  (:mod:`conceptebm.evaluate.metrics`: position accuracy within 0.4 / 0.15 and MAE, class
  accuracy, size MAE, each with its standard error).
* :func:`inference_quality`: MAP concept inference on real images with the EBM as the
  energy of c (grid, then Adam refinement; enumeration for categories) and its error.
* :func:`selection_score`: one "higher is better" number per concept, used to keep the best
  checkpoint (training is not monotonic: ``cpu-prototype.md``, run F).

Example:
    >>> metrics = {"color_acc": Metric(0.9, 0.03)}                           # doctest: +SKIP
    >>> selection_score(metrics, color_concept)                              # doctest: +SKIP
    0.9
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.evaluate.metrics import (
    Metric,
    mean_absolute_error,
    object_present,
    score_predictions,
)
from conceptebm.train.sampling import sample_images

__all__ = ["DEFAULT_SAMPLER", "generation_quality", "inference_quality", "selection_score"]

#: Test-time sampler: twice the training K, from fresh low-frequency noise (prototype).
#: The keys are those of :func:`conceptebm.infer.langevin` (with ``bounds=(0, 1)``).
DEFAULT_SAMPLER = {"num_steps": 40, "step_size": 100.0, "noise_scale": 0.005, "init": "smooth"}


def generation_quality(net: ConditionalEnergy, judge, targets, *, sampler: Mapping | None = None,
                       generator=None, chunk: int = 250, frozen: Sequence = (),
                       frozen_c: Tensor | None = None, return_images: bool = False):
    """Generate for each target value and score the judge's reading of the images.

    Args:
        net: the conditional energy; ``net.concept.name`` must be a concept the judge reads.
        judge: has ``predict(images) -> {name: prediction}`` and ``concepts``.
        targets: raw labels as a dataset gives them, ``(n, dim)`` floats or ``(n,)`` indices.
        sampler: settings for :func:`~conceptebm.train.sampling.sample_images`
            (default :data:`DEFAULT_SAMPLER`).
        frozen, frozen_c: extra (frozen) energies and their ``(n, L')`` encodings, ANDed in.
    Returns:
        ``{metric name: Metric}`` (and the images if ``return_images``), with
        ``object_rate``: the share of generations that show an object at all
        (:func:`~conceptebm.evaluate.object_present`); accuracies count blank ones as wrong.
    """
    concept = net.concept
    if concept.name not in judge.concepts:
        raise ValueError(f"the judge reads {sorted(judge.concepts)}, not {concept.name!r}")
    settings = {**DEFAULT_SAMPLER, **(sampler or {})}
    device = next(net.parameters()).device
    c = concept.encode(targets, device=device)  # (n, L)
    if c.dim() == 1:
        c = c[None]
    if frozen_c is not None:
        c = torch.cat([c, frozen_c.to(c)], dim=1)
    images = []
    for s in range(0, c.shape[0], chunk):
        images.append(sample_images(net, c[s:s + chunk], frozen=frozen, generator=generator,
                                    **settings))
    images = torch.cat(images)  # (n, C, H, W)
    with torch.no_grad():
        pred = judge.predict(images)
    # a blank generation is a failure, whatever the judges read off it
    metrics = score_predictions(pred, {concept.name: targets}, judge.concepts,
                                present=object_present(images))
    return (metrics, images) if return_images else metrics


def inference_quality(net: ConditionalEnergy, images: Tensor, targets, *, grid: int = 17,
                      steps: int = 60, chunk: int = 4096) -> dict[str, Metric]:
    """MAP inference of ``net.concept`` on real ``images (n, C, H, W)`` against ``targets``.

    Continuous concepts: :func:`~conceptebm.infer.map_estimate` from the best point of a
    ``grid``-per-coordinate grid, refined with ``steps`` projected Adam steps. Categorical:
    exact enumeration (:func:`~conceptebm.infer.map_categorical`). Returns
    ``{"<name>_mae": ...}`` (plus accuracies for position) or ``{"<name>_acc": ...}``.
    """
    from conceptebm.infer import concept_energy, map_categorical, map_estimate

    concept: Concept = net.concept
    if concept.is_categorical:
        with torch.no_grad():
            idx = map_categorical(net, images, chunk_size=chunk).index
        return score_predictions({concept.name: idx}, {concept.name: targets},
                                 {concept.name: concept})
    grid = min(grid, 101) if concept.dim == 1 else grid
    res = map_estimate(concept_energy(net, images), grid=grid, steps=steps, chunk_size=chunk)
    pred = res.c.detach()
    if concept.name == "position":
        return score_predictions({concept.name: pred}, {concept.name: targets},
                                 {concept.name: concept})
    return {f"{concept.name}_mae": mean_absolute_error(pred, torch.as_tensor(targets).to(pred))}


def selection_score(metrics: Mapping[str, Metric], concept: Concept) -> float:
    """Higher is better: class accuracy, or ``1 - MAE / range`` for continuous concepts."""
    if concept.is_categorical:
        return float(metrics[f"{concept.name}_acc"].value)
    return 1.0 - float(metrics[f"{concept.name}_mae"].value) / (concept.high - concept.low)

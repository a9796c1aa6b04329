"""Judge-free evaluation of a concept EBM: MAP inference of its concept on held-out images.

A user's own images have no judge (the shipped judges read only our renderer's concepts), but
they have labels, so an inference model is scored by how well ``argmin_c E(x | c)`` recovers
them: mean absolute error for continuous concepts (plus the accuracies within the concept's
tolerances, :attr:`~conceptebm.concepts.Concept.accuracy_tolerances`), accuracy for
categorical ones. The training loop uses this, on the seeded
held-out split, for its eval rows and best-checkpoint selection when the data has no judge
(:func:`judge_free`); ``paper/benchmarks/user_data.py`` also scores it under pixel noise.

Example:
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Bright(ConditionalEnergy):          # E low when c matches the mean pixel
    ...     def energy(self, x, c):
    ...         return (x.flatten(1).mean(1) - c[:, 0]) ** 2
    >>> net = Bright(Concept.continuous("level", 1, 0.0, 1.0))
    >>> images = torch.rand(6, 1, 1, 1).expand(6, 3, 4, 4)
    >>> from conceptebm.infer import MAPSettings
    >>> m = heldout_map_metrics(net, images, images[:, 0, 0, :1],
    ...                         map_settings=MAPSettings(grid=11, steps=80))
    >>> m["level_mae"].value < 0.01, map_score(m, net.concept) > 0.99
    (True, True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from conceptebm.concepts import Concept
from conceptebm.evaluate.augment import add_pixel_noise
from conceptebm.evaluate.metrics import Metric
from conceptebm.infer.settings import MAPSettings

__all__ = ["heldout_map_metrics", "map_score", "judge_free"]


def judge_free(dataset) -> bool:
    """True for data the shipped judges cannot read: a user's images (``load_images``)."""
    from conceptebm.datasets.user import LabelledImages

    return isinstance(dataset, LabelledImages)


def heldout_map_metrics(net, images: Tensor, targets, *,
                        map_settings: MAPSettings | None = None, noise_sigma: float = 0.0,
                        seed: int = 0) -> dict[str, Metric]:
    """Score MAP inference of ``net.concept`` on ``images`` against ``targets`` (raw labels:
    ``(n, dim)`` floats or ``(n,)`` indices), after ``N(0, noise_sigma^2)`` pixel noise
    (seeded, clipped to [0, 1]); the inference is
    :func:`~conceptebm.evaluate.quality.inference_quality` (grid, then projected Adam) under
    ``map_settings`` (default: the net's own, else
    :data:`~conceptebm.infer.DEFAULT_MAP`), its start grid kept near 4096 points for a
    concept of more than 2 dimensions.

    Returns ``{"<name>_acc"}`` (categorical) or ``{"<name>_mae"}`` (continuous; plus the
    accuracies within the concept's tolerances: :func:`~conceptebm.evaluate.metric_names`).
    """
    from conceptebm.evaluate.quality import evaluation_grid, inference_quality, map_settings_for

    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    settings = map_settings_for(net, map_settings)
    if noise_sigma > 0:
        gen = torch.Generator().manual_seed(seed)
        sigma = torch.full((images.shape[0],), float(noise_sigma))
        images = add_pixel_noise(images.cpu(), sigma, generator=gen).to(images.device)
    concept = net.concept
    if not concept.is_categorical and concept.dim > 2:  # keep the grid ~4096 points
        grid = max(2, min(evaluation_grid(settings, concept), round(4096 ** (1 / concept.dim))))
        settings = settings.replace(grid=grid)
    return inference_quality(net, images, torch.as_tensor(targets), map_settings=settings)


def map_score(metrics: dict[str, Metric], concept: Concept) -> float:
    """Higher is better: accuracy, or ``1 - MAE / range`` (the loop's selection score)."""
    from conceptebm.evaluate.quality import selection_score

    return selection_score(metrics, concept)

"""Score a judge on labelled renders it has not seen, clean or with pixel noise.

Used by the training command (the metrics stored in the shipped JSON) and by
``benchmarks/judges.py`` (the same numbers on fresh renders).

Example:
    >>> from conceptebm.datasets import make_dataset
    >>> from conceptebm.evaluate import load_judges
    >>> data = make_dataset("general", size=256, seed=123_456)
    >>> heldout_metrics(load_judges(), data)["color_acc"]
    Metric(value=1, stderr=0)
"""

from __future__ import annotations

import torch

from conceptebm.evaluate.augment import add_pixel_noise
from conceptebm.evaluate.judge import Judge
from conceptebm.evaluate.metrics import Metric, score_predictions

__all__ = ["heldout_metrics", "metrics_to_json"]


@torch.no_grad()
def heldout_metrics(judge: Judge, dataset, *, noise_sigma: float = 0.0, seed: int = 0,
                    batch_size: int = 500) -> dict[str, Metric]:
    """Judge every item of ``dataset`` (``dataset.batch(indices)`` interface) and score it
    against its labels, after adding ``N(0, noise_sigma^2)`` pixel noise (clipped to [0, 1]).

    Every concept the judge knows and the labels carry is scored (see
    :func:`~conceptebm.evaluate.metrics.score_predictions`).
    """
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset is empty: nothing to evaluate")
    gen = torch.Generator().manual_seed(seed)
    preds: dict[str, list] = {}
    labels: dict[str, list] = {}
    for start in range(0, n, batch_size):
        images, lab = dataset.batch(torch.arange(start, min(n, start + batch_size)))
        images = images.float()
        if noise_sigma > 0:
            sigma = torch.full((images.shape[0],), float(noise_sigma))
            images = add_pixel_noise(images.cpu(), sigma, generator=gen).to(images.device)
        for k, v in judge.predict(images).items():
            preds.setdefault(k, []).append(v.cpu())
        for k, v in lab.items():
            if k in judge.concepts:
                labels.setdefault(k, []).append(torch.as_tensor(v).cpu())
    if not labels:
        raise ValueError(f"the dataset's labels share no concept with the judge "
                         f"({sorted(judge.concepts)})")
    predictions = {k: torch.cat(v) for k, v in preds.items()}
    targets = {k: torch.cat(v) for k, v in labels.items()}
    return score_predictions(predictions, targets, judge.concepts)


def metrics_to_json(metrics: dict[str, Metric]) -> dict[str, dict[str, float]]:
    """``{name: {"value": v, "stderr": s}}`` for JSON files."""
    return {k: {"value": m.value, "stderr": m.stderr} for k, m in metrics.items()}

"""Judges (supervised concept readers) and metrics for generated images (paper section 4.2).

``load_judges()`` gives the shipped multi-head judge for 32x32 "general" scenes;
``judge.predict(images)`` reads position, size, colour and shape off a batch;
``score_generations(judge, images, targets)`` turns that into accuracies and errors with
standard errors (the metrics follow each concept's declaration: :func:`metric_names`);
``generation_quality`` / ``inference_quality`` score a concept EBM (:mod:`.quality`);
``score_model``, ``select`` and ``export`` score a model as flat JSON, pick a run's best
snapshot and ship it (:mod:`.selection`, what ``paper/benchmarks/train_quality.py`` calls).
``fit_familiarity`` / ``familiar`` say whether an image is of the kind a model was trained on
(:mod:`.familiarity`, the check behind "no object found" for photographs).

Example:
    >>> import torch
    >>> from conceptebm.evaluate import load_judges, score_generations
    >>> judge = load_judges()
    >>> images = torch.rand(8, 3, 32, 32)   # stand-in for generated samples
    >>> scores = score_generations(judge, images, {"color": "red"})
    >>> sorted(scores)      # object_rate: the share of images that show an object at all
    ['color_acc', 'object_rate']
"""

from conceptebm.evaluate.augment import add_pixel_noise, augment, gaussian_blur
from conceptebm.evaluate.checkpoint import SHIPPED, load_judge, load_judges, save_judge
from conceptebm.evaluate.familiarity import familiar, familiarity, fit_familiarity
from conceptebm.evaluate.heldout import heldout_metrics, metrics_to_json
from conceptebm.evaluate.judge import Judge, JudgeConfig, JudgeNet
from conceptebm.evaluate.metrics import (
    PAPER_POSITION_TOL,
    STRICT_POSITION_TOL,
    Metric,
    binomial_metric,
    class_accuracy,
    euclidean_distance,
    mean_absolute_error,
    mean_metric,
    metric_names,
    object_present,
    position_accuracy,
    position_distance,
    score_generations,
    score_predictions,
)
from conceptebm.evaluate.quality import (
    generate,
    generation_quality,
    inference_quality,
    sampler_settings,
    selection_score,
)
from conceptebm.evaluate.realism import frechet_distance, judge_features, realism
from conceptebm.evaluate.selection import (
    SELECT_SEED,
    TEST_SEED,
    export,
    model_sampler,
    model_score,
    passes,
    result_keys,
    score_model,
    select,
)

#: What a user needs; the rest stays importable from its module.
__all__ = [
    "load_judges",
    "Judge",
    "score_generations",
    "score_predictions",
    "Metric",
    "metric_names",
    "object_present",
    "realism",
    "frechet_distance",
    "generate",
    "generation_quality",
    "inference_quality",
    "heldout_metrics",
    "augment",
    "add_pixel_noise",
    "PAPER_POSITION_TOL",
    "STRICT_POSITION_TOL",
    "score_model",
    "select",
    "export",
    "fit_familiarity",
    "familiarity",
    "familiar",
]

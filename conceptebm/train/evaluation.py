"""Moved to :mod:`conceptebm.evaluate.quality` (evaluation lives in ``conceptebm.evaluate``);
these names stay importable from here and from :mod:`conceptebm.train`."""

from conceptebm.evaluate.quality import (
    DEFAULT_SAMPLER,
    generation_quality,
    inference_quality,
    selection_score,
)

__all__ = ["DEFAULT_SAMPLER", "generation_quality", "inference_quality", "selection_score"]

"""Learning-rate schedules: the one warm-up + cosine curve every trainer uses.

Low in the package (it imports nothing of it) so that both the EBM training loop
(:func:`conceptebm.train.lr_at`) and the judges' trainer (``evaluate/train_judges.py``, a
layer below ``train``) read their learning rate from the same function.

Example:
    >>> [round(warmup_cosine(s, peak=1.0, decay_steps=4), 3) for s in range(6)]
    [1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    >>> [warmup_cosine(s, peak=1.0, warmup=2, decay_steps=2) for s in range(3)]
    [0.5, 1.0, 1.0]
"""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, *, peak: float, decay_steps: int, floor: float = 0.0,
                  warmup: int = 0) -> float:
    """The value at 0-based ``step``: a linear warm-up ``peak * (step + 1) / warmup`` over the
    first ``warmup`` steps, then half a cosine from ``peak`` down to ``floor`` over
    ``decay_steps`` steps, then ``floor``.

    Args:
        step: 0-based optimizer step.
        peak: value at the end of the warm-up (the base learning rate, or 1.0 for a factor).
        decay_steps: steps the cosine takes from ``peak`` to ``floor`` (``< 1`` counts as 1).
        floor: final value.
        warmup: warm-up steps (0: none).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, got {warmup}")
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, decay_steps))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * t))

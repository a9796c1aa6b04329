"""The loss functions of training: contrastive divergence (paper eq. 2) and the extra terms.

* CD with L2 energy regularisation (official code):
  ``mean E(x+|c) - mean E(x-|c-) + l2 * (mean E(x+|c)^2 + mean E(x-|c-)^2)``, with the
  negatives ``x-`` detached (no gradient through the sampler).
* KL term of improved CD (Du et al. 2021): one more differentiable Langevin step from the
  final negatives, scored by the energy with *frozen* parameters, so the parameters get a
  gradient only through the sampler step and learn to make sampling move toward low energy.
* Concept-contrastive term: for a real image, the true concept value against wrong ones,
  cross-entropy over ``-E(x|c_j) / T``. It trains E(x|c) to rank concept values on real
  images, which is what concept inference (argmin over c) needs; CD alone never compares two
  labels on the same image. CD keeps energies small (|E| ~ 0.01-0.1 with the L2 penalty), so
  at T = 1 the softmax is flat and the term cannot be learned (measured: the cross-entropy
  stayed at log 8 for 1300 iterations); T = 0.01 puts label gaps of ~0.01 at logit gaps of
  ~1, as the official code's disjunction temperature does. The term enters the loss as
  ``T * CE``, whose gradient is on the energy scale of the CD term, so weight 1 balances them.
* Image-contrastive term: the other direction. For a concept value ``c_i``, its real image
  ``x_i`` against real images of *other* values from the same batch, cross-entropy over
  ``-E(x_j|c_i) / T`` (images of the same value, or within :data:`SAME_VALUE_MARGIN` of the
  range for continuous concepts, are masked out). Generation follows the ranking of images
  under a fixed label, which the label-ranking term above does not train: a net can tell a
  cylinder's label from a cube's on a real cylinder and still give a real cube a lower
  energy under "cylinder" than a real cylinder. Measured (README, shape and size tables): at
  weight 1 it lifts MAP inference (shape accuracy 0.98, size error 4.9 % of the range) but
  not generation (shape 0.66 falling to 0.45), so it is off by default.

These are pure functions of energies; :mod:`conceptebm.train.objective` wraps each as a loss
term that owns its rows and weight, and composes them into the objectives the loop trains
(CD with its terms, or the concept-contrastive term alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from conceptebm.concepts import Concept
from conceptebm.energies.nets import JointConcept

__all__ = ["cd_loss", "concept_contrastive_loss", "image_contrastive_loss", "same_value",
           "wrong_concept_values", "near_values"]

#: continuous values closer than this fraction of the range count as the same value
SAME_VALUE_MARGIN = 0.1


def cd_loss(e_pos: Tensor, e_neg: Tensor, l2: float) -> tuple[Tensor, Tensor]:
    """Eq. (2) with L2 regularisation; returns ``(loss, cd)`` where cd = mean E+ - mean E-.

    Lower energy on data and higher on negatives lowers the loss. ``e_pos``, ``e_neg``: (B,).
    """
    cd = e_pos.mean() - e_neg.mean()
    return cd + l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean()), cd


def concept_contrastive_loss(e_true: Tensor, e_wrong: Tensor,
                             temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Cross-entropy of the true concept against wrong ones, logits ``-E / temperature``.

    Args:
        e_true: ``(B,)`` energies E(x|c) of real images under their true values.
        e_wrong: ``(B, M)`` energies under M wrong values.
        temperature: T > 0 of the softmax.
    Returns:
        ``(loss, accuracy)``: accuracy is the fraction where the true value has the lowest
        energy.
    """
    logits = -torch.cat([e_true[:, None], e_wrong], dim=1) / temperature  # (B, 1 + M)
    target = torch.zeros(e_true.shape[0], dtype=torch.long, device=e_true.device)
    acc = (logits.argmax(1) == 0).float().mean()
    return F.cross_entropy(logits, target), acc


def image_contrastive_loss(e_true: Tensor, e_other: Tensor, valid: Tensor,
                           temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Cross-entropy of each label's own image against other images, logits ``-E / T``.

    Args:
        e_true: ``(B,)`` energies E(x_i|c_i).
        e_other: ``(B, M)`` energies E(x_j|c_i) of other images under c_i.
        valid: ``(B, M)`` bool, False where x_j shows c_i's value too (not a negative).
        temperature: T > 0 of the softmax.
    Returns:
        ``(loss, accuracy)``: a row without any valid negative contributes zero loss and counts
        as correct; accuracy is the fraction where the own image has the lowest energy.
    """
    logits = -torch.cat([e_true[:, None], e_other], dim=1) / temperature  # (B, 1 + M)
    keep = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
    logits = logits.masked_fill(~keep, float("-inf"))
    target = torch.zeros(e_true.shape[0], dtype=torch.long, device=e_true.device)
    acc = (logits.argmax(1) == 0).float().mean()
    return F.cross_entropy(logits, target), acc


def same_value(concept: Concept, a: Tensor, b: Tensor) -> Tensor:
    """Whether encodings ``a`` and ``b (..., L)`` show the same value of ``concept``: every
    categorical part equal and every continuous part within :data:`SAME_VALUE_MARGIN` of its
    range. Returns a bool tensor of shape ``(...)``."""
    parts = concept.parts if isinstance(concept, JointConcept) else (concept,)
    a, b = torch.broadcast_tensors(a, b)
    same = torch.ones(a.shape[:-1], dtype=torch.bool, device=a.device)
    for part, pa, pb in zip(parts, torch.split(a, [p.dim for p in parts], -1),
                            torch.split(b, [p.dim for p in parts], -1), strict=True):
        if part.is_categorical:
            same &= pa.argmax(-1) == pb.argmax(-1)
        else:
            gap = (pa - pb).abs().amax(-1) / (part.high - part.low)
            same &= gap < SAME_VALUE_MARGIN
    return same


def _random_values(concept: Concept, shape: tuple[int, ...], generator, device) -> Tensor:
    if isinstance(concept, JointConcept):
        return torch.cat([_random_values(p, shape, generator, device) for p in concept.parts], -1)
    if concept.is_categorical:
        idx = torch.randint(0, concept.dim, shape, generator=generator, device=device)
        return F.one_hot(idx, concept.dim).float()
    u = torch.rand((*shape, concept.dim), generator=generator, device=device)
    return concept.low + (concept.high - concept.low) * u


def near_values(concept: Concept, c: Tensor, num: int, scale: float, *,
                generator=None) -> Tensor:
    """``num`` values near each continuous ``c (B, L)``, shape ``(B, num, L)``.

    Each lies at an L-infinity distance between ``scale / 5`` and ``scale`` (fractions of the
    concept's range, uniform) from the true value, in a uniformly random direction of the
    cube; a coordinate that would leave the range is mirrored to the other side of the true
    value. Joint concepts move every continuous part (categorical parts keep their value).

    Example:
        >>> pos = Concept.continuous("position", dim=2)
        >>> c = torch.zeros(3, 2)
        >>> v = near_values(pos, c, 4, 0.1, generator=torch.Generator().manual_seed(0))
        >>> v.shape, bool(((v - c[:, None]).abs().amax(-1) <= 0.2 + 1e-6).all())
        (torch.Size([3, 4, 2]), True)
    """
    if not 0 < scale <= 1:
        raise ValueError(f"near-negative scale must lie in (0, 1] (a fraction of the range), "
                         f"got {scale}")
    if isinstance(concept, JointConcept):
        parts = torch.split(c, [p.dim for p in concept.parts], -1)
        return torch.cat([near_values(p, pc, num, scale, generator=generator)
                          if not p.is_categorical else pc[:, None].expand(-1, num, -1)
                          for p, pc in zip(concept.parts, parts, strict=True)], -1)
    if concept.is_categorical:
        raise ValueError(f"near values need a continuous concept; {concept.name!r} is "
                         "categorical (its wrong values are all the other categories)")
    b, d = c.shape
    width = concept.high - concept.low
    u = torch.rand((b, num, d + 1), generator=generator, device=c.device)  # (B, num, L + 1)
    direction = 2 * u[..., :d] - 1
    direction = direction / direction.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    radius = scale * (0.2 + 0.8 * u[..., d:])  # (B, num, 1)
    delta = (direction * radius * width).to(c)  # (B, num, L)
    out = c[:, None] + delta
    outside = (out < concept.low) | (out > concept.high)
    out = torch.where(outside, c[:, None] - delta, out)  # mirror at an edge
    return out.clamp(concept.low, concept.high)


def wrong_concept_values(concept: Concept, c: Tensor, num: int, *, near: int = 0,
                         near_scale: float = 0.1, generator=None) -> Tensor:
    """Wrong concept values for each row of ``c (B, L)``, shape ``(B, M, L)``.

    A single categorical concept gets all its other categories (M = dim - 1, so the
    cross-entropy is exact classification); continuous and joint concepts get ``num`` values
    drawn uniformly from the concept's range (a draw may fall near the true value: the term
    then asks for little, it is still unbiased), followed by ``near`` values close to the true
    one (:func:`near_values` with ``near_scale``): hard negatives that make the ranking fine
    near the answer, which is what MAP refinement reads (M = num + near).
    """
    b = c.shape[0]
    if concept.is_categorical:
        eye = torch.eye(concept.dim, device=c.device, dtype=c.dtype)
        others = eye[None].expand(b, -1, -1)  # (B, K, K)
        keep = c.argmax(1)[:, None] != torch.arange(concept.dim, device=c.device)[None]
        return others[keep].reshape(b, concept.dim - 1, concept.dim)
    wrong = _random_values(concept, (b, num), generator, c.device).to(c)  # (B, num, L)
    if near:
        close = near_values(concept, c, near, near_scale, generator=generator)  # (B, near, L)
        wrong = torch.cat([wrong, close], dim=1)
    return wrong

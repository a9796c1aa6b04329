"""Calibrated composition: put independently trained energies on one scale.

Concept EBMs trained separately end up with arbitrary energy scales (contrastive divergence
fixes energies only up to the L2 penalty). A disjunction at temperature 1 then acts like a
conjunction when energies are tiny, a negation with alpha = 0.01 does nothing or everything,
and a conjunction lets the larger-scale concept win.

We measure each model's *energy gap* on real data,

    gap = mean over (x, c, c') of E(x|c') - E(x|c),

x a real image with concept value c and c' a random other value: how many energy units the
model puts between a right and a wrong concept. Dividing by it puts every model in the same
units ("one unit = one typical wrong concept"). :func:`calibrated_models` wraps each model so
that ``E_i * ref / gap_i`` is used, with ``ref`` the geometric mean of the gaps, so the
sampler step size tuned for the raw models stays right; temperatures of disjunctions are then
given in units of ``ref`` (:func:`conceptebm.compose.build`'s ``scales=`` argument).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from conceptebm.energies import ConditionalEnergy

__all__ = ["energy_gap", "random_other_values", "reference_scale", "composition_scales",
           "fit_classifier_temperature"]


def random_other_values(concept, c: Tensor, generator=None, *,
                        values: Tensor | None = None) -> Tensor:
    """For encoded values ``c (B, dim)``, draw a random *other* value per row.

    ``values``: for a categorical concept, the indices to draw from (default: all of the
    concept's values); every row's own value must be among them. A model trained on data that
    holds only some values (a continual stage's cubes and spheres of a three-shape concept) is
    then measured against the values it was taught, not against ones it never saw.
    """
    b = c.shape[0]
    if concept.is_categorical:
        true = c.argmax(-1)  # (B,)
        if values is None or len(values) == concept.dim:
            shift = torch.randint(1, concept.dim, (b,), generator=generator, device=c.device)
            return torch.nn.functional.one_hot((true + shift) % concept.dim, concept.dim).to(c)
        values = torch.as_tensor(values, device=c.device).unique()  # sorted
        k = len(values)
        slot = torch.searchsorted(values, true)  # each row's place among the values
        if k < 2 or not (values[slot.clamp(max=k - 1)] == true).all():
            raise ValueError(f"{concept.name}: need at least two values, among them every "
                             f"row's own; got values {values.tolist()}")
        shift = torch.randint(1, k, (b,), generator=generator, device=c.device)
        return torch.nn.functional.one_hot(values[(slot + shift) % k], concept.dim).to(c)
    u = torch.rand((b, concept.dim), generator=generator, device=c.device, dtype=c.dtype)
    return concept.low + (concept.high - concept.low) * u


@torch.no_grad()
def energy_gap(model: ConditionalEnergy, images: Tensor, labels, *, negatives: int = 4,
               generator: torch.Generator | None = None, batch_size: int = 256) -> float:
    """Mean ``E(x|c') - E(x|c)`` over real ``images (N, C, H, W)`` with labels ``c`` (raw or
    encoded) and ``negatives`` random other values ``c'`` per image. Must be > 0 for a model
    that prefers the right concept; a non-positive gap raises (the model cannot be calibrated).
    For a categorical concept ``c'`` is drawn among the values the labels hold: a value absent
    from the data says nothing about the model's scale (a model never shown a cylinder may put
    it anywhere), and drawing it inflated a continual shape EBM's gap 3x.
    """
    concept = model.concept
    c = concept.encode(labels, device=images.device, dtype=images.dtype)
    if c.dim() != 2 or c.shape[0] != images.shape[0]:
        raise ValueError(f"need one label per image: {images.shape[0]} images, labels "
                         f"encoded to {tuple(c.shape)}")
    if negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {negatives}")
    values = c.argmax(-1).unique() if concept.is_categorical else None
    gaps = []
    for start in range(0, images.shape[0], batch_size):
        x, ci = images[start:start + batch_size], c[start:start + batch_size]
        e_true = model(x, ci)  # (b,)
        for _ in range(negatives):
            e_wrong = model(x, random_other_values(concept, ci, generator, values=values))
            gaps.append(e_wrong - e_true)
    gap = torch.cat(gaps)
    if not torch.isfinite(gap).all():
        raise FloatingPointError(f"{concept.name} model returned non-finite energies")
    value = float(gap.mean())
    if value <= 0:
        raise ValueError(
            f"{concept.name} model gives wrong concept values lower energy than right ones on "
            f"average (gap {value:.3g}); it cannot be calibrated. Is it trained on this data?")
    return value


def fit_classifier_temperature(model: ConditionalEnergy, images: Tensor, labels, *,
                    grid: int = 9) -> float:
    """The temperature T that makes ``softmax(-E(x | v) / T)`` over a concept's values the
    best classifier of ``labels`` on real ``images`` (maximum likelihood; the negative
    log-likelihood is convex in 1 / T, so the optimum is unique). What
    :class:`~conceptebm.energies.NotAny` and :class:`~conceptebm.energies.NotNear` read their
    probabilities with. A continuous concept is classified over ``grid`` points per axis
    (:func:`~conceptebm.energies.ops.candidate_grid`, as ``NotNear`` reads it), each label
    counting as its nearest point.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> class Match(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return -(x * c).sum(-1)
        >>> color = Match(Concept.categorical("color", ["red", "green"]))
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.randint(0, 2, (20000,), generator=g)
        >>> # logits -E / T with T = 0.5: x holds E = -0.5 * logit for each value
        >>> logits = torch.randn(20000, 2, generator=g) + 1.5 * torch.nn.functional.one_hot(y)
        >>> y = torch.multinomial(logits.softmax(-1), 1, generator=g)[:, 0]  # from softmax
        >>> t = fit_classifier_temperature(color, 0.5 * logits, y)
        >>> abs(t - 0.5) < 0.02  # Monte Carlo error ~1 %
        True
    """
    from conceptebm.energies.ops import candidate_grid
    from conceptebm.infer.optimize import map_categorical

    concept = model.concept
    if concept.is_categorical:
        y = torch.as_tensor(concept.encode(labels)).reshape(len(images), -1).argmax(-1)
        e = map_categorical(model, images, event_dim=images.dim() - 1).energies.double()
    else:
        codes = candidate_grid(concept, grid).to(images)  # (K, dim)
        c = concept.encode(labels, device=images.device, dtype=images.dtype)
        y = torch.cdist(c.reshape(len(images), -1), codes).argmin(-1)  # nearest candidate
        with torch.no_grad():
            e = torch.cat([model.energy_from_features(
                model.features(x), codes.expand(len(x), -1, -1))
                for x in images.split(64)]).double()  # (N, K)
    if not torch.isfinite(e).all():
        raise FloatingPointError(f"{concept.name} model returned non-finite energies")

    def nll(beta: float) -> float:  # convex in beta = 1 / T
        return float(torch.nn.functional.cross_entropy(-e * beta, y.to(e.device)))

    spread = float(e.std()) or 1.0
    lo, hi = 0.0, 1e3 / spread  # golden-section search on beta
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(a) <= nll(b):
            hi = b
        else:
            lo = a
    beta = (lo + hi) / 2
    if beta <= 0 or nll(beta) >= nll(0.0):
        raise ValueError(f"{concept.name} model does not classify its labels better than chance "
                         "on these images; it has no temperature to fit")
    return 1.0 / beta


def reference_scale(scales: Mapping[str, float], names) -> float:
    """Geometric mean of the gaps of the named models (the common unit of a composition)."""
    vals = [scales[n] for n in names]
    if not vals or any(not (math.isfinite(v) and v > 0) for v in vals):
        raise ValueError(f"energy scales must be positive numbers, got {dict(scales)}")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def composition_scales(gaps: Mapping[str, float], power: float | None = None) -> dict[str, float]:
    """The ``scales`` that :func:`conceptebm.compose.build` uses: ``gap ** power``.

    ``power = 1`` equalises the gaps, ``0`` composes the raw energies; the default is
    :data:`conceptebm.compose.defaults.CALIBRATION_POWER`, chosen by measurement.
    """
    from conceptebm.compose.defaults import CALIBRATION_POWER

    power = CALIBRATION_POWER if power is None else float(power)
    if not (math.isfinite(power) and power >= 0):
        raise ValueError(f"calibration power must be a finite number >= 0, got {power}")
    return {k: float(v) ** power for k, v in gaps.items()}


#: Old spellings: ``fit_temperature`` meant two things (this classifier temperature, and the
#: posterior temperature of :func:`conceptebm.scenes.fit_temperature`); it warns until 0.3.
MOVED = {"fit_temperature": "conceptebm.compose.calibrate:fit_classifier_temperature"}


def __getattr__(name: str):
    from conceptebm.compat import moved_attribute

    return moved_attribute(__name__, name, MOVED)

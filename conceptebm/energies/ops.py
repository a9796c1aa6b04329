"""Logical operators over energies (paper section 3.2). Each operator is itself an Energy.

* ``And(a, b, ...)`` / ``a & b``: conjunction, the sum of energies (product of experts, eq. 4).
* ``Or(a, b, ..., temperature=T)`` / ``a | b``: disjunction, ``-T * logsumexp(-E_i / T)``
  (eq. 7; T = 1 is the paper's formula, the official code used T = 0.01).
* ``Not(a, alpha)`` / ``~a``: negation, energy ``-alpha * E_a``; only meaningful grounded by
  another concept, ``b & ~a`` = ``E_b - alpha * E_a`` (eq. 9, alpha = 0.01 in the paper).
* ``Scale(a, t)`` / ``t * a``: a weight or inverse temperature, ``t * E_a`` with t > 0.
* ``NotAny(cond, values, temperature)``: a categorical concept's value is none of ``values``,
  read through the classifier the conditional energy defines (``p(v | x)`` a softmax of
  ``-E(x | v) / T``): energy ``-T * log(1 - sum_v p(v | x))``, bounded below by 0, so leaving
  the data earns nothing (``Not``'s ``-alpha * E`` keeps falling there). ``closed_world``:
  one of the values left instead (their disjunction), grounded.
* ``NotNear(cond, value, temperature, radius=)``: the same for a continuous concept, over a
  grid of candidate values: not within ``radius`` of ``value``.

Operators nest to any depth; samplers refuse expressions that are not grounded
(:attr:`Energy.is_grounded`), such as a bare negation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from conceptebm.energies.base import ConditionalEnergy, Energy

__all__ = ["And", "Or", "Not", "NotAny", "NotNear", "Scale", "ScaledConditional", "StepMatched",
           "require_grounded", "split_labels", "conditioned_energy"]

# Binding strength for the repr, as in the expression language: ~ > * > & > |.
_PREC = {"Or": 1, "And": 2, "Scale": 3, "Not": 4}


def _wrap(child: Energy, parent_prec: int) -> str:
    text = repr(child)
    prec = _PREC.get(type(child).__name__, 5)
    return f"({text})" if prec < parent_prec else text


def _check_terms(op: str, terms: Sequence[Energy]) -> list[Energy]:
    if len(terms) == 0:
        raise ValueError(f"{op}() needs at least one energy, got none")
    for t in terms:
        if not isinstance(t, Energy):
            hint = " (bind a ConditionalEnergy with .given(value) first)" if isinstance(
                t, nn.Module) else ""
            raise TypeError(f"{op}() terms must be Energy instances, got {type(t).__name__}{hint}")
    return list(terms)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


class And(Energy):
    """Conjunction: ``E(x) = sum_i E_i(x)`` (eq. 4). Grounded if any term is."""

    def __init__(self, *terms: Energy):
        super().__init__()
        self.terms = nn.ModuleList(_check_terms("And", terms))

    @property
    def is_grounded(self) -> bool:  # type: ignore[override]
        return any(t.is_grounded for t in self.terms)

    def energy(self, x: Tensor) -> Tensor:
        total = self.terms[0](x)
        for t in self.terms[1:]:
            total = total + t(x)
        return total

    def __and__(self, other: Energy) -> Energy:
        # a & b & c builds one flat And, which reads better and costs the same.
        return And(*self.terms, other)

    def __repr__(self) -> str:
        return " & ".join(_wrap(t, _PREC["And"] + 1) for t in self.terms)


class Or(Energy):
    """Disjunction: ``E(x) = -T * logsumexp_i(-E_i(x) / T - log Z_i)`` (eq. 6-7).

    Args:
        *terms: the alternatives.
        temperature: T > 0. With T = 1 and no ``log_partitions`` this is eq. 7. Small T makes
            the disjunction a hard minimum, which is what small-scale trained energies need.
        log_partitions: optional per-term log Z_i (eq. 6), shape ``(K,)`` or ``(K, batch)``
            (one offset per chain): when the concepts' partition functions differ, these
            offsets restore equal mass per alternative. ``None`` assumes equal Z_i, as the
            paper does. See :func:`conceptebm.compose.generate.tie_disjunctions`.
    """

    def __init__(self, *terms: Energy, temperature: float = 1.0,
                 log_partitions: Sequence[float] | Tensor | None = None):
        super().__init__()
        self.terms = nn.ModuleList(_check_terms("Or", terms))
        self.temperature = _positive("Or temperature", temperature)
        if log_partitions is not None:
            lp = torch.as_tensor(log_partitions, dtype=torch.float64)
            lp = lp.reshape(-1) if lp.dim() < 2 else lp
            if lp.dim() > 2 or lp.shape[0] != len(self.terms):
                raise ValueError(
                    f"Or: log_partitions must have shape ({len(self.terms)},) or "
                    f"({len(self.terms)}, batch) for {len(self.terms)} terms, got "
                    f"{tuple(lp.shape)}"
                )
            if not torch.isfinite(lp).all():
                raise ValueError(f"Or: log_partitions must be finite, got {lp.tolist()}")
            self.register_buffer("log_partitions", lp, persistent=False)
        else:
            self.log_partitions = None

    @property
    def is_grounded(self) -> bool:  # type: ignore[override]
        return all(t.is_grounded for t in self.terms)

    def energy(self, x: Tensor) -> Tensor:
        neg = torch.stack([-t(x) for t in self.terms], dim=0) / self.temperature  # (K, batch)
        if self.log_partitions is not None:
            lp = self.log_partitions.to(neg)  # (K,) shared or (K, batch) per chain
            neg = neg - (lp[:, None] if lp.dim() == 1 else lp)
        return -self.temperature * torch.logsumexp(neg, dim=0)

    def __or__(self, other: Energy) -> Energy:
        if self.temperature == 1.0 and self.log_partitions is None:
            return Or(*self.terms, other)
        return Or(self, other)

    def __repr__(self) -> str:
        # Conjunctions inside a disjunction get parentheses although & binds tighter: it reads
        # unambiguously, as in the paper's (Pos1 & Col1) | (Pos2 & Col2).
        body = " | ".join(_wrap(t, _PREC["And"] + 1) for t in self.terms)
        if self.temperature == 1.0 and self.log_partitions is None:
            return body
        opts = [] if self.temperature == 1.0 else [f"temperature={self.temperature:g}"]
        if self.log_partitions is not None:
            lp = self.log_partitions
            opts.append("log_partitions=[" + ", ".join(f"{v:.3g}" for v in lp.tolist()) + "]"
                        if lp.dim() == 1 else f"log_partitions=<per chain {tuple(lp.shape)}>")
        return f"Or({body}, {', '.join(opts)})"


class Not(Energy):
    """Negation: ``E(x) = -alpha * E_a(x)`` (eq. 9-10).

    Not integrable on its own: ground it with another concept, ``b & ~a``. ``alpha = 0``
    ignores the negated concept; the paper uses 0.01.
    """

    is_grounded = False

    def __init__(self, term: Energy, alpha: float = 0.01):
        super().__init__()
        (self.term,) = _check_terms("Not", [term])
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(
                f"Not alpha must be a finite number >= 0, got {alpha}; it weights the "
                "negated energy (the paper uses 0.01)"
            )
        self.alpha = alpha

    def energy(self, x: Tensor) -> Tensor:
        return -self.alpha * self.term(x)

    def __invert__(self) -> Energy:
        # ~~a is not a; a double negation at weight alpha^2 would be surprising. Be explicit.
        raise ValueError("double negation ~~a is not defined; use a itself")

    def __repr__(self) -> str:
        inner = _wrap(self.term, _PREC["Not"])
        return f"~{inner}" if self.alpha == 0.01 else f"Not({self.term!r}, alpha={self.alpha:g})"


class _ClassifierNegation(Energy):
    """Shared by :class:`NotAny` and :class:`NotNear`: a conditional energy read as a
    classifier over ``K`` candidate values, ``p(v | x) = softmax_v(-E(x | v) / T)``, and a
    ``(1 or batch, K)`` mask of the values a chain excludes.

    Open world (default): ``-T * log p(value not excluded | x)``, zero when the classifier
    rules the excluded values out, bounded below, so not grounded. Closed world: the concept
    takes one of the candidate values, so "not S" is the disjunction of the values left,
    ``-T * logsumexp_{v not in S}(-E(x | v) / T)``: the open-world energy plus the concept's
    marginal energy (the image must show *some* value); grounded.
    """

    def __init__(self, cond: ConditionalEnergy, codes: Tensor, mask: Tensor,
                 temperature: float, closed_world: bool):
        super().__init__()
        self.cond, self.temperature = cond, _positive(f"{type(self).__name__} temperature",
                                                      temperature)
        self.closed_world = bool(closed_world)
        if mask.all(dim=1).any() or not mask.any(dim=1).all():
            raise ValueError(f"{type(self).__name__} must exclude at least one and not all of "
                             f"{cond.concept.name}'s {mask.shape[1]} candidate values; got "
                             f"{sorted(set(mask.sum(dim=1).tolist()))} excluded")
        self.register_buffer("mask", mask, persistent=False)  # (1 or batch, K)
        self.register_buffer("codes", codes, persistent=False)  # (K, dim): encoded once

    @property
    def is_grounded(self) -> bool:  # type: ignore[override]
        return self.closed_world

    def candidate_energies(self, x: Tensor) -> Tensor:
        """``E(x | v)`` for every candidate value: ``(B, K)``."""
        b, codes = x.shape[0], self.codes.to(x)
        if type(self.cond).features is ConditionalEnergy.features:  # early conditioning:
            # one pass per value (looping beats a K-times larger batch on CPU)
            return torch.stack([self.cond(x, code.expand(b, -1)) for code in codes], dim=1)
        f = self.cond.features(x)  # a late net's trunk once, its head per value
        return self.cond.energy_from_features(f, codes.expand(b, -1, -1))

    def energy(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        logits = -self.candidate_energies(x) / self.temperature  # (B, K)
        if not self.closed_world:
            logits = torch.log_softmax(logits, dim=1)
        kept = logits.masked_fill(self.mask.to(x.device).expand(b, -1), float("-inf"))
        return -self.temperature * torch.logsumexp(kept, dim=1)


class NotAny(_ClassifierNegation):
    """The categorical concept of ``cond`` takes none of ``values``, through its classifier.

    A conditional energy over K mutually exclusive values defines ``p(v | x) =
    softmax_v(-E(x | v) / T)``. ``NotAny`` is ``-T * log p(value not in S | x) = -T * log(1 -
    sum_{v in S} p(v | x))``: zero when the classifier rules S out, large when it reads a value
    of S. Unlike ``Not`` (``-alpha * E``, which rewards images unlike *every* value, so a
    sampler leaves the data), it is bounded below; and several excluded values of one concept
    enter together, as the probability that none of them holds (``NotAny(color, 7 colours)``
    leaves the eighth). ``T``: the classifier's temperature, fitted on labelled images by
    :func:`conceptebm.compose.calibrate.fit_classifier_temperature`. Not grounded: AND it with
    another concept.

    ``closed_world=True`` reads "none of S" as "one of the values left" (the concept takes one
    of its K values): ``-T * logsumexp_{v not in S}(-E(x | v) / T)``, the disjunction (eq. 7
    at temperature T) of the values left, which is grounded; with one value left it is that
    value's energy.

    Args:
        cond: a :class:`ConditionalEnergy` over a categorical concept.
        values: the excluded values (names or indices), the same for every chain, or a
            ``(batch, K)`` bool tensor, True where a chain excludes that value.
        temperature: T > 0, in the units of ``cond``'s energies.
        closed_world: see above.

    Example:
        >>> import torch
        >>> from conceptebm.concepts import Concept
        >>> class Match(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return -(x * c).sum(-1)
        >>> color = Match(Concept.categorical("color", ["red", "green", "blue"]))
        >>> x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # reads red, blue
        >>> NotAny(color, ["red", "green"], temperature=1.0)(x).round(decimals=3)
        tensor([2.2400, 0.5510])
        >>> NotAny(color, ["red", "green"], 1.0, closed_world=True)(x)  # = E(x | blue)
        tensor([-0., -1.])
    """

    def __init__(self, cond: ConditionalEnergy, values, temperature: float, *,
                 closed_world: bool = False):
        concept = getattr(cond, "concept", None)
        if not isinstance(cond, ConditionalEnergy) or not concept.is_categorical:
            raise ValueError(f"NotAny needs a ConditionalEnergy over a categorical concept, "
                             f"got {cond!r}")
        k = len(concept.values)
        if isinstance(values, Tensor):
            mask = values.to(torch.bool)
            if mask.dim() != 2 or mask.shape[1] != k:
                raise ValueError(f"NotAny values as a tensor must be (batch, {k}) bools, got "
                                 f"shape {tuple(values.shape)}")
        else:
            index = [concept.index(v) for v in values]
            mask = torch.zeros(1, k, dtype=torch.bool)
            mask[0, index] = True
        codes = concept.encode(torch.arange(k)).reshape(k, -1)  # (K, K)
        super().__init__(cond, codes, mask, temperature, closed_world)

    def __repr__(self) -> str:
        world = ", closed world" if self.closed_world else ""
        k = int(self.mask[0].sum())
        return f"NotAny({self.cond.concept.name}, {k} value{'s' * (k != 1)}{world})"


def candidate_grid(concept, points: int) -> Tensor:
    """``points ** dim`` values on a regular grid over a continuous concept's box:
    ``(points ** dim, dim)``, end points included."""
    if points < 2:
        raise ValueError(f"a candidate grid needs >= 2 points per axis, got {points}")
    axis = torch.linspace(concept.low, concept.high, points)
    mesh = torch.meshgrid(*([axis] * concept.dim), indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


class NotNear(_ClassifierNegation):
    """A continuous concept of ``cond`` is not within ``radius`` of any of ``values``, through
    its classifier over a grid of candidate values.

    The continuous counterpart of :class:`NotAny`: ``p(v | x) = softmax_v(-E(x | v) / T)``
    over ``grid ** dim`` candidates spanning the concept's box, the excluded ones within
    ``radius`` (Euclidean) of one of ``values``. Open world: ``-T * log p(v excluded | x)``;
    ``closed_world=True``: the soft minimum (eq. 7 at temperature T) of the energies of the
    candidates left ("somewhere else"), grounded. Costs ``grid ** dim`` evaluations of
    ``cond`` per call (one trunk pass for a late net).

    Args:
        cond: a :class:`ConditionalEnergy` over a continuous concept.
        values: the values to stay away from, a sequence of values each ``(dim,)`` or one
            per chain ``(batch, dim)``.
        temperature: T > 0, in the units of ``cond``'s energies
            (:func:`conceptebm.compose.calibrate.fit_classifier_temperature`).
        radius: ``None``: the concept's main accuracy tolerance (0.4 for a position on
            [-1, 1]^2).
        grid: candidate points per axis.
        closed_world: see above.

    Example:
        >>> import torch
        >>> from conceptebm.concepts import Concept
        >>> class Dist(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> pos = Dist(Concept.continuous("position", dim=2))
        >>> near = NotNear(pos, [(0.0, 0.0)], temperature=0.1, grid=5)
        >>> x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # at the value, far from it
        >>> near(x) > 0.1, near(x) < 1e-3
        (tensor([ True, False]), tensor([False,  True]))
    """

    def __init__(self, cond: ConditionalEnergy, values, temperature: float, *,
                 radius: float | None = None, grid: int = 9, closed_world: bool = False):
        concept = getattr(cond, "concept", None)
        if not isinstance(cond, ConditionalEnergy) or concept.is_categorical:
            raise ValueError(f"NotNear needs a ConditionalEnergy over a continuous concept, "
                             f"got {cond!r}")
        if radius is None:
            if not concept.accuracy_tolerances:
                raise ValueError(f"NotNear: {concept.name!r} declares no tolerance; "
                                 "give a radius")
            radius = concept.accuracy_tolerances[0]
        radius = _positive("NotNear radius", radius)
        codes = candidate_grid(concept, int(grid))  # (K, dim)
        if isinstance(values, Tensor) or not len(values):
            raise ValueError("NotNear values must be a non-empty sequence of values, e.g. "
                             "[(0.3, -0.2)]")
        mask = None
        for value in values:
            center = concept.encode(value).reshape(-1, concept.dim)  # (1 or batch, dim)
            near = torch.cdist(center.to(codes), codes) <= radius  # (1 or batch, K)
            mask = near if mask is None else mask | near
        super().__init__(cond, codes, mask, temperature, closed_world)
        self.radius = radius

    def __repr__(self) -> str:
        world = ", closed world" if self.closed_world else ""
        return f"NotNear({self.cond.concept.name}, r={self.radius:g}{world})"


class Scale(Energy):
    """Weight or inverse temperature: ``E(x) = t * E_a(x)`` with t > 0.

    A negative weight would be an ungrounded negation in disguise: use :class:`Not`.
    """

    def __init__(self, term: Energy, t: float):
        super().__init__()
        (self.term,) = _check_terms("Scale", [term])
        t = float(t)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(
                f"Scale weight must be a finite number > 0, got {t}; for a negative weight "
                "use a grounded negation, b & Not(a, alpha)"
            )
        self.t = t

    @property
    def is_grounded(self) -> bool:  # type: ignore[override]
        return self.term.is_grounded

    def energy(self, x: Tensor) -> Tensor:
        return self.t * self.term(x)

    def __repr__(self) -> str:
        return f"{self.t:.3g}*{_wrap(self.term, _PREC['Scale'] + 1)}"


class ScaledConditional(ConditionalEnergy):
    """``factor * E(x|c)``: a conditional energy with a fixed positive weight, keeping the
    base's concept, sampler settings (unless ``sampler`` is given) and image attributes. A term
    of a weighted conjunction, e.g. the continual experiment's calibrated one.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> class Sq(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> half = ScaledConditional(Sq(Concept.continuous("p", dim=1)), 0.5)
        >>> float(half(torch.full((1, 1), 2.0), torch.zeros(1, 1)))
        2.0
    """

    def __init__(self, base: ConditionalEnergy, factor: float, *, sampler=None):
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"ScaledConditional factor must be a finite number > 0, got "
                             f"{factor}; a negative weight is a negation: use Not")
        super().__init__(base.concept, sampler=sampler if sampler is not None else base.sampler)
        self.base, self.factor = base, factor
        self.image_size = getattr(base, "image_size", None)
        self.channels = getattr(base, "channels", 3)

    def energy(self, x: Tensor, c: Tensor) -> Tensor:
        return self.factor * self.base(x, c)


class StepMatched(ScaledConditional):
    """``factor * E(x|c)`` of a model trained with another Langevin step size.

    One chain samples a composition with one step size. A model trained with step ``s`` (the
    shipped shape model: 1) would be moved ``100 / s`` times too far by the others' step 100;
    scaling its energy by ``s / 100`` makes the shared step move it as its own sampler would.
    The step ``s`` is the base's own (``base.sampler.step_size``); the wrapper's settings are
    the base's with ``step_size = shared_step``. Composed generation uses it, and so does the
    continual-learning training chain for frozen EBMs trained with another step.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> from conceptebm.infer import SamplerSettings
        >>> class Sq(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> steep = Sq(Concept.continuous("p", dim=1), sampler=SamplerSettings(step_size=1.0))
        >>> m = StepMatched(steep, 100.0)   # in a chain of step 100
        >>> m.factor, round(float(m(torch.ones(1, 1), torch.zeros(1, 1))), 6), m.sampler.step_size
        (0.01, 0.01, 100.0)
    """

    def __init__(self, base: ConditionalEnergy, shared_step: float):
        if base.sampler is None:
            raise ValueError(f"StepMatched: the {base.concept.name} model records no sampler "
                             "settings, so its step size is unknown; build it with "
                             "sampler=SamplerSettings(step_size=...)")
        super().__init__(base, base.sampler.step_size / shared_step,
                         sampler=base.sampler.replace(step_size=shared_step))


def require_grounded(energy: Energy) -> None:
    """Raise ``ValueError`` if ``energy`` cannot be sampled because a negation is not grounded."""
    if not isinstance(energy, Energy):
        if isinstance(energy, nn.Module) and hasattr(energy, "given"):
            raise TypeError(
                f"{energy!r} is conditional: bind a concept value first, e.g. "
                "model.given(value)"
            )
        return  # plain callables are the user's responsibility
    if not energy.is_grounded:
        raise ValueError(
            f"cannot sample {energy!r}: a negation is not a distribution on its own (paper "
            "eq. 9). Ground it with a positive concept, e.g. `position.given((0.3, -0.2)) & "
            "~color.given('red')`, so the expression has a term that is not negated."
        )


def split_labels(c: Tensor, energies: Sequence[ConditionalEnergy]) -> list[Tensor]:
    """Split concatenated encodings ``(B, sum of dims)`` into one ``(B, dim)`` per energy."""
    dims = [e.concept.dim for e in energies]
    if c.shape[-1] != sum(dims):
        raise ValueError(f"labels of width {c.shape[-1]} do not fit the energies' concept "
                         f"dims {dims}")
    return list(torch.split(c, dims, dim=-1))


def conditioned_energy(net: ConditionalEnergy, c: Tensor,
                       frozen: Sequence[ConditionalEnergy] = ()) -> Energy:
    """``net`` bound to ``c``'s first columns, AND the ``frozen`` energies bound to the rest.

    The energy a continual-learning sampler runs on (training and evaluation alike): the new
    concept's EBM and every earlier, frozen one, each given its own slice of the labels.
    """
    parts = split_labels(c, [net, *frozen])
    bound = [e.given(ci) for e, ci in zip([net, *frozen], parts, strict=True)]
    return bound[0] if len(bound) == 1 else And(*bound)

"""A small expression language over concept atoms.

Grammar (precedence from loosest to tightest: ``|``, ``&``, ``*``/``~``):

    expr    := conj ('|' conj)*
    conj    := unary ('&' unary)*
    unary   := '~' unary | NUMBER '*' unary | '(' expr ')' | atom
    atom    := NAME '=' value
    value   := NAME | NUMBER | '(' NUMBER (',' NUMBER)* ')'

Limits: at most :data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` nested ``(``, ``~`` or
``w*``, and weights in ``(0, MAX_WEIGHT]``; beyond them the expression is refused with the
limit (deeper nesting would exhaust Python's recursion, larger weights swamp the sampler).

Examples::

    position=(0.3,-0.2) & color=red & ~shape=cube
    (position=(-0.5,-0.5) & color=red) | (position=(0.5,0.5) & color=blue)
    0.5*color=red & size=0.35

:func:`parse` returns a small syntax tree (no models needed); :func:`build` turns it into an
:class:`~conceptebm.energies.Energy` given the conditional energies by concept name. Every error
is an :class:`ExpressionError` (a ``ValueError``) whose message shows the text with a caret
under the offending character.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from conceptebm.compose.calibrate import reference_scale
from conceptebm.energies import And, ConditionalEnergy, Energy, Not, NotAny, NotNear, Or, Scale

__all__ = ["ExpressionError", "Atom", "Conj", "Disj", "Neg", "Weighted", "parse", "build",
           "compile_expression", "MAX_LENGTH", "MAX_DEPTH", "MAX_WEIGHT"]

MAX_LENGTH = 10_000  # characters: far beyond any composition a sampler can satisfy
MAX_DEPTH = 64  # nested '(', '~' and 'w*' (each costs a few Python frames when parsed/built)
MAX_WEIGHT = 100.0  # a weight scales a calibrated energy; 1e30*... samples saturated noise


class ExpressionError(ValueError):
    """A parse or resolution error at character ``pos`` of ``text``."""

    def __init__(self, message: str, text: str, pos: int):
        self.message, self.text, self.pos = message, text, pos
        lo = max(0, min(pos - 30, len(text) - 60))  # a window of long texts around pos
        shown = ("..." if lo else "") + text[lo:lo + 60] + ("..." if len(text) > lo + 60 else "")
        caret = " " * (pos - lo + (3 if lo else 0)) + "^"
        super().__init__(f"{message} (at character {pos + 1})\n  {shown}\n  {caret}")


# ----------------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Atom:
    name: str
    value: str | float | tuple[float, ...]
    pos: int  # where the concept name starts, for error messages


@dataclass(frozen=True)
class Conj:
    terms: tuple


@dataclass(frozen=True)
class Disj:
    terms: tuple


@dataclass(frozen=True)
class Neg:
    term: object


@dataclass(frozen=True)
class Weighted:
    weight: float
    term: object


# ----------------------------------------------------------------------------- tokenizer
_TOKEN = re.compile(
    r"\s*(?:(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)"
    r"|(?P<op>[&|~*=(),]))"
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ExpressionError(f"unexpected character {text[i]!r}", text, i)
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        i = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, pos: int | None = None) -> ExpressionError:
        return ExpressionError(message, self.text, self.peek()[2] if pos is None else pos)

    def expect(self, op: str) -> int:
        kind, val, pos = self.take()
        if (kind, val) != ("op", op):
            found = "end of input" if kind == "end" else repr(val)
            raise ExpressionError(f"expected {op!r}, found {found}", self.text, pos)
        return pos

    def parse(self):
        if self.peek()[0] == "end":
            raise self.error("empty expression: write e.g. color=red & position=(0.3,-0.2)")
        node = self.disj()
        kind, val, pos = self.peek()
        if kind != "end":
            raise ExpressionError(f"unexpected {val!r}: expected '&', '|' or the end",
                                  self.text, pos)
        return node

    def disj(self):
        terms = [self.conj()]
        while self.peek()[:2] == ("op", "|"):
            self.take()
            terms.append(self.conj())
        return terms[0] if len(terms) == 1 else Disj(tuple(terms))

    def conj(self):
        terms = [self.unary()]
        while self.peek()[:2] == ("op", "&"):
            self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else Conj(tuple(terms))

    def unary(self):
        kind, val, pos = self.peek()
        if kind == "op" and val in "~(" or kind == "num":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested more than {MAX_DEPTH} deep "
                                      "('(', '~', 'w*'); write it flatter", self.text, pos)
            try:
                return self._unary(kind, val, pos)
            finally:
                self.depth -= 1
        return self._unary(kind, val, pos)

    def _unary(self, kind: str, val: str, pos: int):
        if (kind, val) == ("op", "~"):
            self.take()
            return Neg(self.unary())
        if (kind, val) == ("op", "("):
            self.take()
            node = self.disj()
            self.expect(")")
            return node
        if kind == "num":
            self.take()
            weight = float(val)
            if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
                raise ExpressionError(f"weight must be a number in (0, {MAX_WEIGHT:g}], got "
                                      f"{val} (for a negative weight use ~)", self.text, pos)
            self.expect("*")
            return Weighted(weight, self.unary())
        if kind == "name":
            return self.atom()
        found = "end of input" if kind == "end" else repr(val)
        raise self.error(f"expected a concept (name=value), '~', '(' or a weight, found {found}")

    def atom(self) -> Atom:
        _, name, pos = self.take()
        self.expect("=")
        kind, val, vpos = self.peek()
        if kind == "name":
            self.take()
            return Atom(name, val, pos)
        if kind == "num":
            self.take()
            return Atom(name, float(val), pos)
        if (kind, val) == ("op", "("):
            self.take()
            nums = [self.number()]
            while self.peek()[:2] == ("op", ","):
                self.take()
                nums.append(self.number())
            self.expect(")")
            return Atom(name, tuple(nums), pos)
        found = "end of input" if kind == "end" else repr(val)
        raise ExpressionError(f"expected a value for {name!r} (a name, a number or "
                              f"(x, y)), found {found}", self.text, vpos)

    def number(self) -> float:
        kind, val, pos = self.take()
        if kind != "num":
            found = "end of input" if kind == "end" else repr(val)
            raise ExpressionError(f"expected a number, found {found}", self.text, pos)
        return float(val)


def parse(text: str):
    """Parse an expression into a tree of :class:`Atom`, :class:`Conj`, :class:`Disj`,
    :class:`Neg` and :class:`Weighted`. Raises :class:`ExpressionError`."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; the limit is "
                              f"{MAX_LENGTH}", text, MAX_LENGTH)
    return _Parser(text).parse()


# ----------------------------------------------------------------------------- building
def build(tree, models: Mapping[str, ConditionalEnergy] | Callable[[str], ConditionalEnergy],
          *, alpha: float = 0.01, temperature: float = 1.0,
          scales: Mapping[str, float] | None = None, text: str = "",
          temperatures: Mapping[str, float] | None = None,
          negation_weight: float = 1.0, closed_world: bool = False) -> Energy:
    """Turn a parsed tree into an Energy.

    Args:
        models: concept name -> ConditionalEnergy (or a function doing that lookup and raising
            ``KeyError`` for unknown names).
        alpha: weight of every negation (eq. 9).
        temperature: temperature of every disjunction (eq. 7); with ``scales`` it is in units of
            the composition's reference scale.
        scales: concept name -> energy gap (:func:`conceptebm.compose.calibrate.energy_gap`).
            Each concept energy is multiplied by ``ref / gap`` (ref = geometric mean of the gaps
            used), so all concepts weigh the same and the raw models' step size still fits.
            ``None`` composes the raw energies, exactly as the paper's equations.
        text: the source text, for error messages.
        temperatures: concept name -> classifier temperature
            (:func:`conceptebm.compose.calibrate.fit_classifier_temperature`). A negated atom
            of such a concept is read through the classifier its model defines instead of ``Not``:
            :class:`~conceptebm.energies.NotAny` for a categorical concept,
            :class:`~conceptebm.energies.NotNear` (not within the concept's tolerance, on
            its candidate grid) for a continuous one. The negated atoms of one concept ANDed
            together become one such term (none of those values), weighted
            ``negation_weight`` (times the concept's calibration weight); ``alpha`` then
            weighs only the other negations.
        closed_world: with ``temperatures``, read "not v" as "one of the other values" (the
            concept takes one of its values): the disjunction of the values left, grounded
            (``closed_world`` of ``NotAny`` / ``NotNear``). ``~color=red`` then asks for an
            object of another colour, and stands alone.
    """
    weights: dict[str, float] = {}
    if scales is not None:
        names = sorted(atom_names(tree))
        for name in names:
            if name not in scales:
                raise ExpressionError(f"no energy scale for concept {name!r}; calibrate it or "
                                      "compose uncalibrated", text, 0)
        ref = reference_scale(scales, names)
        weights = {n: ref / scales[n] for n in names}
        temperature = temperature * ref
    def lookup(atom: Atom) -> ConditionalEnergy:
        try:
            return models[atom.name] if isinstance(models, Mapping) else models(atom.name)
        except KeyError:
            known = ", ".join(sorted(models)) if isinstance(models, Mapping) else "?"
            raise ExpressionError(f"unknown concept {atom.name!r}; known concepts: {known}",
                                  text, atom.pos) from None

    temperatures = dict(temperatures or {})

    def not_any(atoms: list[Atom]) -> Energy:
        # one NotAny / NotNear for the atoms' values (per chain when they hold tensors)
        model = lookup(atoms[0])
        concept = model.concept
        if not concept.is_categorical:
            try:
                term = NotNear(model, [a.value for a in atoms], temperatures[concept.name],
                               closed_world=closed_world)
            except ValueError as err:
                raise ExpressionError(str(err), text, atoms[0].pos) from None
            w = weights.get(concept.name, 1.0) * negation_weight
            return term if w == 1.0 else Scale(term, w)
        mask = None
        for atom in atoms:
            try:
                index = concept.encode(atom.value).reshape(-1, len(concept.values)).argmax(-1)
            except ValueError as err:
                raise ExpressionError(str(err), text, atom.pos) from None
            hit = torch.nn.functional.one_hot(index, len(concept.values)).bool()  # (1|n, K)
            mask = hit if mask is None else mask | hit
        if mask.all(dim=1).any():
            raise ExpressionError(f"the negations exclude every value of {concept.name!r}: "
                                  "nothing is left", text, atoms[0].pos)
        term = NotAny(model, mask, temperatures[concept.name], closed_world=closed_world)
        w = weights.get(concept.name, 1.0) * negation_weight
        return term if w == 1.0 else Scale(term, w)

    def classifier_negation(node) -> bool:
        return (isinstance(node, Neg) and isinstance(node.term, Atom)
                and node.term.name in temperatures)

    def go(node) -> Energy:
        if isinstance(node, Atom):
            model = lookup(node)
            try:
                bound = model.given(node.value)
            except ValueError as err:
                raise ExpressionError(str(err), text, node.pos) from None
            w = weights.get(node.name, 1.0)
            return bound if w == 1.0 else Scale(bound, w)
        if isinstance(node, Conj):
            groups: dict[str, list[Atom]] = {}
            for t in node.terms:
                if classifier_negation(t):
                    groups.setdefault(t.term.name, []).append(t.term)
            terms = [go(t) for t in node.terms if not classifier_negation(t)]
            return And(*terms, *(not_any(atoms) for atoms in groups.values()))
        if isinstance(node, Disj):
            return Or(*(go(t) for t in node.terms), temperature=temperature)
        if isinstance(node, Neg):
            if isinstance(node.term, Neg):
                raise ExpressionError("double negation ~~ is not defined", text,
                                      _first_pos(node))
            if classifier_negation(node):
                return not_any([node.term])
            return Not(go(node.term), alpha=alpha)
        if isinstance(node, Weighted):
            return Scale(go(node.term), node.weight)
        raise TypeError(f"not an expression node: {node!r}")

    energy = go(tree)
    if not energy.is_grounded:
        raise ExpressionError(
            "the expression has no positive concept to ground its negation (paper eq. 9): "
            "add one, e.g. `position=(0.3,-0.2) & ~color=red`, or read negations as the "
            "values left (closed_world=True; conceptebm sample --negation complement)", text, 0)
    return energy


def atom_names(node) -> set[str]:
    """The concept names an expression tree mentions (its atoms' names)."""
    if isinstance(node, Atom):
        return {node.name}
    children = node.terms if isinstance(node, (Conj, Disj)) else (node.term,)
    return set().union(*(atom_names(c) for c in children))


def repeated_concepts(node) -> set[str]:
    """Concepts that one conjunction asks for more than once, positively: several objects.

    ``position=(0.5,0.5) & position=(-0.5,-0.5)`` asks for an object at each position (the
    paper's Figure 7); a negated or disjoined repeat does not.

    Example:
        >>> sorted(repeated_concepts(parse("position=(0.5,0.5) & position=(-0.5,0) & color=red")))
        ['position']
        >>> repeated_concepts(parse("position=(0.5,0.5) & ~position=(-0.5,0)"))
        set()
        >>> repeated_concepts(parse("(position=(0.5,0) & ~color=red) & position=(0.5,0)"))
        set()
    """
    if isinstance(node, Atom):
        return set()
    if isinstance(node, Conj):
        seen: dict[str, list] = {}
        out: set[str] = set()
        stack = list(node.terms)
        while stack:  # the conjunction's positive atoms, through nested AND and weights
            t = stack.pop()
            if isinstance(t, Conj):
                stack.extend(t.terms)
            elif isinstance(t, Weighted):
                stack.append(t.term)
            elif isinstance(t, Atom):
                values = seen.setdefault(t.name, [])
                if not any(_same_value(t.value, v) for v in values):
                    values.append(t.value)
            else:
                out |= repeated_concepts(t)
        return out | {n for n, values in seen.items() if len(values) > 1}
    children = node.terms if isinstance(node, Disj) else (node.term,)
    return set().union(*(repeated_concepts(c) for c in children))


def _same_value(a, b) -> bool:
    """Two atoms' values are the same (names, numbers, tuples or per-chain tensors)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return a.shape == b.shape and bool(torch.equal(a, b.to(a.dtype)))
    return a == b


def _first_pos(node) -> int:
    while not isinstance(node, Atom):
        node = node.terms[0] if isinstance(node, (Conj, Disj)) else node.term
    return node.pos


def compile_expression(text: str, models, *, alpha: float = 0.01, temperature: float = 1.0,
                       scales: Mapping[str, float] | None = None,
                       temperatures: Mapping[str, float] | None = None,
                       negation_weight: float = 1.0, closed_world: bool = False) -> Energy:
    """``build(parse(text), models, ...)`` in one call.

    Example:
        >>> from conceptebm import pretrained
        >>> models = {name: pretrained.load(name) for name in ("position", "color")}
        >>> compile_expression("position=(0.3,-0.2) & ~color=red", models)
        position(0.3,-0.2) & ~color('red')
    """
    return build(parse(text), models, alpha=alpha, temperature=temperature, scales=scales,
                 text=text, temperatures=temperatures, negation_weight=negation_weight,
                 closed_world=closed_world)

"""How a user's labels become concepts: column maps, declared concepts, concepts read off data.

A label column needs a :class:`~conceptebm.concepts.Concept` (kind, range or category names).
It is declared by the user (a concepts JSON file, :func:`read_concepts`), mapped from columns
(:func:`parse_columns`: ``position=x,y``), or read off the values themselves
(:func:`concept_from_values`: numbers give a continuous concept over their range, names a
categorical one). :mod:`conceptebm.datasets.user` applies them when it loads a folder or an .npz.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from conceptebm.concepts import Concept

__all__ = ["parse_columns", "read_concepts", "concept_from_values"]


def parse_columns(specs: Sequence[str] | Mapping | None) -> dict[str, tuple[str, ...]]:
    """``["position=x,y", "size=radius"]`` -> ``{"position": ("x", "y"), "size": ("radius",)}``.

    >>> parse_columns(["position=x,y"])
    {'position': ('x', 'y')}
    """
    if specs is None:
        return {}
    if isinstance(specs, Mapping):
        return {str(k): (v,) if isinstance(v, str) else tuple(v) for k, v in specs.items()}
    out = {}
    for spec in specs:
        name, sep, cols = str(spec).partition("=")
        parts = tuple(c.strip() for c in cols.split(",") if c.strip())
        if not sep or not name.strip() or not parts:
            raise ValueError(f"--columns {spec!r}: write NAME=COLUMN[,COLUMN...], e.g. "
                             "position=x,y")
        out[name.strip()] = parts
    return out


def read_concepts(path) -> dict[str, Concept]:
    """Concepts declared in a JSON file: ``{"position": {"kind": "continuous", "dim": 2,
    "low": -1, "high": 1}, "digit": {"kind": "categorical", "values": ["0", "1"]}}``
    (``kind`` may be left out: ``values`` means categorical)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"concepts file {str(path)!r} does not exist; write a JSON object "
                         "{name: {kind, dim, low, high} or {values: [...]}}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix line {err.lineno}") from None
    return concepts_from(data, str(path))


def concepts_from(data, where: str) -> dict[str, Concept]:
    """Concepts from a parsed concepts JSON object ``{name: declaration}``; errors name
    ``where`` (the file, or the key of an .npz)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object {{name: declaration}}, got "
                         f"{type(data).__name__}")
    out = {}
    for name, d in data.items():
        if isinstance(d, list):
            d = {"values": d}
        if not isinstance(d, dict):
            raise ValueError(f"{where}: concept {name!r} must be an object like "
                             "{\"kind\": \"continuous\", \"dim\": 1, \"low\": 0, \"high\": 1}")
        kind = d.get("kind", "categorical" if "values" in d else "continuous")
        try:
            if kind == "categorical":
                if not d.get("values"):
                    raise ValueError("a categorical concept needs \"values\": [names]")
                out[name] = Concept.categorical(name, [str(v) for v in d["values"]])
            else:
                unknown = set(d) - {"kind", "dim", "low", "high", "name", "tolerances"} - (
                    set() if d.get("values") else {"values"})
                if unknown:
                    raise ValueError(f"unknown keys {sorted(unknown)}; use dim, low, high "
                                     "(and tolerances)")
                tols = d.get("tolerances")  # accuracy tolerances evaluation reports
                out[name] = Concept(name=name, kind=kind, dim=int(d.get("dim", 1)),
                                    low=float(d.get("low", -1.0)), high=float(d.get("high", 1.0)),
                                    tolerances=None if tols is None else tuple(tols))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: concept {name!r}: {err}") from None
    return out


def _is_number(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float, np.integer, np.floating)):
        return True
    try:
        float(str(v))
        return True
    except ValueError:
        return False


def label_cells(raw) -> list:
    """The cells of one label value: a list, tuple or array flattened, a scalar as one cell."""
    return list(np.asarray(raw, dtype=object).reshape(-1)) if isinstance(
        raw, (list, tuple, np.ndarray)) else [raw]


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def concept_from_values(name: str, raws: Sequence, where: str = "labels") -> Concept:
    """A concept from the raw values of one label: all numbers -> continuous over their
    min..max (as wide as the widest row); anything else -> categorical over the sorted names.

    >>> c = concept_from_values("size", ["0.2", "0.3", "0.25"])
    >>> c.kind, c.dim, c.low, c.high
    ('continuous', 1, 0.2, 0.3)
    >>> concept_from_values("kind", ["cat", "dog", "cat"]).values
    ('cat', 'dog')
    """
    rows = [label_cells(r) for r in raws]
    if rows and all(_is_number(v) for row in rows for v in row):
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(f"{where}: label {name!r} has rows of {sorted(widths)} numbers; "
                             "give every row the same number")
        vals = np.array([[float(v) for v in r] for r in rows])
        if not np.isfinite(vals).all():
            raise ValueError(f"{where}: label {name!r} has a non-finite value; fix or drop "
                             "that row")
        lo, hi = float(vals.min()), float(vals.max())
        if lo == hi:
            raise ValueError(f"{where}: label {name!r} is {lo:g} in every row, so it has no "
                             "range to learn; drop the column or declare its range")
        return Concept.continuous(name, dim=widths.pop(), low=lo, high=hi)
    if any(len(r) != 1 for r in rows):
        raise ValueError(f"{where}: label {name!r} mixes names and lists; a categorical label "
                         "takes one name per row")
    names = sorted({str(r[0]).strip() for r in rows}, key=_natural)
    if len(names) < 2:
        raise ValueError(f"{where}: label {name!r} has only the value {names}; drop the column "
                         "or declare its values")
    return Concept.categorical(name, names)

"""Concept specifications: what a concept's values are and how they are encoded as tensors.

A :class:`Concept` is shared by datasets (label encoding), conditional energies (``.given``)
and inference (bounds and grids), so the meaning of a label can never be lost.

* continuous concepts (position, size, ...) are vectors of ``dim`` floats within
  ``[low, high]`` per coordinate;
* categorical concepts (color, shape, ...) are one-hot vectors over ``values`` (names).

A concept is declared once (the scene concepts in :func:`conceptebm.datasets.scene_concepts`,
a user's in their data) and everything downstream follows from the declaration, never from
its name: evaluation scores a categorical concept by accuracy, a continuous one by mean
absolute error and, when it has :attr:`Concept.accuracy_tolerances`, by the share of values
within each tolerance (Euclidean distance over its coordinates).

Example:
    >>> color = Concept.categorical("color", ["red", "green", "blue"])
    >>> color.encode("green")
    tensor([0., 1., 0.])
    >>> pos = Concept.continuous("position", dim=2, low=-1.0, high=1.0)
    >>> pos.encode((0.3, -0.2))
    tensor([ 0.3000, -0.2000])
    >>> pos.accuracy_tolerances   # 2-d default: 20% and 7.5% of the range
    (0.4, 0.15)
    >>> Concept.continuous("size", low=0.2, high=0.4).accuracy_tolerances   # 1-d: MAE only
    ()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Concept", "DEFAULT_TOLERANCE_FRACTIONS"]

#: Accuracy tolerances of a continuous concept of 2 or more coordinates that declares none,
#: as fractions of its range: the paper's position tolerance (0.4 on [-1, 1], section 4.2)
#: and a stricter one (0.15). A 1-d concept declares its tolerances or is scored by MAE only.
DEFAULT_TOLERANCE_FRACTIONS = (0.2, 0.075)


@dataclass(frozen=True)
class Concept:
    """Description of one concept.

    Attributes:
        name: identifier used in expressions and checkpoints (``"position"``).
        kind: ``"continuous"`` or ``"categorical"``.
        dim: width of the encoded vector (coordinates, or number of categories).
        low, high: per-coordinate range of a continuous concept.
        values: category names of a categorical concept, in one-hot order.
        tolerances: Euclidean distances within which a value of a continuous concept counts
            as correct, the main one first (``None``: :attr:`accuracy_tolerances` decides).
            Evaluation metadata, not part of the value space: two concepts that differ only
            in tolerances compare equal.
    """

    name: str
    kind: str
    dim: int
    low: float = -1.0
    high: float = 1.0
    values: tuple[str, ...] = field(default_factory=tuple)
    tolerances: tuple[float, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "categorical"):
            raise ValueError(
                f"Concept {self.name!r}: kind must be 'continuous' or 'categorical', "
                f"got {self.kind!r}"
            )
        if self.dim < 1:
            raise ValueError(f"Concept {self.name!r}: dim must be >= 1, got {self.dim}")
        if self.kind == "continuous" and not self.low < self.high:
            raise ValueError(
                f"Concept {self.name!r}: need low < high, got low={self.low}, high={self.high}"
            )
        if self.kind == "categorical" and len(self.values) != self.dim:
            raise ValueError(
                f"Concept {self.name!r}: {len(self.values)} value names for dim={self.dim}"
            )
        if self.tolerances is not None:
            self._check_tolerances()

    def _check_tolerances(self) -> None:
        tols = tuple(float(t) for t in self.tolerances)
        if self.kind == "categorical" and tols:
            raise ValueError(f"Concept {self.name!r}: a categorical concept has no tolerances "
                             f"(it is scored by accuracy), got tolerances={tols}")
        if any(not 0 < t < float("inf") for t in tols):
            raise ValueError(f"Concept {self.name!r}: tolerances must be finite and > 0, got "
                             f"{tols}; pass e.g. tolerances=(0.4,)")
        object.__setattr__(self, "tolerances", tols)

    # ----------------------------------------------------------------------------- builders
    @classmethod
    def continuous(cls, name: str, dim: int = 1, low: float = -1.0, high: float = 1.0, *,
                   tolerances: Sequence[float] | None = None) -> Concept:
        return cls(name=name, kind="continuous", dim=dim, low=float(low), high=float(high),
                   tolerances=None if tolerances is None else tuple(tolerances))

    @classmethod
    def categorical(cls, name: str, values: Sequence[str]) -> Concept:
        values = tuple(str(v) for v in values)
        if len(set(values)) != len(values):
            raise ValueError(f"Concept {name!r}: duplicate value names in {values}")
        return cls(name=name, kind="categorical", dim=len(values), values=values)

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def accuracy_tolerances(self) -> tuple[float, ...]:
        """The tolerances evaluation reports accuracies at, the main one first: the declared
        :attr:`tolerances`, else for a continuous concept of 2 or more coordinates
        :data:`DEFAULT_TOLERANCE_FRACTIONS` of its range, else none."""
        if self.tolerances is not None:
            return self.tolerances
        return self._default_tolerances()

    def _default_tolerances(self) -> tuple[float, ...]:
        if self.is_categorical or self.dim < 2:
            return ()
        return tuple(f * (self.high - self.low) for f in DEFAULT_TOLERANCE_FRACTIONS)

    def to_dict(self) -> dict:
        """JSON-ready fields; ``tolerances`` only when they differ from the default, so the
        records of concepts on default tolerances (every checkpoint so far) stay the same."""
        d = {"name": self.name, "kind": self.kind, "dim": self.dim, "low": self.low,
             "high": self.high, "values": list(self.values)}
        if self.tolerances is not None and self.tolerances != self._default_tolerances():
            d["tolerances"] = list(self.tolerances)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Concept:
        """The concept a record (``to_dict``, checkpoint JSON) describes; a record that does
        not describe one raises ``ValueError`` saying what is missing."""
        if not isinstance(d, dict):
            raise ValueError(f"a concept record must be a dict, got {type(d).__name__}")
        name = d.get("name", "?")
        need = ["name", "kind", "dim"]
        if d.get("kind") == "continuous":
            need += ["low", "high"]  # its range
        missing = [k for k in need if k not in d]
        if missing:
            what = {"kind": "kind ('continuous' or 'categorical')", "low": "range (low)",
                    "high": "range (high)"}
            raise ValueError(f"concept record {name!r} has no "
                             f"{', '.join(what.get(k, k) for k in missing)}: {d}")
        if d["kind"] == "categorical" and not d.get("values"):
            raise ValueError(f"categorical concept {name!r} has no category names ('values'; "
                             f"dim {d['dim']} needs {d['dim']})")
        tols = d.get("tolerances")
        return cls(name=d["name"], kind=d["kind"], dim=int(d["dim"]),
                   low=float(d.get("low", -1.0)), high=float(d.get("high", 1.0)),
                   values=tuple(d.get("values", ())),
                   tolerances=None if tols is None else tuple(tols))

    # ----------------------------------------------------------------------------- encoding
    def index(self, value: str) -> int:
        """Category index of a value name; unknown names list the known ones."""
        if not self.is_categorical:
            raise ValueError(f"Concept {self.name!r} is continuous; it has no named values")
        try:
            return self.values.index(value)
        except ValueError:
            raise ValueError(
                f"unknown {self.name} {value!r}; known values: {', '.join(self.values)}"
            ) from None

    def encode(self, value, *, device=None, dtype=None) -> Tensor:
        """Encode a value as a float tensor of shape ``(dim,)`` or ``(batch, dim)``.

        Categorical: a name, an integer index, a sequence of names, a tensor of indices
        ``(batch,)`` or an already encoded ``(..., dim)`` float tensor. Continuous: a number, a
        sequence or a tensor whose last dimension is ``dim``. Values out of range raise:
        nothing is silently clamped. ``dtype=None`` keeps a floating tensor's dtype (so float64
        stays exact) and otherwise uses torch's default dtype.
        """
        if dtype is None:
            floating = isinstance(value, Tensor) and value.is_floating_point()
            dtype = value.dtype if floating else torch.get_default_dtype()
        if self.is_categorical:
            return self._encode_categorical(value, device=device, dtype=dtype)
        if isinstance(value, str) or (isinstance(value, (list, tuple)) and value
                                      and isinstance(value[0], str)):
            raise ValueError(f"{self.name} is continuous: it takes {self.dim} number(s) in "
                             f"[{self.low}, {self.high}], got {value!r}")
        c = torch.as_tensor(value, dtype=dtype, device=device)
        if c.dim() == 0 and self.dim == 1:
            c = c.reshape(1)
        if c.dim() == 0 or c.shape[-1] != self.dim or c.dim() > 2:
            raise ValueError(
                f"{self.name} expects {self.dim} number(s) per value (shape ({self.dim},) or "
                f"(batch, {self.dim})), got shape {tuple(c.shape)}"
            )
        self.check_range(c)
        return c

    def _encode_categorical(self, value, *, device, dtype) -> Tensor:
        if isinstance(value, str):
            value = self.index(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            value = torch.tensor([self.index(v) for v in value])  # (batch,) indices
        if isinstance(value, int):
            if not 0 <= value < self.dim:
                raise ValueError(
                    f"{self.name} index must be in [0, {self.dim - 1}], got {value}"
                )
            out = torch.zeros(self.dim, dtype=dtype, device=device)
            out[value] = 1.0
            return out
        t = torch.as_tensor(value, device=device)
        if not t.is_floating_point():
            if t.numel() and (t.min() < 0 or t.max() >= self.dim):
                raise ValueError(f"{self.name} indices must lie in [0, {self.dim - 1}], got "
                                 f"min {t.min().item()}, max {t.max().item()}")
            return torch.nn.functional.one_hot(t.long(), self.dim).to(dtype)
        if t.shape[-1:] != (self.dim,):
            raise ValueError(
                f"{self.name} expects a one-hot of width {self.dim}, got shape {tuple(t.shape)}"
            )
        return t.to(dtype)

    def check_range(self, c: Tensor) -> None:
        """Raise if a continuous encoding lies outside ``[low, high]`` (or is not finite)."""
        if self.is_categorical:
            return
        if not torch.isfinite(c).all():
            raise ValueError(f"{self.name} values must be finite, got {c.tolist()}")
        if (c < self.low).any() or (c > self.high).any():
            raise ValueError(
                f"{self.name} values must lie in [{self.low}, {self.high}], got "
                f"min {c.min().item():.4g}, max {c.max().item():.4g}"
            )

    def format(self, c: Tensor) -> str:
        """Readable form of one encoded value, used in expression reprs."""
        c = c.detach().reshape(-1, self.dim)[0] if c.dim() > 0 else c
        if self.is_categorical:
            return repr(self.values[int(c.argmax())])
        return ",".join(f"{float(v):.3g}" for v in c)

"""Energy base classes: ``Energy`` (E(x)), ``ConditionalEnergy`` (E(x|c)) and bound concepts.

Lower energy means more probable everywhere in the package: p(x) is proportional to exp(-E(x)).
Every energy maps a batch ``(batch, *event)`` to energies of shape ``(batch,)``; the batch
dimension is the chain dimension of the samplers.
"""

from __future__ import annotations

import numbers

from torch import Tensor, nn

from conceptebm.concepts import Concept

__all__ = ["Energy", "ConditionalEnergy", "Bound", "check_energy_output"]


def check_energy_output(e: Tensor, x: Tensor, who: object) -> Tensor:
    """Raise unless ``e`` has shape ``(x.shape[0],)``: a wrong shape broadcasts silently later."""
    if e.shape != (x.shape[0],):
        raise ValueError(
            f"{who!r} returned energies of shape {tuple(e.shape)} for a batch of shape "
            f"{tuple(x.shape)}; an energy must return one value per batch item, shape "
            f"({x.shape[0]},). Reduce over the non-batch dimensions in energy()."
        )
    return e


class Energy(nn.Module):
    """An unnormalized log-density exp(-E(x)) over a batch.

    Subclasses implement :meth:`energy` ``(batch, *event) -> (batch,)``. Calling the module
    gives the same, with the output shape checked. Energies compose with ``&`` (:class:`And`),
    ``|`` (:class:`Or`), ``~`` (:class:`Not`) and ``t * e`` (:class:`Scale`).

    Example:
        >>> import torch
        >>> class Quadratic(Energy):
        ...     def energy(self, x):
        ...         return 0.5 * (x ** 2).sum(-1)
        >>> Quadratic()(torch.ones(4, 2))
        tensor([1., 1., 1., 1.])
    """

    #: ``False`` for expressions whose distribution is not integrable on its own (a bare
    #: negation); samplers refuse them.
    is_grounded: bool = True

    def energy(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement energy(x) -> (batch,)")

    def forward(self, x: Tensor) -> Tensor:
        return check_energy_output(self.energy(x), x, self)

    # ---------------------------------------------------------------- composition sugar
    def __and__(self, other: Energy) -> Energy:
        from conceptebm.energies.ops import And

        return And(self, other)

    def __or__(self, other: Energy) -> Energy:
        from conceptebm.energies.ops import Or

        return Or(self, other)

    def __invert__(self) -> Energy:
        from conceptebm.energies.ops import Not

        return Not(self)

    def __rmul__(self, t: float) -> Energy:
        from conceptebm.energies.ops import Scale

        if not isinstance(t, numbers.Real):
            return NotImplemented
        return Scale(self, float(t))

    __mul__ = __rmul__

    # nn.Module defines __hash__/__eq__ by identity; keep that (energies are used as keys).
    def extra_repr(self) -> str:  # pragma: no cover - repr is overridden by expressions
        return ""

    def __repr__(self) -> str:
        return type(self).__name__ + "()"


class ConditionalEnergy(nn.Module):
    """A concept-conditioned energy E(x|c).

    Subclasses implement :meth:`energy` ``(x (batch, *event), c (batch, concept.dim)) ->
    (batch,)``. :meth:`given` binds a concept value and returns an :class:`Energy` that
    composes with the operators.

    Args:
        concept: the :class:`~conceptebm.concepts.Concept` this energy is conditioned on.
    """

    def __init__(self, concept: Concept):
        super().__init__()
        self.concept = concept

    def energy(self, x: Tensor, c: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} must implement energy(x, c) -> (batch,)"
        )

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        if c.dim() != 2 or c.shape[0] != x.shape[0] or c.shape[1] != self.concept.dim:
            raise ValueError(
                f"{self.concept.name} energy: c must have shape ({x.shape[0]}, "
                f"{self.concept.dim}) for a batch of {x.shape[0]}, got {tuple(c.shape)}"
            )
        return check_energy_output(self.energy(x, c), x, self)

    def given(self, value) -> Bound:
        """Bind a concept value: a name (``"red"``), an index, numbers, or a tensor.

        A tensor of shape ``(batch, dim)`` binds one value per batch item (chain).
        """
        return Bound(self, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.concept.name})"


class Bound(Energy):
    """A conditional energy with its concept value fixed: ``E(x) = E(x|c)``.

    ``c`` of shape ``(dim,)`` is shared by every batch item; ``(batch, dim)`` gives each chain
    its own value. Its repr reads like the expression language: ``position(0.3,-0.2)``.
    """

    def __init__(self, cond: ConditionalEnergy, value):
        super().__init__()
        if not isinstance(cond, ConditionalEnergy):
            raise TypeError(f"Bound needs a ConditionalEnergy, got {type(cond).__name__}")
        self.cond = cond
        if isinstance(value, Tensor):
            c = cond.concept.encode(value.detach())
        else:
            c = cond.concept.encode(value)
        self.register_buffer("c", c, persistent=False)

    def energy(self, x: Tensor) -> Tensor:
        c = self.c.to(device=x.device, dtype=x.dtype)
        if c.dim() == 1:
            c = c.expand(x.shape[0], -1)  # (batch, dim)
        elif c.shape[0] != x.shape[0]:
            raise ValueError(
                f"{self!r} binds {c.shape[0]} concept values but got a batch of {x.shape[0]}"
            )
        return self.cond(x, c)

    def __repr__(self) -> str:
        if self.c.dim() == 2 and self.c.shape[0] > 1:
            return f"{self.cond.concept.name}[{self.c.shape[0]} values]"
        return f"{self.cond.concept.name}({self.cond.concept.format(self.c)})"

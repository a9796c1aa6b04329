"""Energy base classes: ``Energy`` (E(x)), ``ConditionalEnergy`` (E(x|c)) and bound concepts.

Lower energy means more probable everywhere in the package: p(x) is proportional to exp(-E(x)).
Every energy maps a batch ``(batch, *event)`` to energies of shape ``(batch,)``; the batch
dimension is the chain dimension of the samplers.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING

from torch import Tensor, nn

from conceptebm.concepts import Concept

if TYPE_CHECKING:  # the type lives in the engine, which imports this module (no runtime cycle)
    from conceptebm.infer.settings import SamplerSettings

__all__ = ["Energy", "ConditionalEnergy", "Bound", "FeatureHead", "check_energy_output"]


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
        sampler: the :class:`~conceptebm.infer.SamplerSettings` that generate images from this
            model (a checkpoint's ``"sampler"`` record, filled in by the loaders), or ``None``
            when nothing is recommended. Read it as :attr:`sampler`; it is fixed at
            construction.

    Example:
        >>> import torch
        >>> from conceptebm.infer import SamplerSettings
        >>> class Dist(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> Dist(Concept.continuous("p", dim=1)).sampler is None
        True
        >>> e = Dist(Concept.continuous("p", dim=1), sampler=SamplerSettings(num_steps=5))
        >>> e.sampler.num_steps
        5
    """

    def __init__(self, concept: Concept, *, sampler: SamplerSettings | None = None):
        super().__init__()
        self.concept = concept
        # duck-typed: energies sit below the engine that defines SamplerSettings
        if sampler is not None and not (isinstance(sampler, Mapping)
                                        and hasattr(sampler, "num_steps")):
            raise TypeError(
                f"{type(self).__name__}: sampler must be a conceptebm.infer.SamplerSettings or "
                f"None, got {type(sampler).__name__}; build one with SamplerSettings(...) or "
                "SamplerSettings.from_dict(record)")
        self._sampler = sampler
        self._record: dict = {}
        self._map_settings = None

    def attach_record(self, record: Mapping, *, map_settings=None) -> ConditionalEnergy:
        """Give the model the record it was loaded from (what :func:`conceptebm.load` and the
        checkpoint reader do) and the MAP settings it implies; returns the model.

        ``record`` is the checkpoint's JSON record (concept declarations, training command,
        calibration, metrics, sampler and MAP settings); ``map_settings`` a
        :class:`~conceptebm.infer.MAPSettings` (``None``: the engine's defaults).
        """
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a mapping, got {type(record).__name__}")
        self._record = dict(record)
        self._map_settings = map_settings
        return self

    @property
    def record(self) -> Mapping:
        """The record the model was loaded with (read-only; empty for a model built in code):
        ``model.record["command"]``, ``model.record.get("energy_calibration")``, ..."""
        from types import MappingProxyType

        return MappingProxyType(self._record)

    @property
    def map_settings(self):
        """How to read this model's concept off an image (a
        :class:`~conceptebm.infer.MAPSettings` from its record; ``None``: the engine's
        defaults). :func:`conceptebm.scenes.infer_concept` uses it unless told otherwise."""
        return self._map_settings

    @property
    def sampler(self) -> SamplerSettings | None:
        """The recommended image-generation settings given at construction (``None``: none
        recorded; use :data:`conceptebm.infer.DEFAULT_SETTINGS`). A mapping of
        :func:`~conceptebm.infer.langevin` keywords: ``langevin(e.given(c), shape, **e.sampler)``.
        """
        return self._sampler

    def energy(self, x: Tensor, c: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} must implement energy(x, c) -> (batch,)"
        )

    # ------------------------------------------------------------ the split protocol
    # Concept inference evaluates one image against many concept values (a grid, then
    # refinement). A late-conditioned net splits E(x|c) = head(features(x), c): the engine
    # (infer.energy_map, infer.concept_energy) calls ``features`` once per image and
    # ``energy_from_features`` per candidate, whatever the net. These defaults make the split
    # free for early-conditioned nets: the "features" are the image and the head is the
    # whole energy, so they cost exactly what calling the energy per (image, value) did.

    def features(self, x: Tensor) -> Tensor:
        """What the energy keeps of ``x (N, *event)`` for any ``c``: ``(N, *feat)``.

        Default: ``x`` itself. A late-conditioned net returns its image trunk's output; then
        ``energy(x, c) == energy_from_features(features(x), c)``.
        """
        return x

    def energy_from_features(self, f: Tensor, c: Tensor) -> Tensor:
        """Energies from :meth:`features`: ``c (N, dim) -> (N,)``, or ``c (N, R, dim) -> (N, R)``
        for ``R`` candidate values per item (the item's features are shared, not copied, by
        nets that override this).

        Default: the full energy of each (item, value) pair.

        Example:
            >>> import torch
            >>> from conceptebm.concepts import Concept
            >>> class Dist(ConditionalEnergy):
            ...     def energy(self, x, c):
            ...         return ((x - c) ** 2).sum(-1)
            >>> e = Dist(Concept.continuous("p", dim=1))
            >>> x = torch.tensor([[0.5], [0.0]])  # (N=2, 1)
            >>> e.energy_from_features(e.features(x), torch.zeros(2, 3, 1)).shape  # (N, R)
            torch.Size([2, 3])
        """
        n = f.shape[0]
        if c.dim() == 3 and c.shape[0] == n:
            r = c.shape[1]
            fs = f[:, None].expand(n, r, *f.shape[1:]).reshape(n * r, *f.shape[1:])
            return self(fs, c.reshape(n * r, c.shape[-1])).reshape(n, r)  # (N, R)
        if c.dim() == 2:
            return self(f, c)  # (N,)
        raise ValueError(f"{self.concept.name} energy: c must have shape (N, {self.concept.dim})"
                         f" or (N, R, {self.concept.dim}) for N = {n} items, got "
                         f"{tuple(c.shape)}")

    def on_features(self) -> FeatureHead:
        """This energy as a :class:`ConditionalEnergy` over :meth:`features` instead of images:
        for code that hands a conditional energy to a generic consumer (a Pyro factor, NUTS)
        and wants the image trunk out of its inner loop. Compute ``f = e.features(x)`` once,
        then ``e.on_features()(f, c) == e(x, c)``.
        """
        return FeatureHead(self)

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


class FeatureHead(ConditionalEnergy):
    """``E(f, c) = base.energy_from_features(f, c)``: a conditional energy's head alone, over
    precomputed :meth:`~ConditionalEnergy.features` (see :meth:`ConditionalEnergy.on_features`).

    For an early-conditioned net the features are the images, so this is the energy itself.

    Example:
        >>> import torch
        >>> from conceptebm.concepts import Concept
        >>> class Dist(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> e = Dist(Concept.continuous("p", dim=1))
        >>> x, c = torch.tensor([[0.5], [0.0]]), torch.zeros(2, 1)
        >>> torch.equal(e.on_features()(e.features(x), c), e(x, c))
        True
    """

    def __init__(self, base: ConditionalEnergy):
        super().__init__(base.concept, sampler=base.sampler)
        self.base = base

    def energy(self, f: Tensor, c: Tensor) -> Tensor:
        return self.base.energy_from_features(f, c)

    def __repr__(self) -> str:
        return f"{self.base!r}.on_features()"


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

"""Sampler settings for image generation: one type, stored in checkpoints, carried by models.

:class:`SamplerSettings` holds the keyword arguments of :func:`conceptebm.infer.langevin` in its
decoupled form (``x - step_size * grad E + noise_scale * N(0, 1)``, clamped to
:data:`IMAGE_BOUNDS`) that generate images from a concept EBM: the number of steps, the step
size, the noise and how chains start. It is frozen, validated on construction, and a read-only
mapping of those keywords, so ``langevin(energy, shape, **settings)`` runs it. A checkpoint
stores it as JSON (:meth:`SamplerSettings.to_dict`, read back by
:meth:`SamplerSettings.from_dict`); a loaded :class:`~conceptebm.energies.ConditionalEnergy`
carries it as ``.sampler`` (:data:`DEFAULT` when the checkpoint recorded none).

Example:
    >>> import torch
    >>> from conceptebm.infer import langevin
    >>> s = DEFAULT.replace(num_steps=5)
    >>> s.num_steps, s.step_size, s.bounds
    (5, 100.0, (0.0, 1.0))
    >>> energy = lambda x: ((x - 0.5) ** 2).flatten(1).sum(1)  # (chains,)
    >>> x = langevin(energy, (2, 3, 4, 4), **s.replace(step_size=0.1))
    >>> x.shape, bool(((x >= 0) & (x <= 1)).all())
    (torch.Size([2, 3, 4, 4]), True)
    >>> SamplerSettings.from_dict(s.to_dict()) == s
    True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["SamplerSettings", "DEFAULT", "IMAGE_BOUNDS", "IMAGE_INITS", "MAPSettings",
           "DEFAULT_MAP", "MAP_OPTIMIZERS", "MAP_GRID", "MAP_STEPS", "MAP_CHUNK", "default_grid",
           "settings_of"]

#: Pixel range of every image in the package: samplers clamp generated images to it.
IMAGE_BOUNDS: tuple[float, float] = (0.0, 1.0)
#: How image chains start: ``"smooth"`` (4x4 uniform noise upsampled, low frequency) or
#: ``"uniform"`` (per-pixel uniform noise); see :func:`conceptebm.infer.initial_samples`.
IMAGE_INITS = ("smooth", "uniform")


def _replaced(settings, changes: dict):
    """``settings`` (a frozen settings dataclass) with ``changes``; ``None`` values leave a field
    as it is, unknown names raise ``TypeError`` listing the fields."""
    fields = settings.__dataclass_fields__
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise TypeError(f"{type(settings).__name__} has no field(s) {unknown}; fields: "
                        f"{list(fields)}")
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})


def _known_fields(cls, d, what: str) -> dict:
    """``d`` as keyword arguments of the settings class ``cls``; a non-mapping or an unknown
    field raises, listing the fields (``what`` names the kind of setting)."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict needs a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown} in {dict(d)!r}; known: "
                         f"{list(cls.__dataclass_fields__)}")
    return dict(d)


def _bad(name: str, value, why: str, fix: str) -> ValueError:
    return ValueError(f"SamplerSettings: {name} {why}, got {value!r}; {fix}")


@dataclass(frozen=True)
class SamplerSettings(Mapping):
    """Decoupled Langevin settings for generating images from fresh noise.

    A frozen dataclass and a read-only :class:`~collections.abc.Mapping` of
    :func:`conceptebm.infer.langevin` keywords, so ``langevin(energy, shape, **settings)`` (or
    ``**settings.kwargs()``) samples with them. It does not target exp(-E) exactly: the noise
    is decoupled from the step, as in EBM training (Du & Mordatch 2019).

    Args:
        num_steps: Langevin steps from the initial noise (test time: 2x the training K).
        step_size: multiplies the raw energy gradient each step; must match the step the model
            was trained with (100 for the CD recipe, 1 for the shipped shape model).
        noise_scale: std of the Gaussian noise added each step (>= 0; 0 = gradient descent).
        init: how chains start, one of :data:`IMAGE_INITS`.
        bounds: ``(low, high)`` box the images are clamped to, :data:`IMAGE_BOUNDS` for images.
        denoise_steps: noise-free steps after ``num_steps`` (0: none); they remove the pixel
            speckle of the last noisy steps (``paper/RESULTS.md`` measures the realism).

    Example:
        >>> s = SamplerSettings(num_steps=60)
        >>> s.num_steps, s["step_size"], sorted(s)
        (60, 100.0, ['bounds', 'denoise_steps', 'init', 'noise_scale', 'num_steps', 'step_size'])
        >>> SamplerSettings(step_size=-1)
        Traceback (most recent call last):
        ...
        ValueError: SamplerSettings: step_size must be a finite number > 0, got -1; ...
    """

    num_steps: int = 40
    step_size: float = 100.0
    noise_scale: float = 0.005
    init: str = "smooth"
    bounds: tuple[float, float] = IMAGE_BOUNDS
    denoise_steps: int = 0  # noise-free steps that end the chain (see infer.langevin)

    def __post_init__(self) -> None:
        for name in ("num_steps", "denoise_steps"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
                raise _bad(name, n, "must be an integer >= 0",
                           f"pass a whole number of Langevin steps, e.g. {name}=40"
                           if name == "num_steps" else "e.g. denoise_steps=5, or 0 for none")
            object.__setattr__(self, name, int(n))
        for name, low in (("step_size", "> 0"), ("noise_scale", ">= 0")):
            v = getattr(self, name)
            ok = (isinstance(v, numbers.Real) and not isinstance(v, bool)
                  and math.isfinite(v) and (v > 0 if low == "> 0" else v >= 0))
            if not ok:
                raise _bad(name, v, f"must be a finite number {low}",
                           "the shipped CD models use step_size=100.0, noise_scale=0.005")
            object.__setattr__(self, name, float(v))
        if self.init not in IMAGE_INITS:
            raise _bad("init", self.init, f"must be one of {IMAGE_INITS}",
                       'use "smooth" (the training default)')
        try:
            low, high = (float(b) for b in self.bounds)
        except (TypeError, ValueError):
            raise _bad("bounds", self.bounds, "must be a pair (low, high)",
                       f"images use {IMAGE_BOUNDS}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise _bad("bounds", self.bounds, "need finite low < high",
                       f"images use {IMAGE_BOUNDS}")
        object.__setattr__(self, "bounds", (low, high))

    # ------------------------------------------------------------ mapping of langevin kwargs
    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def kwargs(self) -> dict:
        """The :func:`~conceptebm.infer.langevin` keyword arguments, as a plain dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    # ------------------------------------------------------------ changes and JSON
    def replace(self, **changes) -> SamplerSettings:
        """A copy with ``changes``; a value of ``None`` leaves that field as it is (so optional
        command-line options pass straight through). Unknown names raise.

        Example:
            >>> DEFAULT.replace(num_steps=100, step_size=None).num_steps
            100
        """
        return _replaced(self, changes)

    def to_dict(self) -> dict:
        """JSON-ready fields (``bounds`` as a list), as stored in a checkpoint's ``"sampler"``."""
        d = self.kwargs()
        d["bounds"] = list(self.bounds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, *, default: SamplerSettings | None = None) -> SamplerSettings:
        """Settings from a checkpoint's ``"sampler"`` record; missing fields come from
        ``default`` (:data:`DEFAULT`): older records store no ``bounds``.

        Example:
            >>> SamplerSettings.from_dict({"num_steps": 100, "step_size": 1.0}).step_size
            1.0
        """
        base = DEFAULT if default is None else default
        return dataclasses.replace(base, **_known_fields(cls, d, "sampler"))

    @classmethod
    def from_record(cls, meta: Mapping) -> SamplerSettings | None:
        """The settings a checkpoint's JSON record implies: its ``"sampler"`` entry (written
        by the training loop and by the export of shipped models); else, for older records,
        :data:`DEFAULT` with the step size, noise and init of its ``"train"`` config (a net
        trained with step 1 must be sampled with step 1); ``None`` when it has neither.

        Example:
            >>> SamplerSettings.from_record({"train": {"step_size": 1.0, "lr": 1e-4}}).step_size
            1.0
            >>> SamplerSettings.from_record({"net": {}}) is None
            True
        """
        train = meta.get("train") or {}
        own = {k: train[k] for k in ("step_size", "noise_scale", "init") if k in train}
        if "sampler" not in meta and not own:
            return None
        return cls.from_dict(meta.get("sampler") or {}, default=DEFAULT.replace(**own))


def settings_of(energy, *, strict: bool = True) -> SamplerSettings | None:
    """The sampler settings the models inside ``energy`` were trained to be sampled with.

    Walks a composed energy (``pos.given(c) & col.given("red")``, nested to any depth) down to
    the models that carry settings (``.sampler`` of a loaded model; a wrapper that carries its
    own, such as ``StepMatched``, speaks for what it wraps). Their settings must agree on the
    step size, which the energies' scale was trained for; the result is the settings of the
    model with the most steps. ``None`` when no model inside records settings (an analytic
    energy, a plain callable).

    Raises:
        ValueError: with ``strict``, models trained with different step sizes (compose them
            with :mod:`conceptebm.compose`, which matches their steps, or pass ``step_size``).

    Example:
        >>> import conceptebm
        >>> pos, col = conceptebm.load("position"), conceptebm.load("color")
        >>> settings_of(pos.given((0.3, -0.2)) & col.given("red")).num_steps == max(
        ...     pos.sampler.num_steps, col.sampler.num_steps)
        True
        >>> settings_of(lambda x: x.sum(1)) is None
        True
    """
    found: list = []

    def visit(module) -> None:
        own = getattr(module, "_sampler", None)
        if isinstance(own, SamplerSettings):
            found.append((type(module).__name__, own))
            return  # a model (or a wrapper with its own settings) speaks for what it holds
        for child in module.children():
            visit(child)

    if hasattr(energy, "children"):
        visit(energy)
    if not found:
        return None
    steps = sorted({s.step_size for _, s in found})
    if len(steps) > 1 and strict:
        raise ValueError(f"the composed models were trained with different Langevin step sizes "
                         f"{steps}: compose them with conceptebm.compose (it matches their "
                         f"steps), or pass step_size= (and the other settings) explicitly")
    return max((s for _, s in found), key=lambda s: s.num_steps)


#: The recommended test-time settings of the CD recipe (what ``train_quality`` scored shipped
#: models with unless their record says otherwise): 40 steps (twice the training K), step 100,
#: noise 0.005, from low-frequency noise, clamped to [0, 1].
DEFAULT = SamplerSettings()


#: Optimizers :func:`conceptebm.infer.map_estimate` refines with.
MAP_OPTIMIZERS = ("adam", "lbfgs")
#: The MAP recipe's numbers, in one place: start-grid points per coordinate of a 2-D concept
#: (17 x 17: enough for Adam to finish from), refinement steps, pairs per network call.
MAP_GRID, MAP_STEPS, MAP_CHUNK = 17, 60, 4096


def default_grid(concept) -> int:
    """Start-grid points per coordinate for a continuous ``concept``: a fine line in 1-D,
    :data:`MAP_GRID` in 2-D, 9 in 3-D, none beyond (random starts)."""
    return {1: 101, 2: MAP_GRID, 3: 9}.get(concept.dim, 0)


@dataclass(frozen=True)
class MAPSettings:
    """How a model's concept is read off an image: MAP search settings, stored in checkpoints
    (``"map"`` in the record) and carried by loaded models as ``.map_settings``.

    Args:
        grid: start-grid points per coordinate of a continuous concept (``None``: the
            concept's default, 17 for a 2-D position; ``0``: ``restarts`` random starts).
        steps: refinement steps from the best grid points (0: the grid alone).
        optimizer: ``"adam"`` or ``"lbfgs"``; lr: its step (``None``: the engine's default).
        restarts: how many of the best grid points are refined.
        chunk_size: about this many (image, concept value) pairs per network call.

    Example:
        >>> m = MAPSettings(grid=41)
        >>> m.grid, m.steps, MAPSettings.from_dict(m.to_dict()) == m
        (41, 60, True)
        >>> MAPSettings.from_record({"map": {"grid": 25}}).grid
        25
        >>> MAPSettings(steps=-1)
        Traceback (most recent call last):
        ...
        ValueError: MAPSettings: steps must be an integer >= 0, got -1; ...
    """

    grid: int | None = None
    steps: int = MAP_STEPS
    optimizer: str = "adam"
    lr: float | None = None
    restarts: int = 1
    chunk_size: int = MAP_CHUNK

    def __post_init__(self) -> None:
        for name, low in (("grid", 0), ("steps", 0), ("restarts", 1), ("chunk_size", 1)):
            v = getattr(self, name)
            if v is None and name == "grid":
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                default = type(self).__dataclass_fields__[name].default
                raise ValueError(f"MAPSettings: {name} must be an integer >= {low}, got {v!r}; "
                                 f"the default is {default!r}")
            object.__setattr__(self, name, int(v))
        if self.optimizer not in MAP_OPTIMIZERS:
            raise ValueError(f"MAPSettings: optimizer must be one of {MAP_OPTIMIZERS}, got "
                             f"{self.optimizer!r}")
        if self.lr is not None:
            ok = (isinstance(self.lr, numbers.Real) and not isinstance(self.lr, bool)
                  and math.isfinite(self.lr) and self.lr > 0)
            if not ok:
                raise ValueError(f"MAPSettings: lr must be a finite number > 0 or None, got "
                                 f"{self.lr!r}")
            object.__setattr__(self, "lr", float(self.lr))

    def replace(self, **changes) -> MAPSettings:
        """A copy with ``changes``; ``None`` values leave a field as it is (so optional
        command-line options pass straight through)."""
        return _replaced(self, changes)

    def kwargs(self) -> dict:
        """The keyword arguments of :func:`conceptebm.scenes.infer_concept`."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_dict(self) -> dict:
        """JSON-ready fields, as stored under ``"map"`` in a checkpoint's record."""
        return self.kwargs()

    @classmethod
    def from_dict(cls, d: Mapping) -> MAPSettings:
        return cls(**_known_fields(cls, d, "MAP"))

    @classmethod
    def from_record(cls, meta: Mapping) -> MAPSettings:
        """The settings of a checkpoint's record (its ``"map"`` entry), else the defaults."""
        return cls.from_dict(meta.get("map") or {})


#: The MAP recipe of every shipped model unless its record says otherwise: the concept's
#: default start grid (17 x 17 for a position), 60 Adam steps from the best grid point.
DEFAULT_MAP = MAPSettings()

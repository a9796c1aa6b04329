"""Generation from composed concept energies with the shipped models.

:func:`load_concepts` loads shipped concept EBMs, measures each one's energy gap on real scenes
(for calibrated composition, :mod:`conceptebm.compose.calibrate`) and picks sampler settings
that suit all of them; :func:`generate` runs the one engine's Langevin sampler on a composed
energy from fresh low-frequency noise.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from conceptebm.compose.calibrate import energy_gap, fit_classifier_temperature
from conceptebm.compose.defaults import MULTI_INSTANCE, STEPS
from conceptebm.compose.expr import atom_names, repeated_concepts
from conceptebm.energies import ConditionalEnergy, Energy, Or
from conceptebm.energies.ops import StepMatched
from conceptebm.infer import initial_samples, langevin
from conceptebm.infer.settings import DEFAULT, SamplerSettings

__all__ = ["ConceptModels", "load_concepts", "generate_images", "choose_branches", "BranchChoice",
           "StepMatched", "serving_models", "composition_settings"]


@dataclass
class ConceptModels:
    """Shipped concept EBMs with their energy gaps and common sampler settings."""

    models: dict[str, ConditionalEnergy]
    scales: dict[str, float] = field(default_factory=dict)
    settings: SamplerSettings = DEFAULT
    image_shape: tuple[int, int, int] = (3, 32, 32)
    #: concept -> classifier temperature on the same scenes (fit_classifier_temperature);
    #: what a negation through the classifier (build's ``temperatures``) reads
    temperatures: dict[str, float] = field(default_factory=dict)


def _match_step_sizes(models: dict) -> dict:
    """Rescale models whose recommended step differs from the most common one (see
    :class:`StepMatched`); the composition then samples with that common step."""
    steps = [m.sampler.step_size if m.sampler is not None else None for m in models.values()]
    known = [s for s in steps if s]
    if len(set(known)) <= 1:
        return models
    ref = max(set(known), key=known.count)  # ties: the larger step (the CD default, 100)
    ref = max(s for s in set(known) if known.count(s) == known.count(ref))
    out = {}
    for (name, m), s in zip(models.items(), steps, strict=True):
        out[name] = StepMatched(m, ref).eval() if s and s != ref else m
    return out


def serving_models(tree) -> dict[str, str]:
    """Concept name -> the shipped model that serves it in the expression ``tree``.

    Each concept is served by its own model, except a concept that a conjunction asks for at
    several values (several objects), which :data:`~conceptebm.compose.defaults.MULTI_INSTANCE`
    may route to a variant trained without the term that makes a model insist on one object.

    Example:
        >>> from conceptebm.compose.expr import parse
        >>> serving_models(parse("position=(0.5,0.5) & position=(-0.5,-0.5)"))
        {'position': 'position_cd'}
        >>> serving_models(parse("position=(0.5,0.5) & color=red"))
        {'color': 'color', 'position': 'position'}
    """
    repeated = repeated_concepts(tree)
    return {n: MULTI_INSTANCE.get(n, n) if n in repeated else n
            for n in sorted(atom_names(tree))}


def composition_settings(cm: ConceptModels, tree, *, steps: int | None = None,
                         **overrides) -> SamplerSettings:
    """Sampler settings for generating ``tree`` with the models of ``cm``.

    A conjunction of different concepts samples ``STEPS`` (100) steps: it has to satisfy
    several models from the same noise. An expression of one concept asked for at several
    values samples with its model's own settings (``MULTI_INSTANCE``: more steps let one
    object absorb the other). ``steps`` and the other keywords (``step_size``,
    ``noise_scale``; ``None`` keeps the value) override.
    """
    own = bool(repeated_concepts(tree)) and len(atom_names(tree)) == 1
    return cm.settings.replace(num_steps=steps or (None if own else STEPS), **overrides)


def load_concepts(names: Sequence[str] = ("position", "color", "shape", "size"), *,
                  device=None, calibration_images: int = 256, seed: int = 0,
                  checkpoints: Mapping[str, str] | None = None,
                  serve: Mapping[str, str] | None = None,
                  temperatures: bool | Collection[str] = False) -> ConceptModels:
    """Load shipped models (or ``checkpoints``: name -> checkpoint path, e.g. a training
    snapshot), measure their energy gaps on ``calibration_images`` real general scenes (seeded,
    so the result is reproducible) and merge their sampler settings (the most steps any of
    them recommends). ``serve`` maps a concept to another shipped model for it (e.g.
    :func:`serving_models` of an expression); the models stay keyed by concept.
    ``temperatures``: also fit each model's classifier temperature on the same scenes, for
    negation through the classifier (categorical concepts, and continuous ones that declare
    a tolerance; a model at chance gets none); ``True`` for every model, or the names of
    the concepts to fit (a position's costs 81 passes per scene: fit what is negated)."""
    from conceptebm import pretrained
    from conceptebm.checkpoints import load_energy
    from conceptebm.datasets import make_dataset

    checkpoints = dict(checkpoints or {})
    serve = dict(serve or {})
    models = {n: (load_energy(checkpoints[n], device=device) if n in checkpoints
                  else pretrained.load(serve.get(n, n), device=device)).eval() for n in names}
    for m in models.values():
        m.requires_grad_(False)
    models = _match_step_sizes(models)
    ds = make_dataset("general", size=calibration_images, seed=10_000 + seed)
    images, labels = ds.batch(torch.arange(calibration_images))
    images = images.to(device)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    scales = {n: energy_gap(m, images, labels[n].to(images.device), generator=gen)
              for n, m in models.items()}
    fitted = {}
    for n, m in models.items():
        negatable = m.concept.is_categorical or bool(m.concept.accuracy_tolerances)
        wanted = temperatures is True or (temperatures is not False and n in temperatures)
        if wanted and negatable:  # a continuous concept: over NotNear's grid
            try:
                fitted[n] = fit_classifier_temperature(m, images, labels[n].to(images.device))
            except ValueError:  # no better than chance: no classifier to negate through
                pass
    per = [DEFAULT if m.sampler is None else m.sampler for m in models.values()]
    settings = max(per, key=lambda s: s.num_steps)
    size = images.shape[-1]
    return ConceptModels(models, scales, settings, (3, size, size), fitted)


class BranchChoice(Energy):
    """Chain ``b`` follows branch ``index[b]`` of a disjunction: ``E(x)_b = E_{index[b]}(x)_b``.

    Used to sample a top-level disjunction as the mixture that eq. (6) defines.
    """

    def __init__(self, terms, index: Tensor):
        super().__init__()
        self.terms = torch.nn.ModuleList(terms)
        self.register_buffer("index", index.long(), persistent=False)

    @property
    def is_grounded(self) -> bool:  # type: ignore[override]
        return all(t.is_grounded for t in self.terms)

    def energy(self, x: Tensor) -> Tensor:
        e = torch.stack([t(x) for t in self.terms])  # (K, chains)
        return e.gather(0, self.index.to(x.device)[None]).squeeze(0)  # (chains,)

    def __repr__(self) -> str:
        return "BranchChoice(" + " | ".join(repr(t) for t in self.terms) + ")"


def choose_branches(energy: Energy, n: int, generator=None) -> Energy:
    """Sample a top-level disjunction as a mixture: each chain picks one branch.

    Eq. (6) defines p(x | c1 or c2) as the mixture ``sum_i p(x|c_i) / Z_i`` (equal weights
    under eq. 7's equal-Z assumption; weights ``exp(-log Z_i)`` with ``log_partitions``). A
    mixture is sampled exactly by choosing component i with its weight and then sampling
    p(x|c_i). Langevin on the soft-min energy instead lets each short-run chain fall into the
    branch whose energy drops fastest, which splits the mass unevenly (measured in
    ``paper/benchmarks/compose_table.py``: 0.74 / 0.26 at any temperature). Anything that is not a
    top-level disjunction is returned unchanged.
    """
    if not isinstance(energy, Or):
        return energy
    k = len(energy.terms)
    lp = energy.log_partitions
    if lp is not None and lp.dim() == 1:
        w = torch.softmax(-lp.double(), 0).float()
    else:
        w = torch.full((k,), 1.0 / k)
    gen_device = generator.device if generator is not None else "cpu"
    index = torch.multinomial(w.to(gen_device), n, replacement=True, generator=generator)
    return BranchChoice(list(energy.terms), index)


def generate_images(energy: Energy, n: int, settings: SamplerSettings,
                    image_shape: tuple[int, int, int] = (3, 32, 32), *, mixture_or: bool = True,
                    generator=None, device=None, progress: bool = False) -> Tensor:
    """``n`` images ``(n, C, H, W)`` in [0, 1] from ``energy`` (one chain per image).

    With ``mixture_or`` (default) a top-level disjunction is sampled as the mixture it
    defines (:func:`choose_branches`); ``False`` runs Langevin on the soft-min energy (eq. 8).
    """
    x0 = initial_samples((n, *image_shape), init=settings.init, bounds=settings.bounds,
                         generator=generator, device=device)  # (n, C, H, W)
    if mixture_or:
        energy = choose_branches(energy, n, generator)
    return langevin(energy, x0, num_steps=settings.num_steps, step_size=settings.step_size,
                    noise_scale=settings.noise_scale, bounds=settings.bounds,
                    generator=generator, progress=progress,
                    denoise_steps=settings.denoise_steps)


#: ``generate`` was also :func:`conceptebm.evaluate.generate` (a net and its labels); this one,
#: a composed energy, is :func:`generate_images`. The old name warns until 0.3.
MOVED = {"generate": "conceptebm.compose.generate:generate_images"}


def __getattr__(name: str):
    from conceptebm.compat import moved_attribute

    return moved_attribute(__name__, name, MOVED)

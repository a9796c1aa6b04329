"""Generation from composed concept energies with the shipped models.

:func:`load_concepts` loads shipped concept EBMs, measures each one's energy gap on real scenes
(for calibrated composition, :mod:`conceptebm.compose.calibrate`) and picks sampler settings
that suit all of them; :func:`generate` runs the one engine's Langevin sampler on a composed
energy from fresh low-frequency noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from conceptebm.compose.calibrate import energy_gap
from conceptebm.energies import ConditionalEnergy, Energy
from conceptebm.infer import langevin

__all__ = ["SamplerSettings", "ConceptModels", "load_concepts", "generate"]

IMAGE_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True)
class SamplerSettings:
    """Decoupled Langevin settings for image generation (``infer.langevin`` with noise)."""

    steps: int = 60  # Langevin steps from fresh noise (training used fewer, from the buffer)
    step_size: float = 100.0  # on the raw gradient, as in training
    noise_scale: float = 0.005  # per-step Gaussian noise std
    init: str = "smooth"  # low-frequency uniform noise

    def replace(self, **kw) -> SamplerSettings:
        return SamplerSettings(**{**self.__dict__, **{k: v for k, v in kw.items()
                                                      if v is not None}})


@dataclass
class ConceptModels:
    """Shipped concept EBMs with their energy gaps and common sampler settings."""

    models: dict[str, ConditionalEnergy]
    scales: dict[str, float] = field(default_factory=dict)
    settings: SamplerSettings = field(default_factory=SamplerSettings)
    image_shape: tuple[int, int, int] = (3, 32, 32)


def _settings_of(model) -> SamplerSettings:
    """Sampler settings from a shipped model's ``.sampler`` (``infer.langevin`` keywords)."""
    raw = dict(getattr(model, "sampler", None) or {})
    if "num_steps" in raw:
        raw["steps"] = raw.pop("num_steps")
    keys = SamplerSettings.__dataclass_fields__
    return SamplerSettings(**{k: raw[k] for k in keys if k in raw})


def load_concepts(names: Sequence[str] = ("position", "color", "shape", "size"), *,
                  device=None, calibration_images: int = 256, seed: int = 0) -> ConceptModels:
    """Load shipped models, measure their energy gaps on ``calibration_images`` real general
    scenes (seeded, so the result is reproducible) and merge their sampler settings (the most
    steps any of them recommends)."""
    from conceptebm import pretrained
    from conceptebm.datasets import make_dataset

    models = {n: pretrained.load(n).to(device).eval() for n in names}
    for m in models.values():
        m.requires_grad_(False)
    ds = make_dataset("general", size=calibration_images, seed=10_000 + seed)
    images, labels = ds.batch(torch.arange(calibration_images))
    images = images.to(device)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    scales = {n: energy_gap(m, images, labels[n].to(images.device), generator=gen)
              for n, m in models.items()}
    per = [_settings_of(m) for m in models.values()]
    settings = max(per, key=lambda s: s.steps)
    size = images.shape[-1]
    return ConceptModels(models, scales, settings, (3, size, size))


def generate(energy: Energy, n: int, settings: SamplerSettings,
             image_shape: tuple[int, int, int] = (3, 32, 32), *, generator=None,
             device=None, progress: bool = False) -> Tensor:
    """``n`` images ``(n, C, H, W)`` in [0, 1] from ``energy`` (one chain per image)."""
    return langevin(energy, (n, *image_shape), num_steps=settings.steps,
                    step_size=settings.step_size, noise_scale=settings.noise_scale,
                    init=settings.init, bounds=IMAGE_BOUNDS, generator=generator,
                    device=device, progress=progress)

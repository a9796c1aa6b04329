"""Langevin image sampling for training and evaluation, through the one inference engine.

Training negatives and test-time generations both call :func:`conceptebm.infer.langevin`
in its decoupled form (``x - step * grad E + noise * N(0, 1)``, clamped to [0, 1]); nothing
here re-implements a sampler. The energy being sampled is the trained net bound to per-chain
concept values, plus (continual learning) frozen earlier EBMs bound to theirs:
``E(x) = E_new(x|c_new) + sum_j E_j(x|c_j)`` (paper section 4.3).

The settings of both samplers come from the :class:`~conceptebm.train.TrainConfig` through
:func:`training_settings` (K steps for negatives) and :func:`eval_settings` (the test-time
generations the loop scores, and the settings every checkpoint records), both
:class:`~conceptebm.infer.SamplerSettings`, so ``sample_images(net, c, **settings)`` runs them.

Example:
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies.nets import ConvEnergyNet
    >>> net = ConvEnergyNet(Concept.continuous("position", dim=2), image_size=16, width=4)
    >>> c = torch.zeros(3, 2)
    >>> x = sample_images(net, c, num_steps=2, image_shape=(3, 16, 16))
    >>> x.shape, bool(((x >= 0) & (x <= 1)).all())
    (torch.Size([3, 3, 16, 16]), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from conceptebm.energies import ConditionalEnergy, conditioned_energy, split_labels
from conceptebm.infer import initial_samples
from conceptebm.infer.settings import DEFAULT, IMAGE_BOUNDS, SamplerSettings

__all__ = ["fresh_noise", "conditioned_energy", "sample_images", "split_labels",
           "training_settings", "eval_settings", "weights_without_grad"]


def _settings(config, num_steps: int) -> SamplerSettings:
    return SamplerSettings(num_steps=num_steps, step_size=config.step_size,
                           noise_scale=config.noise_scale, init=config.init, bounds=IMAGE_BOUNDS)


def training_settings(config) -> SamplerSettings:
    """The sampler of the training negatives: ``config.sampler_steps`` (K) Langevin steps with
    the config's step size, noise and init.

    Example:
        >>> from conceptebm.train import TrainConfig
        >>> training_settings(TrainConfig(sampler_steps=20, step_size=1.0)).num_steps
        20
    """
    return _settings(config, config.sampler_steps)


def eval_settings(config) -> SamplerSettings:
    """The test-time sampler of a training run: ``config.eval_steps`` steps from fresh noise
    with the training step size, noise and init. The loop scores its generations with it and
    records it in every checkpoint (``"sampler"``), where loaders read it back as ``.sampler``.

    Example:
        >>> from conceptebm.train import TrainConfig
        >>> eval_settings(TrainConfig(eval_steps=40)).to_dict()["num_steps"]
        40
    """
    return _settings(config, config.eval_steps)


def fresh_noise(shape: tuple[int, ...], init: str = "smooth", *, generator=None,
                device=None) -> Tensor:
    """Fresh chain starts: ``"smooth"`` (4x4 uniform noise upsampled) or ``"uniform"``."""
    return initial_samples(tuple(shape), init=init, bounds=IMAGE_BOUNDS, generator=generator,
                           device=device)


def sample_images(net: ConditionalEnergy, c: Tensor, *, num_steps: int,
                  step_size: float = DEFAULT.step_size,
                  noise_scale: float = DEFAULT.noise_scale, init: str = DEFAULT.init,
                  bounds: tuple[float, float] = IMAGE_BOUNDS, x0: Tensor | None = None,
                  image_shape: tuple[int, int, int] | None = None,
                  frozen: Sequence[ConditionalEnergy] = (), generator=None,
                  denoise_steps: int = 0) -> Tensor:
    """Run ``num_steps`` Langevin steps on E(x|c) from ``x0`` (or fresh noise); returns ``(B, C, H,
    W)`` in ``bounds`` ([0, 1]). ``c`` is ``(B, L)`` (concatenated with the frozen energies'
    labels). The sampler keywords are those of a :class:`~conceptebm.infer.SamplerSettings`:
    ``sample_images(net, c, **settings)``. It is :func:`conceptebm.evaluate.generate` (the one
    generation path) with the weights' gradients off, as a training loop wants."""
    from conceptebm.evaluate.quality import generate

    settings = SamplerSettings(num_steps=num_steps, step_size=step_size,
                               noise_scale=noise_scale, init=init, bounds=bounds,
                               denoise_steps=denoise_steps)
    with weights_without_grad([net, *frozen]):  # the chain needs grad_x only
        return generate(net, c, settings, frozen=frozen, generator=generator, x0=x0,
                        image_shape=image_shape)


@contextmanager
def weights_without_grad(modules: Sequence[torch.nn.Module]):
    """Within the block, no parameter of ``modules`` requires grad; on leaving, each gets its
    flag back. A Langevin step differentiates the energy w.r.t. ``x`` alone, and a forward
    pass through weights that require grad makes every backward also pay for their part
    (measured: a sampler step of the 32 px conv net 12 % slower); ``grad_x`` is the same.

    Example:
        >>> lin = torch.nn.Linear(2, 1)
        >>> with weights_without_grad([lin]):
        ...     lin.weight.requires_grad
        False
        >>> lin.weight.requires_grad
        True
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)

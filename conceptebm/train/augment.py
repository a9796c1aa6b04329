"""Augmentation of the real images of a training batch: pixel noise, blur, brightness and
contrast jitter, each off by default (``TrainConfig.augment_*``).

None of them moves anything in the image, so position and size labels stay true; jitter
changes shading (not hue), so leave it off for a concept read from brightness. They help a
model trained on a small set of images (a user's folder) not to learn its exact pixels, and
make it tolerant of noisy inputs. The blur and noise are those the judges are trained with
(:mod:`conceptebm.evaluate.augment`).

Example:
    >>> import torch
    >>> x = torch.rand(4, 3, 8, 8)
    >>> augment_real(x, generator=torch.Generator().manual_seed(0)) is x  # all off: untouched
    True
    >>> y = augment_real(x, noise=0.1, jitter=0.2, generator=torch.Generator().manual_seed(0))
    >>> y.shape, bool((y >= 0).all() and (y <= 1).all())
    (torch.Size([4, 3, 8, 8]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from conceptebm.evaluate.augment import add_pixel_noise, gaussian_blur

__all__ = ["augment_real", "brightness_contrast_jitter"]


def brightness_contrast_jitter(images: Tensor, amount: float, *, generator=None) -> Tensor:
    """Scale each image's brightness and its contrast (about its mean) by factors drawn from
    ``U(1 - amount, 1 + amount)``, the same for every channel; clipped to [0, 1]."""
    b = images.shape[0]
    u = torch.rand(2, b, 1, 1, 1, generator=generator, device=images.device, dtype=images.dtype)
    brightness, contrast = 1 + amount * (2 * u[0] - 1), 1 + amount * (2 * u[1] - 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return ((images - mean) * contrast + mean * brightness).clamp(0.0, 1.0)


def augment_real(images: Tensor, *, noise: float = 0.0, blur: float = 0.0, jitter: float = 0.0,
                 generator=None) -> Tensor:
    """Augment real images ``(B, C, H, W)``: jitter, then blur half of them with sigma ~
    ``U(0, blur)`` px, then add pixel noise with sigma ~ ``U(0, noise)`` per image. With every
    amount 0 the images come back untouched and no random number is drawn (seeded runs
    without augmentation are unchanged)."""
    if noise == 0 and blur == 0 and jitter == 0:
        return images
    out = images
    b = images.shape[0]
    if jitter:
        out = brightness_contrast_jitter(out, jitter, generator=generator)
    if blur:
        u = torch.rand(2, b, generator=generator, device=images.device, dtype=images.dtype)
        out = gaussian_blur(out, torch.where(u[0] < 0.5, u[1] * blur, torch.zeros_like(u[1])))
    if noise:
        sigma = noise * torch.rand(b, generator=generator, device=images.device,
                                   dtype=images.dtype)  # (B,)
        out = add_pixel_noise(out, sigma, generator=generator)
    return out

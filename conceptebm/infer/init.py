"""Initial chain states: uniform, Gaussian, or low-frequency ("smooth") noise for images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["initial_samples", "smooth_noise", "INITS"]

INITS = ("uniform", "gaussian", "smooth")


def smooth_noise(shape: tuple[int, ...], *, low: float = 0.0, high: float = 1.0,
                 resolution: int = 4, generator=None, device=None, dtype=None) -> Tensor:
    """Uniform noise at ``resolution x resolution`` upsampled bilinearly to ``(N, C, H, W)``.

    Chains started from it learn in minutes on a CPU where i.i.d. pixel noise does not: the
    energy need not first learn to denoise every pixel.
    """
    if len(shape) != 4:
        raise ValueError(f"smooth noise needs an image shape (N, C, H, W), got {shape}")
    n, c, h, w = shape
    coarse = torch.rand((n, c, resolution, resolution), generator=generator,
                        device=device, dtype=dtype or torch.get_default_dtype())
    up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return low + (high - low) * up


def initial_samples(shape: tuple[int, ...], *, init="uniform", bounds=None, generator=None,
                    device=None, dtype=None) -> Tensor:
    """Draw ``shape = (chains, *event)`` initial states by the named rule or copy a tensor."""
    if isinstance(init, Tensor):
        if init.shape[1:] != tuple(shape[1:]) or init.shape[0] not in (1, shape[0]):
            raise ValueError(f"init tensor of shape {tuple(init.shape)} does not fit {shape}")
        return init.detach().expand(shape).clone().to(device=device, dtype=dtype)
    if len(shape) < 2 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape must be (chains, *event) of positive ints, got {shape}")
    low, high = (0.0, 1.0) if bounds is None else (bounds[0], bounds[1])
    dtype = dtype or torch.get_default_dtype()
    if init == "uniform":
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return low + (high - low) * u
    if init == "gaussian":
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if init == "smooth":
        return smooth_noise(shape, low=low, high=high, generator=generator, device=device,
                            dtype=dtype)
    raise ValueError(f"unknown init {init!r}; use one of {INITS} or a tensor")

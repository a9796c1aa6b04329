"""Analytic stand-ins for a trained position EBM, for the scene-inference and CLI tests.

``SaliencyPosition`` reads a default-camera scene (``conceptebm.datasets`` with
``DEFAULT_VIEW``) with no training: pixels more colourful than the grey ground (and its grey
shadows) are "object", and the energy of a position ``c`` is minus the object mass inside a
Gaussian window around where ``c`` projects into the image. Its minimum sits on the object, an
image with two objects has two basins, and it is differentiable in ``c``, so it exercises the
same code paths as a trained network (MAE about 0.06 on default-camera scenes).
"""

import torch

from conceptebm.concepts import Concept
from conceptebm.datasets import DEFAULT_VIEW, project
from conceptebm.datasets.scene import POSITION_RANGE
from conceptebm.energies import ConditionalEnergy

POSITION = Concept.continuous("position", dim=2, low=POSITION_RANGE[0], high=POSITION_RANGE[1])


class SaliencyPosition(ConditionalEnergy):
    """E(x|c) = -scale * sum_pixels saliency(x) * window(pixel - project(c)), saliency summing
    to 1 per image; window a Gaussian of ``sigma`` pixels around the projected object centre
    (height ``z``, the middle of the size range)."""

    image_size = 32
    channels = 3

    def __init__(self, scale=60.0, sigma=1.5, z=0.55):
        super().__init__(POSITION)
        self.scale, self.sigma, self.z = scale, sigma, z

    def energy(self, x, c):  # x (B, 3, H, W), c (B, 2)
        b, _, h, w = x.shape
        chroma = x.max(dim=1).values - x.min(dim=1).values  # (B, H, W) colourfulness
        ground = chroma.flatten(1).median(dim=1).values  # (B,) the grey ground's chroma
        sal = (chroma - ground[:, None, None]).clamp_min(0)  # objects, not grey shadows
        sal = sal / sal.flatten(1).sum(1).clamp_min(1e-8)[:, None, None]
        pts = torch.cat([c, torch.full_like(c[:, :1], self.z)], dim=1)[:, None]  # (B, 1, 3)
        view = torch.tensor(DEFAULT_VIEW, dtype=c.dtype, device=c.device).expand(b, 4)
        col, row = project(pts, view, h)[:, 0].unbind(-1)  # (B,) each
        rows = torch.arange(h, dtype=c.dtype, device=c.device)
        cols = torch.arange(w, dtype=c.dtype, device=c.device)
        win = torch.exp(-((rows[None, :, None] - row[:, None, None]) ** 2
                          + (cols[None, None, :] - col[:, None, None]) ** 2)
                        / (2 * self.sigma**2))  # (B, H, W)
        return -self.scale * (sal * win).flatten(1).sum(1)

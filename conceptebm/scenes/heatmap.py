"""A supervised, detector-free baseline for counting objects: a position heatmap net.

:class:`HeatmapNet` is a small fully convolutional net (CoordConv input, one stride-2 conv,
3x3 convs) that maps an image to a half-resolution map of two things per cell: the logit that
an object's centre projects into that cell, and the object's ground position ``(x, y)`` read
there. :func:`fit_heatmap` trains it on **single-object** scenes (the ``position`` dataset, as
the position EBMs were), for a budget of process CPU seconds: binary cross entropy of the
logits against a Gaussian blob (one cell wide) at the cell of the object's projected centre
(the default camera, :func:`~conceptebm.datasets.scene.project`), and an L1 loss on the
position read in the 3x3 cells around it. :func:`heatmap_candidates` turns its map into
candidate objects, local maxima of the probability map lowest score first (score ``= -p``),
so that the same count rule as the EBM's (:func:`~conceptebm.scenes.objects.counts_at`, a
threshold fitted on validation scenes) decides how many there are.

Example:
    >>> net = HeatmapNet(width=4)
    >>> logit, xy = net(torch.rand(2, 3, 32, 32))
    >>> tuple(logit.shape), tuple(xy.shape)
    ((2, 16, 16), (2, 2, 16, 16))
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conceptebm.scenes.objects import Candidates

__all__ = ["HeatmapNet", "fit_heatmap", "heatmap_candidates"]


class HeatmapNet(nn.Module):
    """``forward(images (B, 3, S, S)) -> (logits (B, S/2, S/2), xy (B, 2, S/2, S/2))``."""

    def __init__(self, *, image_size: int = 32, width: int = 32, layers: int = 4):
        super().__init__()
        self.image_size, self.width, self.layers = int(image_size), int(width), int(layers)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, image_size),
                                torch.linspace(-1, 1, image_size), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        body = [nn.Conv2d(5, width, 4, stride=2, padding=1), nn.SiLU()]
        for _ in range(layers):
            body += [nn.Conv2d(width, width, 3, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*body)
        self.head = nn.Conv2d(width, 3, 1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat((images * 2 - 1, self.coords.expand(images.shape[0], -1, -1, -1)), 1)
        out = self.head(self.body(x))
        return out[:, 0], torch.tanh(out[:, 1:])


def _targets(position: Tensor, size: Tensor, cells: int, image_size: int):
    """Gaussian blobs ``(B, cells, cells)`` at each object's projected centre and the
    ``(B, cells, cells)`` mask of the 3x3 cells around it."""
    from conceptebm.datasets.scene import DEFAULT_VIEW, project

    b = position.shape[0]
    pts = torch.cat((position, size.reshape(b, 1)), 1)[:, None, :]  # centre height ~ size
    px = project(pts, torch.tensor([DEFAULT_VIEW]).expand(b, 4), image_size)[:, 0]  # (B, 2)
    cell = (px + 0.5) / (image_size / cells) - 0.5  # cell coordinates (col, row)
    j = torch.arange(cells, dtype=torch.float32)
    col, row = cell[:, 0, None, None], cell[:, 1, None, None]  # (B, 1, 1)
    d2 = (j[None, None, :] - col) ** 2 + (j[None, :, None] - row) ** 2  # (B, rows, cols)
    return torch.exp(-d2 / 2), d2 <= 2.0


def fit_heatmap(*, seconds: float = 300.0, seed: int = 0, n_images: int = 20_000,
                batch_size: int = 64, lr: float = 2e-3, width: int = 32,
                image_size: int = 32, progress: bool = False) -> HeatmapNet:
    """Train a :class:`HeatmapNet` on ``n_images`` single-object ``position`` scenes
    (``make_dataset("position", seed=seed)``) for ``seconds`` of process CPU time; its
    ``record`` says what it got."""
    from conceptebm.datasets import make_dataset

    torch.manual_seed(seed)
    ds = make_dataset("position", size=n_images, seed=seed, image_size=image_size)
    images, labels = ds.batch(range(n_images))
    net = HeatmapNet(image_size=image_size, width=width)
    cells = image_size // 2
    target, near = _targets(labels["position"], labels["size"], cells, image_size)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start, steps = time.process_time(), 0
    while time.process_time() - start < seconds:
        idx = torch.randint(n_images, (batch_size,), generator=gen)
        logit, xy = net(images[idx])
        pos_weight = torch.tensor(float(cells * cells))  # one object cell among cells^2
        heat = F.binary_cross_entropy_with_logits(logit, target[idx], pos_weight=pos_weight)
        m = near[idx]
        err = (xy - labels["position"][idx][:, :, None, None]).abs().sum(1)  # (B, r, c)
        loss = heat + (err * m).sum() / m.sum().clamp_min(1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if progress and steps % 500 == 0:
            print(f"heatmap net: step {steps}, loss {loss.item():.4f}")
    net.eval()
    net.record = {"dataset": "position", "seed": seed, "n_images": n_images,
                  "steps": steps, "cpu_s": time.process_time() - start,
                  "batch_size": batch_size, "lr": lr, "width": width}
    return net


def heatmap_candidates(net: HeatmapNet, images: Tensor, max_objects: int = 8) -> Candidates:
    """The ``max_objects + 1`` highest local maxima of each image's probability map as
    :class:`~conceptebm.scenes.objects.Candidates` (``score = -p``, lowest first; ``energy``
    holds the logit), each at the position read in its cell."""
    with torch.no_grad():
        logit, xy = net(images)
    p = torch.sigmoid(logit)  # (B, r, c)
    peak = (p >= F.max_pool2d(p[:, None], 3, stride=1, padding=1)[:, 0]) & (p > 0)
    flat = torch.where(peak, p, torch.zeros_like(p)).flatten(1)  # (B, r * c)
    m = max_objects + 1
    top, idx = flat.topk(m, dim=1)
    pos = xy.flatten(2).gather(2, idx[:, None, :].expand(-1, 2, -1)).transpose(1, 2)
    score = torch.where(top > 0, -top, torch.full_like(top, float("inf")))
    return Candidates(pos, logit.flatten(1).gather(1, idx), score)

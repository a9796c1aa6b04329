"""A tiny synthetic stand-in for ``make_dataset``: flat 2-D blobs, fast and label-exact.

It follows the dataset interface the judges train on (``len``, ``.concepts``,
``.batch(indices)``, ``(image, labels)`` items) so the training loop and I/O can be tested
without the 3-D renderer.
"""

import pytest
import torch

from conceptebm.concepts import Concept

PALETTE = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9]])  # red green blue
SHAPES = ("sphere", "cube", "cylinder")


class Blobs(torch.utils.data.Dataset):
    """Item i is a pure function of (seed, i): one coloured disc / square / bar on grey."""

    def __init__(self, size: int, seed: int = 0, image_size: int = 16):
        self.size, self.seed, self.image_size = size, seed, image_size
        self.palette = PALETTE
        self.concepts = {
            "position": Concept.continuous("position", dim=2, low=-1.0, high=1.0),
            "size": Concept.continuous("size", dim=1, low=0.5, high=1.0),
            "color": Concept.categorical("color", ["red", "green", "blue"]),
            "shape": Concept.categorical("shape", SHAPES),
        }

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        images, labels = self.batch(torch.tensor([i]))
        return images[0], {k: v[0] for k, v in labels.items()}

    def batch(self, indices):
        indices = torch.as_tensor(indices).long()
        rows = []
        for i in indices.tolist():  # per-item generator: item i depends only on (seed, i)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            rows.append(torch.rand(6, generator=g))
        u = torch.stack(rows)  # (B, 6)
        pos = u[:, :2] * 1.6 - 0.8  # keep the blob inside the frame
        size = 0.5 + 0.5 * u[:, 2:3]
        color = (u[:, 3] * 3).long().clamp_max(2)
        shape = (u[:, 4] * 3).long().clamp_max(2)
        s = self.image_size
        grid = (torch.arange(s) + 0.5) / s * 2 - 1  # pixel centres in [-1, 1]
        dx = grid[None, None, :] - pos[:, 0, None, None]  # (B, 1, S)
        dy = -grid[None, :, None] - pos[:, 1, None, None]  # (B, S, 1), y points up
        r = 0.4 * size[:, :, None]  # (B, 1, 1)
        disc = dx**2 + dy**2 < r**2
        square = (dx.abs() < r) & (dy.abs() < r)
        bar = (dx.abs() < 0.5 * r) & (dy.abs() < 1.3 * r)
        mask = torch.stack([disc, square, bar], 1)[torch.arange(len(u)), shape]  # (B, S, S)
        rgb = PALETTE[color][:, :, None, None]  # (B, 3, 1, 1)
        images = torch.where(mask[:, None], rgb, torch.full_like(rgb, 0.5))
        return images, {"position": pos, "size": size, "color": color, "shape": shape}


@pytest.fixture
def blobs():
    return Blobs

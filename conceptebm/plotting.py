"""Plotting helpers shared by the commands, benchmarks and notebooks."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["save_grid", "save_figure"]


def save_grid(images: torch.Tensor, path, *, nrow: int = 8, title: str | None = None,
              scale: float = 1.0) -> Path:
    """Save images ``(N, 3, H, W)`` in [0, 1] as a matplotlib PNG grid, ``nrow`` per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    ncol = max(1, min(nrow, n))
    rows = -(-n // ncol)
    pad = torch.ones(rows * ncol - n, 3, h, w)
    tiles = torch.cat((images.detach().cpu().float().clamp(0, 1), pad))  # (rows*ncol, 3, H, W)
    tiles = torch.nn.functional.pad(tiles, (1, 1, 1, 1), value=1.0)
    grid = tiles.reshape(rows, ncol, 3, h + 2, w + 2).permute(0, 3, 1, 4, 2)
    grid = grid.reshape(rows * (h + 2), ncol * (w + 2), 3).numpy()
    fig, ax = plt.subplots(figsize=(max(2.0, ncol * scale * w / 32),
                                    max(2.0, rows * scale * h / 32) + (0.4 if title else 0)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def save_figure(fig, path, *, dpi: int = 100) -> Path:
    """Lay out ``fig`` (``tight_layout``), write it to ``path`` (folders made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

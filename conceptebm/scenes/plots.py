"""Matplotlib figures for concept inference: an image beside its energy map.

Used by ``conceptebm energy-map``, ``paper/benchmarks/inference.py`` and the notebooks, so every
energy map in the project is drawn the same way: the first concept coordinate (x) runs to the
right, the second (y) up, low energy dark, the same orientation as a default-camera image.

Example:
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from conceptebm.concepts import Concept
    >>> pos = Concept.continuous("position", dim=2)
    >>> fig, (a, b) = plt.subplots(1, 2)
    >>> _ = plot_energy_map(b, torch.randn(9, 9), pos, marks=torch.tensor([[0.5, -0.5]]))
    >>> plt.close(fig)
"""

from __future__ import annotations

import torch
from torch import Tensor

from conceptebm.concepts import Concept

__all__ = ["show_image", "plot_energy_map", "plot_energy_curve", "image_and_map_figure"]


def show_image(ax, image: Tensor, title: str | None = None) -> None:
    """Draw a ``(3, H, W)`` image in [0, 1] without axes."""
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(),
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


#: A map drawn with more points a side is min-pooled to at most this many first: a figure
#: shows no more (a 2000 x 2000 map drawn whole took 300 MB more memory than the map itself),
#: and the minimum of each block keeps every basin visible.
MAX_DRAWN = 1000


def plot_energy_map(ax, emap: Tensor, concept: Concept, *, marks: Tensor | None = None,
                    truth: Tensor | None = None, title: str | None = None,
                    colorbar: bool = True):
    """Draw an ``(n, n)`` map of a 2-D concept (``emap[i, j]`` at ``(v[i], v[j])``).

    ``marks`` ``(k, 2)`` are drawn as white crosses (estimates), ``truth`` ``(k, 2)`` as
    green circles. A map of more than :data:`MAX_DRAWN` points a side is drawn min-pooled to
    at most that many. Returns the image artist.
    """
    if emap.dim() != 2 or emap.shape[0] != emap.shape[1]:
        raise ValueError(f"emap must be a square (n, n) map, got {tuple(emap.shape)}")
    lo, hi = concept.low, concept.high
    emap = emap.detach()
    if emap.shape[0] > MAX_DRAWN:  # blocks of k x k points -> their minimum
        k = -(-emap.shape[0] // MAX_DRAWN)
        emap = -torch.nn.functional.max_pool2d(-emap[None, None].float(), k, ceil_mode=True)[0, 0]
    im = ax.imshow(emap.double().T.cpu().numpy(), origin="lower",
                   extent=(lo, hi, lo, hi), cmap="magma", interpolation="nearest")
    for pts, style in ((truth, dict(marker="o", s=70, facecolors="none", edgecolors="lime",
                                    linewidths=1.5, label="truth")),
                       (marks, dict(marker="x", s=60, c="white", linewidths=2,
                                    label="estimate"))):
        if pts is not None:
            pts = torch.as_tensor(pts).reshape(-1, 2).cpu()
            ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), **style)
    ax.set_xlabel(f"{concept.name} x")
    ax.set_ylabel(f"{concept.name} y")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="energy (low = likely)")
    return im


def plot_energy_curve(ax, energies: Tensor, concept: Concept, values: Tensor | None = None,
                      *, mark: float | None = None, title: str | None = None) -> None:
    """Energies of a 1-D concept (a line over ``values``) or of every category (bars)."""
    e = energies.detach().double().cpu()
    if concept.is_categorical:
        ax.bar(range(len(e)), e.numpy(), color="tab:purple")
        ax.set_xticks(range(len(e)), concept.values, rotation=45, fontsize=8)
        ax.axhline(float(e.min()), color="grey", lw=0.5)
    else:
        ax.plot(values.detach().cpu().reshape(-1).numpy(), e.numpy(), color="tab:purple")
        ax.set_xlabel(concept.name)
        if mark is not None:
            ax.axvline(mark, color="k", ls="--", lw=1)
    ax.set_ylabel("energy (low = likely)")
    if title:
        ax.set_title(title, fontsize=9)


def image_and_map_figure(images: Tensor, maps: Tensor, concept: Concept, *,
                         marks: Tensor | None = None, truth: Tensor | None = None,
                         titles: list[str] | None = None):
    """A figure with one row per image: the image, then its map. ``images (B, 3, H, W)``,
    ``maps (B, n, n)``, ``marks`` / ``truth`` ``(B, k, 2)``. Returns the figure."""
    import matplotlib.pyplot as plt

    b = images.shape[0]
    fig, axes = plt.subplots(b, 2, figsize=(7, 3.2 * b), squeeze=False)
    for i in range(b):
        show_image(axes[i, 0], images[i], titles[i] if titles else None)
        plot_energy_map(axes[i, 1], maps[i], concept,
                        marks=None if marks is None else marks[i],
                        truth=None if truth is None else truth[i])
    fig.tight_layout()
    return fig

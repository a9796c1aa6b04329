"""Images that hold no scene of the kind this package renders: to check "no object found".

A reader's refusal of foreign images has to be chosen on some foreign images and then tested
on others. :func:`nonscene_images` gives the validation side from files that ship inside
installed packages (nothing is downloaded):

* ``photos``: the photographs and pictures in matplotlib's sample data (a portrait, a logo, a
  packshot) and scikit-learn's sample images (a temple, a flower), whole and as random crops,
  and two elevation maps from matplotlib's sample data drawn in three colour maps;
* ``drawings``: text, rectangles, chessboards and smooth fractal noise drawn on random
  backgrounds;
* ``digits``: scikit-learn's 8x8 handwritten digits, dark on light and light on dark.

Every image is scaled to ``size x size`` (bilinear with antialiasing, aspect ratio not kept, as
``conceptebm infer --resize`` does). The test side, never used to choose anything, is the
sample data of scikit-image (``benchmarks/photographs.py``).

Example:
    >>> sets = nonscene_images(16, seed=0)
    >>> sorted(sets), tuple(sets["digits"].shape)
    (['digits', 'drawings', 'photos'], (90, 3, 16, 16))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conceptebm.datasets.images import resize_image

__all__ = ["nonscene_images", "scaled"]

CROPS = 12  # random crops of each photograph
DRAWINGS = 60


def scaled(array, size: int) -> Tensor:
    """An ``(H, W)`` or ``(H, W, C)`` array in [0, 1] as a ``(3, size, size)`` image (grey
    repeated, alpha dropped; :func:`~conceptebm.datasets.images.resize_image`)."""
    t = torch.as_tensor(np.asarray(array, dtype=np.float32))
    if t.dim() == 2:
        t = t[..., None]
    t = t[..., :3].expand(-1, -1, 3) if t.shape[-1] == 1 else t[..., :3]
    return resize_image(t.permute(2, 0, 1).contiguous(), size)


def _pictures() -> list[np.ndarray]:
    import matplotlib
    import sklearn
    from PIL import Image

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    skl = Path(sklearn.__file__).parent / "datasets" / "images"
    files = [sample / "grace_hopper.jpg", sample / "logo2.png",
             sample / "Minduka_Present_Blue_Pack.png", skl / "china.jpg", skl / "flower.jpg"]
    out = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files]
    for f, key in ((sample / "topobathy.npz", "topo"),
                   (sample / "jacksboro_fault_dem.npz", "elevation")):
        z = np.load(f)[key].astype(np.float32)
        z = (z - z.min()) / (z.max() - z.min())
        out += [matplotlib.colormaps[c](z)[..., :3].astype(np.float32)
                for c in ("gray", "terrain", "viridis")]
    return out


def _photos(size: int, rng: np.random.Generator) -> Tensor:
    out = []
    for a in _pictures():
        out.append(scaled(a, size))
        h, w = a.shape[:2]
        for _ in range(CROPS):
            ch, cw = int(h * rng.uniform(0.2, 0.7)), int(w * rng.uniform(0.2, 0.7))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            out.append(scaled(a[y:y + ch, x:x + cw], size))
    return torch.stack(out)


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _drawing(kind: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    side = 128
    if kind == 2:  # a chessboard in a colour and its complement
        cells = int(rng.integers(4, 16))
        a = ((np.indices((side, side)) // (side // cells)).sum(0) % 2).astype(np.float32)
        col = rng.random(3).astype(np.float32)
        return np.stack([a * col[i] + (1 - a) * (1 - col[i]) for i in range(3)], -1)
    if kind == 3:  # smooth fractal noise: five octaves of bilinearly scaled Gaussian noise
        z = torch.zeros(3, side, side)
        for octave in range(5):
            g = torch.as_tensor(rng.standard_normal((1, 3, 4 << octave, 4 << octave)),
                                dtype=torch.float32)
            z += F.interpolate(g, size=(side, side), mode="bilinear",
                               align_corners=False)[0] / (octave + 1)
        z = (z - z.min()) / (z.max() - z.min())
        return z.permute(1, 2, 0).numpy()
    im = Image.new("RGB", (side, side), _colour(rng))
    draw = ImageDraw.Draw(im)
    if kind == 0:  # lines of capital letters
        for _ in range(int(rng.integers(3, 12))):
            text = "".join(chr(int(c)) for c in rng.integers(65, 91, 6))
            draw.text((int(rng.integers(0, 100)), int(rng.integers(0, 110))), text,
                      fill=_colour(rng))
    else:  # rectangles
        for _ in range(int(rng.integers(2, 8))):
            x0, y0 = (int(v) for v in rng.integers(0, 100, 2))
            draw.rectangle([x0, y0, x0 + int(rng.integers(5, 40)), y0 + int(rng.integers(5, 40))],
                           fill=_colour(rng))
    return np.asarray(im, dtype=np.float32) / 255


def _digits(size: int) -> Tensor:
    from sklearn.datasets import load_digits

    d = load_digits().images[:60] / 16.0
    return torch.stack([scaled(1 - a, size) for a in d] + [scaled(a, size) for a in d[:30]])


def nonscene_images(size: int = 32, seed: int = 0) -> dict[str, Tensor]:
    """``{"photos", "drawings", "digits"}``: ``(n, 3, size, size)`` images in [0, 1] that hold
    no rendered scene (see the module docstring); ``seed`` draws the crops and drawings."""
    rng = np.random.default_rng(seed)
    photos = _photos(size, rng)
    drawings = torch.stack([scaled(_drawing(k % 4, rng), size) for k in range(DRAWINGS)])
    return {"photos": photos, "drawings": drawings, "digits": _digits(size)}

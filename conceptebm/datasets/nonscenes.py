"""Images that hold no scene of the kind this package renders: to check "no object found".

A reader's refusal of foreign images has to be chosen on some foreign images and then tested
on others. :func:`nonscene_images` gives the validation side from files that ship inside
installed packages (nothing is downloaded):

* ``photos``: the photographs and pictures in matplotlib's sample data (a portrait, a logo, a
  packshot) and scikit-learn's sample images (a temple, a flower), whole and as random crops,
  and two elevation maps from matplotlib's sample data drawn in three colour maps;
* ``drawings``: text, rectangles, chessboards and smooth fractal noise drawn on random
  backgrounds;
* ``digits``: scikit-learn's 8x8 handwritten digits, dark on light and light on dark;
* ``grey_photos``: the same photographs and maps in grey, whole and as crops, some blurred
  (micrographs, scans and night skies are grey);
* ``patches``: small crops of them (5-20 % of the side), half in grey: surfaces, not scenes;
* ``textures``: procedural textures: grain (noise at one scale), gravel (discs of random grey),
  brick walls, pages of text, bright blobs on a dark field, and stripes;
* ``tinted_textures``: the same kinds of texture in one colour all over (wood, stone, cloth
  and paper are textures in a tint): their grey level times a colour of random hue and
  saturation 0.2-0.8.

Every image is scaled to ``size x size`` (bilinear with antialiasing, aspect ratio not kept, as
``conceptebm infer --resize`` does). The test sides, never used to choose anything, are real
photographs, textures and scientific images from other packages (``benchmarks/photographs.py``,
``benchmarks/get_photographs.py``).

Example:
    >>> sets = nonscene_images(16, seed=0)
    >>> sorted(sets)
    ['digits', 'drawings', 'grey_photos', 'patches', 'photos', 'textures', 'tinted_textures']
    >>> tuple(sets["digits"].shape)
    (90, 3, 16, 16)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conceptebm.datasets.images import gaussian_blur, resize_image

__all__ = ["nonscene_images", "scaled"]

CROPS = 12  # random crops of each photograph
GREY_CROPS = 6  # grey crops of each
PATCHES = 8  # small crops of each
DRAWINGS = 60
TEXTURES = 120
TINTED = 180
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


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


def _photos(pictures: list[np.ndarray], size: int, rng: np.random.Generator) -> Tensor:
    out = []
    for a in pictures:
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


def _grey(a: np.ndarray) -> np.ndarray:
    return a[..., :3] @ _LUMA


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A grey ``(H, W)`` array blurred by a Gaussian of ``sigma`` px (edges replicated)."""
    return gaussian_blur(torch.as_tensor(np.ascontiguousarray(a))[None, None], sigma)[0, 0].numpy()


def _crop(a: np.ndarray, rng: np.random.Generator, low: float, high: float,
          square: bool = False) -> np.ndarray:
    h, w = a.shape[:2]
    ch, cw = int(h * rng.uniform(low, high)), int(w * rng.uniform(low, high))
    if square:
        ch = cw = max(2, int(min(h, w) * rng.uniform(low, high)))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return a[y:y + ch, x:x + cw]


def _grey_photos(pictures: list[np.ndarray], size: int, rng: np.random.Generator) -> Tensor:
    out = []
    for a in pictures:
        g = _grey(a)
        out.append(scaled(g, size))
        for _ in range(GREY_CROPS):
            c = _crop(g, rng, 0.15, 0.7)
            out.append(scaled(_blur(c, rng.uniform(1, 6)) if rng.random() < 0.4 else c, size))
    return torch.stack(out)


def _patches(pictures: list[np.ndarray], size: int, rng: np.random.Generator) -> Tensor:
    out = []
    for a in pictures:
        for _ in range(PATCHES):
            c = _crop(a, rng, 0.05, 0.2, square=True)
            out.append(scaled(_grey(c) if rng.random() < 0.5 else c, size))
    return torch.stack(out)


def _texture(kind: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    side = 128
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    if kind == 0:  # grain: Gaussian noise at one scale, grey or faintly tinted
        cells = int(rng.integers(8, 64))
        g = torch.as_tensor(rng.standard_normal((1, 1, cells, cells)), dtype=torch.float32)
        z = F.interpolate(g, size=(side, side), mode="bicubic", align_corners=False)[0, 0].numpy()
        z = 0.5 + rng.uniform(0.05, 0.25) * z / (z.std() + 1e-6)
        return np.clip(z[..., None] * (1 + rng.uniform(-0.15, 0.15, 3)), 0, 1).astype(np.float32)
    if kind == 1:  # gravel: discs of random grey on a grey background, sometimes blurred
        bg = rng.uniform(0.1, 0.9)
        im = Image.new("L", (side, side), int(bg * 255))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(20, 300))):
            r, (x, y) = rng.uniform(1.5, 12), rng.uniform(0, side, 2)
            draw.ellipse([x - r, y - r, x + r, y + r],
                         fill=int(np.clip(bg + rng.normal(0, 0.25), 0, 1) * 255))
        a = np.asarray(im, dtype=np.float32) / 255
        return _blur(a, rng.uniform(0.5, 2)) if rng.random() < 0.5 else a
    if kind == 2:  # a brick wall: offset rows of bricks, grey or coloured, between mortar lines
        bh, bw = int(rng.integers(4, 20)), int(rng.integers(10, 40))
        base = rng.uniform(0.2, 0.8, 3) if rng.random() < 0.5 else np.full(3, rng.uniform(0.2, 0.8))
        a = np.full((side, side, 3), rng.uniform(0.3, 0.9), np.float32)
        for r in range(0, side, bh):
            off = (r // bh % 2) * bw // 2
            for c in range(-bw, side, bw):
                a[r + 1:r + bh, max(c + off + 1, 0):max(c + off + bw, 0)] = np.clip(
                    base + rng.normal(0, 0.05), 0, 1)
        return np.clip(a + rng.normal(0, rng.uniform(0, 0.08), a.shape), 0, 1).astype(np.float32)
    if kind == 3:  # a page: lines of dark text on light paper
        im = Image.new("L", (side, side), int(rng.uniform(0.75, 1) * 255))
        draw = ImageDraw.Draw(im)
        for y in range(2, side - 8, int(rng.integers(8, 16))):
            text = "".join(chr(int(c)) if c != 91 else " " for c in rng.integers(65, 92, 30))
            draw.text((int(rng.integers(0, 10)), y), text.lower() if rng.random() < 0.7 else text,
                      fill=int(rng.uniform(0, 0.3) * 255))
        return np.asarray(im, dtype=np.float32) / 255
    if kind == 4:  # a dark field with bright soft blobs (a moon, stars, cells), or inverted
        a = np.full((side, side), rng.uniform(0, 0.3), np.float32)
        for _ in range(int(rng.integers(1, 12))):
            r, (cx, cy) = rng.uniform(2, 40), rng.uniform(0, side, 2)
            a += rng.uniform(0.2, 0.8) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        a = np.clip(a + rng.normal(0, rng.uniform(0, 0.05), a.shape), 0, 1)
        return 1 - a if rng.random() < 0.3 else a
    # stripes or fibres at one orientation, their phase wandering along the rows
    th, f = rng.uniform(0, np.pi), rng.uniform(0.05, 0.5)
    wander = rng.normal(0, 1, (side, side)).cumsum(1) * 0.05
    z = np.sin((xx * np.cos(th) + yy * np.sin(th)) * f + wander)
    return np.clip(0.5 + rng.uniform(0.1, 0.4) * z, 0, 1).astype(np.float32)


def _tinted(kind: int, rng: np.random.Generator) -> np.ndarray:
    import colorsys

    a = _texture(kind, rng)
    grey = _grey(a) if a.ndim == 3 else a
    tint = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.8), 1.0),
                    dtype=np.float32)
    return np.clip(grey[..., None] * tint * rng.uniform(0.8, 1.3), 0, 1).astype(np.float32)


def _digits(size: int) -> Tensor:
    from sklearn.datasets import load_digits

    d = load_digits().images[:60] / 16.0
    return torch.stack([scaled(1 - a, size) for a in d] + [scaled(a, size) for a in d[:30]])


def nonscene_images(size: int = 32, seed: int = 0) -> dict[str, Tensor]:
    """``{"photos", "drawings", "digits", "grey_photos", "patches", "textures",
    "tinted_textures"}``: ``(n, 3, size, size)`` images in [0, 1] that hold no rendered scene
    (see the module docstring); ``seed`` draws the crops, drawings and textures (each set is a
    stream of its own: adding a set leaves the others as they were, seed for seed)."""
    rng = np.random.default_rng(seed)
    pictures = _pictures()  # read once, used by three sets
    photos = _photos(pictures, size, rng)
    drawings = torch.stack([scaled(_drawing(k % 4, rng), size) for k in range(DRAWINGS)])
    more = np.random.default_rng([seed, 1])  # streams of their own: the first three unchanged
    tinted = np.random.default_rng([seed, 2])
    return {"photos": photos, "drawings": drawings, "digits": _digits(size),
            "grey_photos": _grey_photos(pictures, size, more),
            "patches": _patches(pictures, size, more),
            "textures": torch.stack([scaled(_texture(k % 6, more), size)
                                     for k in range(TEXTURES)]),
            "tinted_textures": torch.stack([scaled(_tinted(k % 6, tinted), size)
                                            for k in range(TINTED)])}

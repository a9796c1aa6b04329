"""The one image-file reader, ``read_image(path) -> (3, H, W)`` floats in [0, 1], and its
writer, ``write_pngs(images, paths)``.

Used by ``conceptebm infer`` (the images a user asks about) and by
:func:`conceptebm.datasets.load_images` (a user's labelled folder), so both see the same pixels.
Whatever the file's mode, the result is RGB in [0, 1] at the file's full precision:

* 8-bit RGB, grayscale (``L``), bilevel (``1``), palette (``P``), CMYK / YCbCr: as shown;
  grey levels are repeated over the three channels.
* 16-bit grayscale (``I;16``, read by Pillow as integers): divided by 65535. (A plain
  ``convert("RGB")`` clips those integers at 255, so such a file used to read as all white.)
* 16-bit RGB / RGBA: Pillow keeps the high byte of each channel, i.e. 8-bit precision.
* Transparency (RGBA, LA, a palette or grey image with a transparent colour) is
  **composited on white**, as an image viewer shows the file on a white page: a pixel of colour
  ``c`` and opacity ``a`` reads ``a * c + (1 - a)``. Dropping the alpha instead would expose the
  colours hidden under transparent pixels, which are arbitrary (often black).

Errors are :class:`ImageError` (a ``ValueError``) naming the file and the fix.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grey16.png"
    >>> Image.fromarray(np.full((2, 3), 65535, np.uint16)).save(path)  # 16-bit white
    >>> x = read_image(path)
    >>> x.shape, x.dtype, float(x.min()), float(x.max())
    (torch.Size([3, 2, 3]), torch.float32, 1.0, 1.0)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_image", "resize_image", "gaussian_blur", "write_pngs", "ImageError"]

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_FIX = "re-save it as an 8-bit RGB PNG (e.g. with Pillow: Image.open(p).convert('RGB').save(q))"


class ImageError(ValueError):
    """An image file is missing or cannot be read; the message names the file and the fix."""


def _grey16(im, p: Path) -> Tensor:
    a = np.asarray(im)  # (H, W) integers
    if im.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
        raise ImageError(f"{p}: a 32-bit integer image with values in [{a.min()}, {a.max()}] "
                         f"has no known white level; {_FIX}")
    # float32 division of exact integers: a 16-bit v * 257 reads exactly as the 8-bit v / 255
    g = torch.from_numpy(a.astype(np.float32)) / 65535.0  # (H, W)
    return g.expand(3, *g.shape).contiguous()  # (3, H, W)


def _on_white(rgba: np.ndarray) -> Tensor:
    x = torch.from_numpy(rgba.astype(np.float32))  # (H, W, 4), integers 0..255
    c, a = x[..., :3], x[..., 3:]
    # (c a + 255 (255 - a)) / 255^2: exact integers over one division; a = 255 gives c / 255
    return ((c * a + 255.0 * (255.0 - a)) / 65025.0).permute(2, 0, 1).contiguous()


def read_image(path: str | os.PathLike) -> Tensor:
    """The image file ``path`` as float32 ``(3, H, W)`` in [0, 1] (see the module notes for
    16-bit, palette and transparent images; transparency is composited on white).

    Raises :class:`ImageError` for a missing path, a folder, or a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: {p}; check the path (relative paths start in "
                         f"{Path.cwd()})")
    if p.is_dir():
        raise ImageError(f"{p} is a folder; give image files (e.g. {p}/*.png)")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in _SIXTEEN_BIT or im.mode == "I":
                return _grey16(im, p)
            if im.mode == "F":
                raise ImageError(f"{p}: a floating-point image has no defined pixel range; "
                                 f"{_FIX}")
            if im.mode in _WITH_ALPHA or "transparency" in im.info:
                return _on_white(np.asarray(im.convert("RGBA")))
            rgb = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageError(f"cannot read image {p} ({err}); is it an image file? "
                         f"{_FIX}") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0  # (3, H, W)


def resize_image(img: Tensor, size: int | None) -> Tensor:
    """``img (3, H, W)`` or ``(n, 3, H, W)`` in [0, 1] at ``size x size`` (bilinear with
    antialiasing, aspect ratio not kept, clamped to [0, 1]; unchanged at that size already or
    for ``size=None``): what ``--resize`` does to every image."""
    if size is None or tuple(img.shape[-2:]) == (size, size):
        return img
    batch = img if img.dim() == 4 else img[None]
    out = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear",
                                          antialias=True, align_corners=False).clamp(0, 1)
    return out if img.dim() == 4 else out[0]


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of every channel of ``images (B, C, H, W)`` (a separable kernel of
    radius ``ceil(3 sigma)``, edges replicated)."""
    import math

    import torch.nn.functional as F

    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=images.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(images.device)
    b, c, h, w = images.shape
    x = F.pad(images.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(b * c, 1, 1, 1), groups=b * c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(b * c, 1, 1, 1), groups=b * c)
    return x.reshape(b, c, h, w)


def write_pngs(images: Tensor, paths) -> None:
    """Write ``images (n, 3, H, W)`` in [0, 1] as 8-bit RGB PNGs, one per path (rounded to the
    nearest level, so :func:`read_image` reads each pixel back within 1/510).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> x = torch.rand(1, 3, 4, 5)
        >>> write_pngs(x, [path])
        >>> bool((read_image(path) - x[0]).abs().max() <= 1 / 510 + 1e-6)
        True
    """
    from PIL import Image

    paths = list(paths)
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] != len(paths):
        raise ValueError(f"write_pngs needs images (n, 3, H, W) and n paths, got "
                         f"{tuple(images.shape)} and {len(paths)} paths")
    arr = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.permute(0, 2, 3, 1).numpy()  # (n, H, W, 3)
    for a, path in zip(arr, paths, strict=True):
        Image.fromarray(np.ascontiguousarray(a)).save(path)

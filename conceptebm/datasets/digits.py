"""scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes; no download) as a
user's ``.npz``, so they train through the same ``--data`` path as anyone's images.

    conceptebm make-data digits -o digits.npz                      # 8x8
    conceptebm make-data digits -o digits16.npz --image-size 16    # upsampled

The grey levels 0..16 become [0, 1] (ink is bright), copied to three channels; the label is
``digit``, a categorical concept over the names ``"0"``..``"9"`` declared inside the file.
``--image-size`` (a power of two >= 8) upsamples bilinearly. Needs scikit-learn (the ``dev``
extra).

Example:
    >>> ds = digits_dataset()
    >>> len(ds), tuple(ds.images.shape[1:]), ds.concepts["digit"].dim
    (1797, (3, 8, 8), 10)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from conceptebm.concepts import Concept
from conceptebm.datasets.user import LabelledImages, save_npz

__all__ = ["DIGIT", "digits_dataset", "write_digits"]

DIGIT = Concept.categorical("digit", [str(i) for i in range(10)])


def digits_dataset(image_size: int = 8) -> LabelledImages:
    """All 1,797 digits as a :class:`LabelledImages` (images ``(N, 3, S, S)`` in [0, 1])."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ImportError("the digits need scikit-learn: pip install scikit-learn (or the "
                          "package's dev extra)") from None
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    if image_size != 8:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                            align_corners=False).clamp(0, 1)
    x = x.expand(-1, 3, -1, -1).contiguous()  # (N, 3, S, S)
    y = torch.tensor(d.target, dtype=torch.long)  # (N,)
    return LabelledImages(x, {"digit": y}, {"digit": DIGIT}, source="sklearn digits")


def write_digits(out, image_size: int = 8) -> Path:
    """Write the digits to ``out`` (.npz); :func:`~conceptebm.datasets.load_images` reads it."""
    return save_npz(digits_dataset(image_size), out)


def main(argv=None) -> int:
    """``python -m conceptebm.datasets.digits ARGS`` (deprecated): ``conceptebm make-data
    digits ARGS`` (``--out`` spelled ``--output``) after one warning line; it goes in
    conceptebm 0.3."""
    from conceptebm.cli import main as conceptebm

    print("warning: python -m conceptebm.datasets.digits is deprecated; use conceptebm "
          "make-data digits; it goes in conceptebm 0.3", file=sys.stderr)
    words = sys.argv[1:] if argv is None else list(argv)
    words = ["--output" if w == "--out" else "--output=" + w[6:] if w.startswith("--out=")
             else w for w in words]
    return conceptebm(["make-data", "digits", *words])


if __name__ == "__main__":
    sys.exit(main())

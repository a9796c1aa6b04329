"""The model and the image files an inference command reads (``infer``, ``energy-map``).

:func:`load_model` takes ``--model`` (a shipped name, a checkpoint, a run folder) and
``--concept`` (through :func:`conceptebm.load`; the model carries its record, where
``energy_calibration`` lives); :func:`load_images` the files, through the package's one image
reader. Every user error is a :class:`~conceptebm.cli.validate.CommandError` (one ``error:``
line, exit 2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from conceptebm.cli.validate import CommandError
from conceptebm.pretrained import CONCEPTS

__all__ = ["KNOWN_CONCEPTS", "read_image", "load_images", "load_model",
           "looks_like_path"]

KNOWN_CONCEPTS = CONCEPTS  # concepts with a shipped model


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a float tensor ``(3, H, W)`` in [0, 1]: the package's one reader,
    :func:`conceptebm.datasets.images.read_image` (16-bit, palette and grey files read
    correctly; transparency composited on white), its errors as :class:`CommandError`."""
    from conceptebm.datasets.images import ImageError
    from conceptebm.datasets.images import read_image as read

    try:
        return read(path)
    except ImageError as err:
        raise CommandError(str(err)) from None


def _fit_size(image: torch.Tensor, path, model, resize: bool) -> torch.Tensor:
    size = getattr(model, "image_size", None)
    if size is None or tuple(image.shape[-2:]) == (size, size):
        return image
    if not resize:
        raise CommandError(
            f"image {path} is {image.shape[-1]}x{image.shape[-2]} (width x height) but the "
            f"{model.concept.name} model reads {size}x{size} images; pass --resize to rescale "
            "it (the aspect ratio is not kept)")
    from conceptebm.datasets.images import resize_image

    return resize_image(image, size)


def looks_like_path(spec: str) -> bool:
    return bool(Path(spec).suffix or "/" in spec or Path(spec).exists())


def load_model(spec: str | None, concept: str | None, device=None):
    """The model for ``--model spec`` / ``--concept concept``, through :func:`conceptebm.load`
    (a shipped name, a checkpoint or a run folder; ``None``: the shipped reader of
    ``concept``), with its record (``.record``: calibration, command, metrics) and MAP
    settings. Every failure is a :class:`CommandError` that names the spec and the fix.
    """
    from conceptebm.checkpoints import CheckpointError
    from conceptebm.models import ModelNotFoundError, load

    if concept is not None and concept not in KNOWN_CONCEPTS and spec is None:
        raise CommandError(f"unknown concept {concept!r}; known concepts: "
                           f"{', '.join(KNOWN_CONCEPTS)} (or pass --model PATH of a checkpoint)")
    try:
        model = load(spec, concept=concept, device=device)
    except ModelNotFoundError as err:
        raise CommandError(str(err)) from None
    except CheckpointError as err:
        raise CommandError(f"cannot load model {spec}: {err}") from None
    except ValueError as err:
        raise CommandError(f"{err} (--model / --concept)") from None
    return model.eval().requires_grad_(False)


def load_images(paths, model, resize: bool) -> torch.Tensor:
    images = [_fit_size(read_image(p), p, model, resize) for p in paths]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise CommandError(f"the images have different sizes {sorted(shapes)}; pass --resize")
    return torch.stack(images)  # (N, 3, H, W)

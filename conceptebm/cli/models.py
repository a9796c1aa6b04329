"""The model and the image files an inference command reads (``infer``, ``energy-map``).

:func:`load_model` takes ``--model`` (a shipped name, a checkpoint, a run folder) and
``--concept``; :func:`model_record` the JSON record beside it (where ``energy_calibration``
lives); :func:`load_images` the files, through the package's one image reader. Every user
error is a :class:`~conceptebm.cli.validate.CommandError` (one ``error:`` line, exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conceptebm.cli.validate import CommandError
from conceptebm.pretrained import CONCEPTS

__all__ = ["KNOWN_CONCEPTS", "read_image", "load_images", "load_model", "model_record",
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
    out = torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear",
                                          antialias=True, align_corners=False)[0]
    return out.clamp(0, 1)


def looks_like_path(spec: str) -> bool:
    return bool(Path(spec).suffix or "/" in spec or Path(spec).exists())


def _run_checkpoint(path: Path) -> Path:
    """A training run's folder stands for its best checkpoint, else its last."""
    if path.is_dir():
        return next((path / f for f in ("best.safetensors", "last.safetensors")
                     if (path / f).is_file()), path)
    return path


def model_record(spec: str | None, concept: str | None) -> dict:
    """The JSON record of the model ``load_model(spec, concept)`` loads: its ``.json`` twin
    (where the shipped models keep ``energy_calibration``), else the checkpoint's own metadata;
    ``{}`` when neither can be read."""
    if spec is not None and looks_like_path(spec):
        path = _run_checkpoint(Path(spec))
    else:
        from conceptebm.pretrained import DIR, INFER_DEFAULT

        name = spec or INFER_DEFAULT.get(concept or "position", concept or "position")
        path = DIR / f"{name}.safetensors"
    twin = path.with_suffix(".json")
    try:
        if twin.is_file():
            return json.loads(twin.read_text())
        from conceptebm.checkpoints import load_checkpoint

        return load_checkpoint(path).meta
    except (OSError, ValueError):
        return {}


def load_model(spec: str | None, concept: str | None, device=None):
    """The model for ``--model spec`` / ``--concept concept``.

    ``spec`` is a checkpoint path (``.safetensors``, from ``conceptebm train``) or a shipped
    model name; ``None`` means the shipped model of ``concept``. Raises :class:`CommandError`
    for unknown concepts (listing the known ones), missing files and a model of another concept.
    """
    if concept is not None and concept not in KNOWN_CONCEPTS and spec is None:
        raise CommandError(f"unknown concept {concept!r}; known concepts: "
                           f"{', '.join(KNOWN_CONCEPTS)} (or pass --model PATH of a checkpoint)")
    if spec is None:  # the shipped model for inferring this concept (pretrained.INFER_DEFAULT)
        from conceptebm.pretrained import INFER_DEFAULT

        concept_name = concept or "position"
        name = INFER_DEFAULT.get(concept_name, concept_name)
    else:
        name = spec
    if spec is not None and looks_like_path(spec):
        from conceptebm.checkpoints import CheckpointError, load_energy

        if not Path(spec).exists():
            raise CommandError(f"model checkpoint not found: {spec}")
        spec = str(_run_checkpoint(Path(spec)))
        try:
            model = load_energy(spec, device=device)  # .sampler from its record, as pretrained
        except CheckpointError as err:
            raise CommandError(f"cannot load model {spec}: {err}") from None
    else:
        try:
            from conceptebm import pretrained

            loader = pretrained.load
        except (ImportError, AttributeError):
            raise CommandError("this install has no shipped models yet (conceptebm.pretrained."
                               "load is missing); train one with `conceptebm train` and pass "
                               "--model PATH/best.safetensors") from None
        try:
            model = loader(name, device=device) if device is not None else loader(name)
        except (KeyError, ValueError, FileNotFoundError) as err:
            msg = err.args[0] if err.args else str(err)
            raise CommandError(f"no shipped model {name!r}: {msg}") from None
    model = model.eval()
    if concept is not None and model.concept.name != concept:
        raise CommandError(f"the model {name!r} is a {model.concept.name!r} model, not "
                           f"{concept!r}; drop --concept or choose a {concept} model")
    return model.requires_grad_(False)


def load_images(paths, model, resize: bool) -> torch.Tensor:
    images = [_fit_size(read_image(p), p, model, resize) for p in paths]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise CommandError(f"the images have different sizes {sorted(shapes)}; pass --resize")
    return torch.stack(images)  # (N, 3, H, W)

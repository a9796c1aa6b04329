"""One front door for a model: :func:`load` takes a shipped name, a checkpoint or a run folder.

Whatever the spec, the result is a :class:`~conceptebm.energies.ConditionalEnergy` in eval mode
that carries what its checkpoint recorded:

* ``.sampler``: how to generate images with it (a :class:`~conceptebm.infer.SamplerSettings`);
* ``.map_settings``: how to read its concept off images (a :class:`~conceptebm.infer.MAPSettings`,
  used by :func:`conceptebm.scenes.infer_concept` unless told otherwise);
* ``.record``: the whole record (concept declarations, training command and time, metrics, the
  "no object found" calibration).

The command line (``conceptebm infer --model SPEC``, ``energy-map``), continual training's
frozen models and the benchmarks all load through it, so a spec means the same everywhere.

Example:
    >>> import conceptebm
    >>> model = conceptebm.load("position_late")
    >>> model.concept.name, model.map_settings.grid, "command" in model.record
    ('position', 41, True)
    >>> type(conceptebm.load(concept="position")).__name__   # the default: position_late_robust
    'LateEnergyNet'
    >>> conceptebm.load("no_such_model")
    Traceback (most recent call last):
    ...
    conceptebm.models.ModelNotFoundError: no shipped model 'no_such_model' and no such file ...
"""

from __future__ import annotations

import os
from pathlib import Path

from conceptebm.energies import ConditionalEnergy

__all__ = ["load", "resolve", "ModelNotFoundError"]


class ModelNotFoundError(LookupError):
    """The spec names no shipped model, checkpoint or run folder (the message says which
    exist and what to pass)."""


def _looks_like_path(spec: str) -> bool:
    return bool(Path(spec).suffix or os.sep in spec or "/" in spec or Path(spec).exists())


def resolve(spec: str | os.PathLike | None = None, *, concept: str | None = None) -> Path:
    """The checkpoint file a spec stands for.

    ``spec``: a shipped model name (``conceptebm.pretrained.NAMES``), a ``.safetensors`` file,
    or a training run's folder (its ``best.safetensors``, else ``last.safetensors``); ``None``:
    the shipped reader of ``concept`` (``pretrained.INFER_DEFAULT``; default ``"position"``).
    """
    from conceptebm import pretrained
    from conceptebm.checkpoints import run_checkpoint

    if spec is None:
        name = concept or "position"
        if name not in pretrained.CONCEPTS:
            raise ModelNotFoundError(
                f"no shipped model reads the concept {name!r}; shipped concepts: "
                f"{', '.join(pretrained.CONCEPTS)} (or load a checkpoint you trained)")
        spec = pretrained.INFER_DEFAULT.get(name, name)
    text = os.fspath(spec)
    if text in pretrained.NAMES and not Path(text).exists():
        try:
            return pretrained.checkpoint_path(text)
        except (ValueError, FileNotFoundError) as err:
            raise ModelNotFoundError(str(err)) from None
    path = Path(text)
    if path.is_dir():
        found = run_checkpoint(path)
        if found is not None:
            return found
        raise ModelNotFoundError(f"the folder {path} holds no best.safetensors or "
                                 "last.safetensors: pass a training run's folder (--out-dir of "
                                 "conceptebm train) or a checkpoint file")
    if path.is_file():
        return path
    if _looks_like_path(text):
        raise ModelNotFoundError(f"model checkpoint not found: {path}")
    raise ModelNotFoundError(f"no shipped model {text!r} and no such file or folder; shipped "
                             f"models: {', '.join(pretrained.NAMES)}")


def load(spec: str | os.PathLike | None = None, *, concept: str | None = None,
         device=None, weights: str = "auto") -> ConditionalEnergy:
    """The model a spec stands for (see :func:`resolve`), in eval mode, with ``.sampler``,
    ``.map_settings`` and ``.record`` from its checkpoint.

    Args:
        concept: with ``spec=None``, the concept whose shipped reader to load; with a spec,
            the concept the model must read (a model of another concept is refused).
        weights: ``"auto"`` (EMA weights when the checkpoint has them), ``"model"``, ``"ema"``.

    Raises:
        ModelNotFoundError: no such name, file or run folder.
        conceptebm.checkpoints.CheckpointError: a file that is no readable model.
        ValueError: a model of another concept than ``concept``.
    """
    from conceptebm.checkpoints import load_energy
    # the checkpoint's header is its record (its JSON twin is a copy: save_checkpoint writes
    # both); load_energy attaches it with the sampler and MAP settings it implies
    model = load_energy(resolve(spec, concept=concept), weights=weights, device=device)
    if concept is not None and model.concept.name != concept:
        raise ValueError(f"{os.fspath(spec)!r} is a {model.concept.name!r} model, not a "
                         f"{concept!r} one; choose a {concept} model or drop the concept")
    return model

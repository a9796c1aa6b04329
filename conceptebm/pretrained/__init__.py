"""Shipped concept EBMs for the default 32x32 scenes: ``load("position")`` and friends.

Each model is ``<name>.safetensors`` (weights plus the net config in its metadata) with a
``<name>.json`` twin that records the exact training command, the training time, the
judge-scored metrics and the recommended sampler settings. They were trained on a 2-core CPU
with ``conceptebm train`` (see the JSON files and ``paper/benchmarks/train_quality.py``).

``load(name)`` returns a ready :class:`~conceptebm.energies.ConditionalEnergy` in eval mode.
Its recommended sampler settings come from one place, the ``"sampler"`` entry of the model's
JSON record: the loader builds a :class:`~conceptebm.infer.SamplerSettings` from it when it
constructs the model (``.sampler``, read-only; a mapping of :func:`conceptebm.infer.langevin`
keywords, so ``**pos.sampler`` works), and carries its MAP settings (``.map_settings``) and its
whole record (``.record``: command, training time, metrics; also :func:`info`).
:func:`conceptebm.load` loads a shipped name, a checkpoint or a run folder alike.

Example:
    >>> import torch
    >>> from conceptebm import pretrained
    >>> from conceptebm.infer import langevin
    >>> pos = pretrained.load("position")
    >>> x = langevin(pos.given((0.5, -0.5)), (4, 3, 32, 32), **pos.sampler)
    >>> x.shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path

from conceptebm.energies import ConditionalEnergy

__all__ = ["CONCEPTS", "INFERENCE", "VARIANTS", "INFER_DEFAULT", "NAMES", "DIR", "available",
           "checkpoint_path", "concept_of", "load", "info"]

DIR = Path(__file__).resolve().parent
#: Generative concept EBMs, each named after its concept: what composition and generation use.
CONCEPTS = ("position", "color", "shape", "size")
#: Inference-only models, named ``<concept>_<how>``, trained with the concept-contrastive loss
#: alone (``benchmarks/multiview_model.py``), so their Langevin samples are not images:
#: ``position_contrastive`` reads positions in default-camera scenes (a sharper MAP than the
#: CD-trained "position", and one energy basin per object in two-object scenes: Figure 12);
#: ``position_multiview`` reads the position of an object from views taken with any camera
#: (eq. 11, Figure 11); ``position_late`` (``benchmarks/late_model.py``) is late-conditioned
#: (:class:`~conceptebm.energies.LateEnergyNet`: image features once per image, a small head
#: per candidate position): about 80x faster MAP and half the error of
#: ``position_contrastive`` on default scenes (0.015 vs 0.028), about as good on two-object
#: scenes, but less robust to grey clutter objects (0.127 vs 0.051) and to light from unseen
#: directions (0.125 vs 0.066) (see its JSON record); ``position_late_robust``
#: (``benchmarks/late_model.py`` with the robust family's options) is the same net trained on
#: nuisance-randomised scenes (grey clutter, light from any direction, noise, blur, jitter) with
#: the grey objects' places among the wrong values and two-object scenes in which each object
#: is true in turn (``benchmarks/results/robustness.json``); ``position_multiview_late``
#: (``benchmarks/late_multiview.py``) reads views from any camera like ``position_multiview``,
#: late-conditioned, each view's camera estimated from the image (``LateEnergyNet(camera=True)``):
#: more accurate at 1, 2, 4 and 8 views and faster (``benchmarks/results/late_multiview.json``).
#: ``shape_late``, ``size_late`` and ``color_late`` read the shape, size and colour of the
#: object in default-camera scenes, late-conditioned with a pooled readout (one trunk pass per
#: image; ``conceptebm train --net late --objective contrastive``, then tuned with object-free
#: images among the negatives, ``--empty-negatives``: see their records).
INFERENCE = ("position_contrastive", "position_multiview", "position_late",
             "position_late_robust", "position_multiview_late", "shape_late", "size_late",
             "color_late")
#: The model ``conceptebm infer`` / ``energy-map`` use for a concept when no --model is given:
#: ``position_late_robust``, as accurate as ``position_contrastive`` (the default before it) on
#: every column of fresh test renders (clean, noise 0.1, grey clutter, unseen light, two
#: objects, no-object false alarms; ``benchmarks/results/robustness.json``, seed 20261208), again
#: at each reader's MAP settings chosen on validation images (grid 25, 30 steps;
#: ``benchmarks/results/robustness_map.json``, seed 20261209), and on the twelve columns of the
#: full table (JPEG, blur, other grounds, camera jitter and the foreign fixture after
#: ``train --data`` added; ``benchmarks/results/robustness_full.json``, seed 20261211), with one
#: trunk pass per image;
#: ``shape_late``, ``size_late``, ``color_late``, more accurate than the early-conditioned
#: ``shape``, ``size``, ``color`` on fresh test renders, clean and under pixel noise 0.1, and
#: 1.5x, 76x and 8x faster (seed 20261210, n = 500: shape 0.964 vs 0.798, size MAE 0.013 vs
#: 0.034, colour 1.000 vs 0.886; ``benchmarks/results/late_readers.json``).
INFER_DEFAULT = {"position": "position_late_robust", "shape": "shape_late",
                 "size": "size_late", "color": "color_late"}
#: Generation variants, named ``<concept>_<how>``. ``position_cd`` is the position EBM trained
#: by contrastive divergence alone (the shipped "position" until the concept-contrastive term
#: was added): it draws an object at each of several positions (Figure 7: both found in 0.78 of
#: images), which the term's "the object is at c" teaches "position" to refuse (0.03).
#: Composition uses it where a conjunction places one concept at several values
#: (:data:`conceptebm.compose.defaults.MULTI_INSTANCE`); everything else uses "position".
VARIANTS = ("position_cd",)
NAMES = CONCEPTS + INFERENCE + VARIANTS


def available() -> list[str]:
    """Names of the shipped models present in this installation."""
    return [n for n in NAMES if (DIR / f"{n}.safetensors").exists()]


def concept_of(name: str) -> str:
    """The concept a shipped model reads: ``concept_of("position_multiview") == "position"``."""
    checkpoint_path(name)  # validates the name
    return name if name in CONCEPTS else name.split("_", 1)[0]


def checkpoint_path(name: str) -> Path:
    """The checkpoint file of the shipped model ``name`` (its name checked, its file present)."""
    if name not in NAMES:
        raise ValueError(f"no shipped model {name!r}; shipped models: {', '.join(NAMES)}")
    path = DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"the shipped {name!r} model is missing from {DIR}; reinstall conceptebm, or "
            f"retrain it with the command in its record ({name}.json, key 'command')"
        )
    return path


def info(name: str) -> dict:
    """The model's JSON record: command, training time, metrics, sampler settings."""
    from conceptebm.checkpoints import load_checkpoint

    return load_checkpoint(checkpoint_path(name)).meta


def load(name: str, *, device=None) -> ConditionalEnergy:
    """The shipped EBM ``name``: a concept ("position", "color", "shape", "size") or an
    inference-only model ("position_late_robust", "position_contrastive", "position_multiview";
    see :data:`INFERENCE`).

    The returned energy's ``.sampler`` is the :class:`~conceptebm.infer.SamplerSettings`
    (``num_steps``, ``step_size``, ``noise_scale``, ``init``, ``bounds``) that generated the
    recorded metrics, read from the record's ``"sampler"`` entry; :func:`info` gives the record.
    """
    from conceptebm.checkpoints import load_energy

    return load_energy(checkpoint_path(name), device=device)

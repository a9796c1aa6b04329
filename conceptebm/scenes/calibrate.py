"""Energy calibration of the shipped models, computed from their own training distribution.

``conceptebm calibrate NAME... [--write]`` renders ``n`` held-out scenes of
each model's training dataset (``make_dataset(dataset, seed=CALIBRATION_SEED)``, a seed no
training run uses), records the quantiles of their best energies
(:func:`~conceptebm.evaluate.calibration.energy_calibration`) and, with ``--write``, stores
them as ``energy_calibration`` in the model's JSON twin (weights and the safetensors file
untouched; ``conceptebm infer`` reads the twin). It also prints the best energies and energy
contrasts of images that hold no object (white, black, grey, noise, the empty background)
against the resulting thresholds, and which of them the rule refuses.
"""

from __future__ import annotations

import torch

from conceptebm.checkpoints import update_record
from conceptebm.evaluate.calibration import (
    energy_calibration,
    energy_contrast,
    min_contrast,
    min_energies,
    no_object_threshold,
    object_found,
)

__all__ = ["CALIBRATION_SEED", "MIN_SCENES", "shipped_calibration", "calibration_report",
           "empty_images", "store_calibration"]

CALIBRATION_SEED = 20_261_129  # held out: training runs use seeds 0..10 and eval offsets
MIN_SCENES = 10  # energy_calibration's minimum (its 0.99 quantile wants a few hundred)


def _held_out(name: str, n: int, seed: int):
    from conceptebm import pretrained
    from conceptebm.datasets import make_dataset

    model = pretrained.load(name)
    dataset = pretrained.info(name).get("train", {}).get("dataset") or model.concept.name
    ds = make_dataset(dataset, size=n, seed=seed, image_size=model.image_size)
    images, labels = ds.batch(range(n))
    targets = torch.as_tensor(labels[model.concept.name])
    if images.dim() == 5:  # multi-view sets: their views (one label per scene), n in all
        v = images.shape[1]
        images = images.flatten(0, 1)[:n]
        targets = targets.repeat_interleave(v, dim=0)[:n]
    return model, dataset, images, targets  # (n, 3, H, W), (n, ...)


def shipped_calibration(name: str, n: int = 200, seed: int = CALIBRATION_SEED) -> dict:
    """The ``energy_calibration`` record of shipped model ``name`` (see the module doc)."""
    model, dataset, images, targets = _held_out(name, n, seed)
    cal = energy_calibration(model, images, targets)
    return {**cal, "dataset": dataset, "seed": seed,
            "command": f"conceptebm calibrate {name} --write"}


def empty_images(real: torch.Tensor) -> dict[str, torch.Tensor]:
    """Images with no object, shaped like ``real (n, 3, H, W)``: white, black, grey, uniform
    noise, and the background (the per-pixel median of the real scenes: objects move, the
    ground stays)."""
    one = real[:1]
    gen = torch.Generator().manual_seed(0)
    return {"white": torch.ones_like(one), "black": torch.zeros_like(one),
            "grey": torch.full_like(one, 0.5), "noise": torch.rand(one.shape, generator=gen),
            "background": real.median(dim=0).values[None]}


def store_calibration(path, calibration: dict) -> None:
    """Add ``energy_calibration`` to a checkpoint's record, in the safetensors metadata and
    its JSON twin alike (one record, two copies that never disagree); tensors are rewritten
    unchanged."""
    update_record(path, {"energy_calibration": calibration})


def calibration_report(name: str, n: int = 200) -> dict:
    """Shipped model ``name``'s ``energy_calibration`` (:func:`shipped_calibration`) with what
    it decides: its thresholds, and the best energy, energy contrast and verdict of each image
    that holds no object (:func:`empty_images`), as ``conceptebm calibrate`` prints it."""
    cal = shipped_calibration(name, n=n)
    model, _, images, _ = _held_out(name, n, CALIBRATION_SEED)
    empty = empty_images(images)
    energy = {k: float(min_energies(model, v)[0]) for k, v in empty.items()}
    contrast = {k: float(energy_contrast(model, v)[0]) for k, v in empty.items()}
    found = {k: bool(object_found(cal, torch.tensor([energy[k]]),
                                  contrast=torch.tensor([contrast[k]]))[0]) for k in empty}
    return {"model": name, "energy_calibration": cal, "threshold": no_object_threshold(cal),
            "min_contrast": min_contrast(cal), "empty_energy": energy,
            "empty_contrast": contrast, "refused": {k: not f for k, f in found.items()}}


def main(argv: list[str] | None = None) -> int:
    """``python -m conceptebm.scenes.calibrate ARGS`` (deprecated): ``conceptebm calibrate
    ARGS`` after one warning line; it goes in conceptebm 0.3."""
    import sys

    from conceptebm.cli import main as conceptebm

    print("warning: python -m conceptebm.scenes.calibrate is deprecated; use conceptebm "
          "calibrate; it goes in conceptebm 0.3", file=sys.stderr)
    return conceptebm(["calibrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())

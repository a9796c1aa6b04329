"""Energy calibration of the shipped models, computed from their own training distribution.

``conceptebm calibrate NAME... [--write]`` renders ``n`` held-out scenes of
each model's training dataset (``make_dataset(dataset, seed=CALIBRATION_SEED)``, a seed no
training run uses), records the quantiles of their best energies
(:func:`~conceptebm.evaluate.calibration.energy_calibration`) and, with ``--write``, stores
them as ``energy_calibration`` in the model's JSON twin (weights and the safetensors file
untouched; ``conceptebm infer`` reads the twin). It also prints the best energies and energy
contrasts of images that hold no object (white, black, grey, noise, the empty background)
against the resulting thresholds, and which of them the rule refuses.

``conceptebm calibrate NAME... --familiarity [--write]`` fits the check of
:mod:`conceptebm.evaluate.familiarity` (is an image of the kind the model knows?) on renders of
the scene family the shipped readers meet (:func:`familiarity_images`: clean, cluttered,
two-object, randomly lit and multi-view scenes, half of them with pixel noise and contrast
changes, a quarter blurred, an eighth saved as JPEG: what the readers are meant to read) and
stores it as ``familiarity`` in the model's record.
"""

from __future__ import annotations

import torch

from conceptebm.checkpoints import read_record, update_record
from conceptebm.evaluate.calibration import (
    energy_calibration,
    energy_contrast,
    min_contrast,
    min_energies,
    no_object_threshold,
    object_found,
)
from conceptebm.evaluate.familiarity import fit_familiarity

__all__ = ["CALIBRATION_SEED", "MIN_SCENES", "FAMILY", "shipped_calibration",
           "calibration_report", "empty_images", "store_calibration", "familiarity_images",
           "shipped_familiarity"]

CALIBRATION_SEED = 20_261_129  # held out: training runs use seeds 0..10 and eval offsets
MIN_SCENES = 10  # energy_calibration's minimum (its 0.99 quantile wants a few hundred)
#: the datasets whose renders make the scene family of :func:`familiarity_images`
FAMILY = ("position", "position_robust", "cluttered", "two_objects", "general", "multiview")


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
    unchanged. A ``margin`` chosen for the model on validation images (with the command that
    chose it, ``margin_command``) is kept from the record it replaces: it is in units of the
    calibration's own spread."""
    old = read_record(path).get("energy_calibration") or {}
    kept = {k: old[k] for k in ("margin", "margin_command") if k in old and k not in calibration}
    update_record(path, {"energy_calibration": {**calibration, **kept}})


def familiarity_images(n: int, seed: int = CALIBRATION_SEED, image_size: int = 32
                       ) -> torch.Tensor:
    """``(n, 3, S, S)`` renders of the scene family (:data:`FAMILY`, ``n`` split evenly; one
    view of each multi-view scene), the odd-numbered ones given Gaussian pixel noise of sigma
    U(0, 0.15) and a contrast factor U(0.8, 1.2) about their mean, those numbered 2 mod 4 a
    Gaussian blur of sigma U(0.5, 2) px, those numbered 0 mod 8 a JPEG round trip at quality
    U(20, 90), the rest (4 mod 8) left clean: what a reader trained on these renderers is asked
    about (the robustness table's corruptions). A pure function of ``(n, seed,
    image_size)``."""
    from conceptebm.datasets import make_dataset

    if n < 2 * len(FAMILY):
        raise ValueError(f"familiarity_images needs n >= {2 * len(FAMILY)}, got {n}")
    parts = []
    for i, name in enumerate(FAMILY):
        m = n // len(FAMILY) + (i < n % len(FAMILY))
        x = make_dataset(name, size=m, seed=seed, image_size=image_size).batch(range(m))[0]
        parts.append(x[:, 0] if x.dim() == 5 else x)
    x = torch.cat(parts)  # (n, 3, S, S)
    gen = torch.Generator().manual_seed(seed)
    odd = x[1::2]
    sigma = torch.rand(odd.shape[0], 1, 1, 1, generator=gen) * 0.15
    odd = odd + sigma * torch.randn(odd.shape, generator=gen)
    mean = odd.mean((1, 2, 3), keepdim=True)
    gain = 0.8 + 0.4 * torch.rand(odd.shape[0], 1, 1, 1, generator=gen)
    x[1::2] = ((odd - mean) * gain + mean).clamp(0, 1)
    from conceptebm.scenes.robustness import blur, jpeg  # robustness imports this module

    for i in range(2, n, 4):
        x[i:i + 1] = blur(x[i:i + 1], 0.5 + 1.5 * float(torch.rand(1, generator=gen)))
    for i in range(0, n, 8):
        x[i:i + 1] = jpeg(x[i:i + 1], int(20 + 70 * float(torch.rand(1, generator=gen))))
    return x


def shipped_familiarity(name: str, n: int = 6000, seed: int = CALIBRATION_SEED) -> dict:
    """The ``familiarity`` record of shipped model ``name``: :func:`fit_familiarity` on
    :func:`familiarity_images` at the model's image size (every fifth held out for the
    threshold)."""
    from conceptebm import pretrained

    model = pretrained.load(name)
    record = fit_familiarity(familiarity_images(n, seed, model.image_size))
    return {**record, "family": list(FAMILY), "seed": seed,
            "command": f"conceptebm calibrate {name} --familiarity -n {n} --write"}


def calibration_report(name: str, n: int = 200) -> dict:
    """Shipped model ``name``'s ``energy_calibration`` (:func:`shipped_calibration`) with what
    it decides: its thresholds, and the best energy, energy contrast and verdict of each image
    that holds no object (:func:`empty_images`), as ``conceptebm calibrate`` prints it."""
    cal = shipped_calibration(name, n=n)
    model, _, images, _ = _held_out(name, n, CALIBRATION_SEED)
    empty = empty_images(images)
    energy = {k: float(min_energies(model, v)[0]) for k, v in empty.items()}
    contrast = {k: float(energy_contrast(model, v)[0]) for k, v in empty.items()}
    fam = model.record.get("familiarity")  # the images' own check, when the record has one
    found = {k: bool(object_found(cal, torch.tensor([energy[k]]),
                                  contrast=torch.tensor([contrast[k]]), familiarity=fam,
                                  images=empty[k])[0]) for k in empty}
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

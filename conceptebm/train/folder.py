"""Training on a user's folder of labelled images: the data, its splits and the run's record.

What ``conceptebm train --data DIR`` does, callable from Python:

* :class:`FolderSpec` names the data and its splits (the folder or .npz, column mapping,
  declared concepts, the held-out (validation) split that picks ``best.safetensors``, an
  optional test split read once after training, a resize);
* :func:`folder_data` loads it (concepts declared, built-in or inferred), draws the seeded
  splits (the test split first, then the held-out one from what is left), checks the labels
  and returns the record the run keeps in ``RUN/data.json``;
* :func:`score_test` reads the test split once, after training, and writes ``RUN/test.json``;
* :func:`fit_run_temperature` fits, after training, the posterior temperature of the run's
  model on its held-out (validation) images and stores it in the checkpoint's record
  (``posterior_temperature``, ``posterior_calibration``), where ``conceptebm infer
  --posterior`` reads it;
* :func:`train_on_folder` runs the whole job, and ``resume=True`` continues a run on the data
  and splits its ``data.json`` recorded.

Errors are ``ValueError`` naming the option (``--test``, ``--holdout``) the command line
spells; the keyword arguments here have the same names without the dashes.

Example:
    >>> import tempfile
    >>> from conceptebm.datasets.foreign import write_foreign
    >>> from conceptebm.train import smoke_config
    >>> folder = write_foreign(tempfile.mkdtemp(), 24, image_size=16)
    >>> config = smoke_config(concept="position", out_dir=tempfile.mkdtemp() + "/run")
    >>> data = folder_data(FolderSpec(str(folder), holdout=4, test=4), config,
    ...                    say=lambda *a, **k: None)
    >>> len(data.train_set), len(data.held_out), len(data.test_set), data.config.image_size
    (16, 4, 4, 16)
    >>> data.record["test"]["source"]
    '4 of --data (seed 0)'
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["FolderSpec", "FolderData", "folder_data", "score_test", "fit_run_temperature",
           "train_on_folder", "parse_test"]


@dataclass(frozen=True)
class FolderSpec:
    """A user's data and its splits.

    Args:
        data: a folder of PNG/JPEG files with ``labels.csv`` / ``labels.json``, or an .npz.
        columns: ``NAME=COL[,COL]`` mappings of label columns to concepts.
        concepts_file: a concepts JSON file (declared kinds and ranges).
        holdout: the validation split (a count >= 1 or a fraction < 1; ``None``: 20 %, at
            most 300), which scores the run while it trains and picks ``best.safetensors``.
        test: the test split, read once after training: a folder or .npz of other images, or
            a count / fraction of ``data`` set aside before the held-out split is drawn.
        resize: images larger than this side are resized as they are read.
    """

    data: str
    columns: tuple[str, ...] | None = None
    concepts_file: str | None = None
    holdout: float | None = None
    test: float | str | None = None
    resize: int | None = None

    @classmethod
    def from_record(cls, record: dict) -> FolderSpec:
        """The spec a run's ``data.json`` recorded (``--resume`` continues on it)."""
        columns = record.get("columns")
        return cls(record["data"], tuple(columns) if columns else None,
                   record.get("concepts_file"), record.get("holdout"),
                   parse_test(record.get("test_arg"), "the run's recorded --test"),
                   record.get("resize"))


@dataclass
class FolderData:
    """What :func:`folder_data` returns: the config (its image size fitted to the images), the
    training and held-out sets, the test set (or ``None``) and the run's record."""

    config: object
    train_set: object
    held_out: object
    test_set: object | None
    record: dict


def parse_test(text: str | float | None, what: str = "--test") -> float | str | None:
    """A test split spec: a count or fraction of the data, else an existing folder or .npz."""
    if text is None or isinstance(text, float):
        return text
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is not None:
        if not (0 < v < 1 or (v >= 1 and v.is_integer())):
            raise ValueError(f"{what} takes a folder or .npz of test images, a count >= 1 or a "
                             f"fraction in (0, 1), got {text!r}")
        return v
    p = Path(text)
    if not str(text).strip() or not (p.is_dir() or (p.is_file() and p.suffix.lower() == ".npz")):
        raise ValueError(f"{what} takes a folder of labelled images or an .npz (no such folder "
                         f"or .npz file), or a count or fraction of the data, got {text!r}")
    return str(text)


def _rows(dataset, items) -> dict:
    """Which items of the data a split holds: their files (a folder) or their indices."""
    if getattr(dataset, "files", None) is not None:
        return {"files": [dataset.files[i] for i in items]}
    return {"indices": list(items)}


def _split(ds, size, seed: int, what: str):
    """``(rest, part, part's item indices)``: a seeded count / fraction of ``ds`` (see
    :func:`~conceptebm.datasets.split_holdout`), with the option's name in its errors."""
    from conceptebm.datasets.user import split_holdout

    try:
        rest, part = split_holdout(ds, size, seed=seed)
    except ValueError as err:
        raise ValueError(f"{what} {size:g}: {err}") from None
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    return rest, part, sorted(perm[:len(part)])


def _test_set(spec: FolderSpec, ds, concept: str, seed: int, say):
    """``(data left for training and validation, its indices in ds, test set, record)``."""
    from conceptebm.datasets.user import load_images

    test_spec = spec.test
    if test_spec is None:
        return ds, list(range(len(ds))), None, None
    if not isinstance(test_spec, str):  # a seeded part of the data, before the held-out split
        rest, test, items = _split(ds, test_spec, seed, "--test")
        if len(rest) < 2:
            raise ValueError(f"--test {test_spec:g} leaves {len(rest)} of {len(ds)} images for "
                             "training and the held-out split; set aside fewer (e.g. --test "
                             "0.2)")
        kept = sorted(set(range(len(ds))) - set(items))
        return rest, kept, test, {"source": f"{test_spec:g} of --data (seed {seed})",
                                  "size": len(test), **_rows(ds, items)}
    if Path(test_spec).resolve() == Path(spec.data).resolve():
        raise ValueError(f"--test {test_spec} is the training data (--data); name a folder or "
                         ".npz of other images, or a count / fraction of --data (e.g. --test "
                         "0.2)")
    # the trained concept as the run knows it: a category it never saw, or a value outside a
    # declared or built-in range, is refused here; a range inferred from the data only warns
    trained = ds.concepts[concept]
    inferred_range = concept in ds.inferred and not trained.is_categorical
    try:
        test = load_images(test_spec, concepts=None if inferred_range else {concept: trained},
                           columns=spec.columns, infer=True, resize=spec.resize)
    except ValueError as err:
        raise ValueError(f"--test {test_spec}: {err}") from None
    if inferred_range and concept in test.labels:
        v = test.labels[concept]
        outside = int(((v < trained.low) | (v > trained.high)).any(-1).sum())
        if outside:
            say(f"[train] note: {outside} of {len(test)} --test images have a {concept} "
                f"outside the range inferred from --data ({trained.low:g}..{trained.high:g})"
                "; the model answers within that range")
    if concept not in test.labels:
        raise ValueError(f"--test {test_spec}: no {concept!r} label (its labels: "
                         f"{', '.join(test.labels) or 'none'}); label the test images like "
                         "--data")
    if test.image_size != ds.image_size or test.images.shape[-2] != ds.images.shape[-2]:
        raise ValueError(f"--test {test_spec}: its images are {test.images.shape[-1]}x"
                         f"{test.images.shape[-2]} but those of --data are {ds.image_size}x"
                         f"{ds.images.shape[-2]}; give both one size")
    seen = {bytes(x.numpy().tobytes()) for x in ds.images}
    same = sum(bytes(x.numpy().tobytes()) in seen for x in test.images)
    if same:
        say(f"[train] note: {same} of {len(test)} --test images are pixel for pixel images "
            "of --data; a test split should hold images the run never sees")
    return ds, list(range(len(ds))), test, {"source": str(test_spec), "size": len(test),
                                            **_rows(test, range(len(test)))}


def folder_data(spec: FolderSpec, config, *, fit_image_size: bool = True,
                say=print) -> FolderData:
    """Load ``spec``'s data for ``config`` (a :class:`~conceptebm.train.TrainConfig`) and draw
    its splits; ``ValueError`` names the problem. The record is what the run keeps in
    ``data.json`` (the caller writes it once the run is accepted, so a refused run leaves its
    folder as it was); ``say`` prints the summary and warnings (rank 0 only under DDP).

    ``config.image_size`` follows the images when ``fit_image_size`` (the command line turns
    it off when ``--image-size`` was given, and then a mismatch is refused).
    """
    from conceptebm.datasets.user import (
        check_training_labels,
        load_images,
        read_concepts,
        split_holdout,
    )

    declared = read_concepts(spec.concepts_file) if spec.concepts_file else None
    ds = load_images(spec.data, concepts=declared, columns=spec.columns, infer=True,
                     resize=spec.resize)
    if config.concept not in ds.concepts:
        raise ValueError(f"--concept {config.concept!r} is not a label of {spec.data}; its "
                         f"labels: {', '.join(ds.concepts)} (map columns with --columns "
                         f"{config.concept}=a,b)")
    if fit_image_size and config.image_size != ds.image_size:
        config = config.replace(image_size=ds.image_size)
    if config.image_size != ds.image_size:
        raise ValueError(f"--image-size {config.image_size} but the images of {spec.data} are "
                         f"{ds.image_size}x{ds.image_size}; drop --image-size")
    rest, kept, test, test_record = _test_set(spec, ds, config.concept, config.seed, say)
    try:
        train_set, held = split_holdout(rest, spec.holdout, seed=config.seed)
    except ValueError as err:
        shown = "(default)" if spec.holdout is None else f"{spec.holdout:g}"
        raise ValueError(f"--holdout {shown}: {err}" + (
            f" (of the {len(rest)} images left after the {len(test)} of --test)"
            if test is not None else "")) from None
    perm = torch.randperm(len(rest), generator=torch.Generator().manual_seed(config.seed))
    held_items = sorted(kept[i] for i in perm[:len(held)].tolist())
    train_items = sorted(set(kept) - set(held_items))
    warnings = ds.warnings + check_training_labels(train_set, held, config.concept)
    say(f"[train] {spec.data}: {len(ds)} images of {ds.image_size}x{ds.image_size}, "
        f"{len(held)} held out (seed {config.seed})")
    for line in warnings:
        say(f"warning: {line}", file=sys.stderr)
    for line in ds.describe():
        say(f"[train]   {line}")
    if test is not None:
        say(f"[train] test split: {len(test)} images from {test_record['source']}, read "
            "once after training (never used to choose a checkpoint)")
    t = spec.test
    record = {
        "data": str(spec.data), "columns": list(spec.columns) if spec.columns else None,
        "concepts_file": spec.concepts_file, "holdout": len(held), "split_seed": config.seed,
        "train": len(train_set), **ds.info(),
        # which items each split holds; the held-out ones alone choose the checkpoint
        "holdout_items": _rows(ds, held_items), "train_items": _rows(ds, train_items),
        "test_arg": None if t is None else t if isinstance(t, str) else f"{t:g}",
        "test": test_record, "resize": spec.resize}
    return FolderData(config, train_set, held, test, record)


def score_test(result, test_set, *, say=print) -> dict | None:
    """After training: score ``best.safetensors`` (else the last weights) once on the test
    split (MAP inference, as the held-out split was scored), write ``RUN/test.json`` and return
    its record; ``None`` without a test split."""
    if test_set is None:
        return None
    from conceptebm.checkpoints import atomic_write_text, load_energy
    from conceptebm.evaluate.heldout_map import heldout_map_metrics

    out = Path(result.out_dir)
    best = out / "best.safetensors"
    net = load_energy(best) if best.is_file() else result.eval_net
    name = net.concept.name
    metrics = heldout_map_metrics(net, test_set.images, test_set.labels[name])
    source = json.loads((out / "data.json").read_text())["test"]["source"]
    record = {"split": "test", "read": "once, after training; not used for any choice",
              "checkpoint": best.name if best.is_file() else "last weights",
              "best_iteration": result.best_iteration, "size": len(test_set),
              "source": source,
              "metrics": {k: {"value": m.value, "stderr": m.stderr}
                          for k, m in metrics.items()}}
    atomic_write_text(out / "test.json", json.dumps(record, indent=1))
    shown = ", ".join(f"{k} {m.value:.4f} ± {m.stderr:.4f}" for k, m in metrics.items())
    say(f"test split ({len(test_set)} images, read once after training, not used for "
        f"selection): {shown}; in {out / 'test.json'}")
    return record


def fit_run_temperature(result, held_out, *, say=print) -> dict | None:
    """After training: the posterior temperature of the run's model (``best.safetensors``,
    else ``last.safetensors``) fitted on the held-out split, stored in that checkpoint's
    record (its safetensors header and JSON twin) as ``posterior_temperature`` (the number)
    and ``posterior_calibration`` (how: the split, its size, the grid, the coverage and mean
    width of the 90 % intervals there); returns the calibration.

    The temperature ``T`` of ``p(c | x) ∝ exp(-E(x | c) / T)`` at which the grid posterior's
    90 % intervals cover the held-out truths 90 % of the time
    (:func:`~conceptebm.infer.posterior_grid.calibrate_temperature`): a trained energy has no
    likelihood's scale. ``None`` (with a note) for a categorical concept or one of more than
    3 dimensions, or without held-out images or a checkpoint.
    """
    from conceptebm.checkpoints import load_energy, run_checkpoint, update_record
    from conceptebm.infer.posterior_grid import calibrate_temperature

    path = run_checkpoint(result.out_dir)
    if held_out is None or len(held_out) < 2 or path is None:
        return None
    net = load_energy(path)
    concept = net.concept
    if concept.is_categorical or concept.dim > 3:
        say(f"[train] no posterior temperature: {concept.name!r} is "
            f"{'categorical (read exactly)' if concept.is_categorical else 'over 3-D'}")
        return None
    images = held_out.images
    truth = torch.as_tensor(held_out.labels[concept.name]).reshape(len(held_out), -1)
    with torch.no_grad():
        cal = calibrate_temperature(net, images[:, None], truth.to(images))
    cal.update({"split": "held-out (validation) images of --data", "checkpoint": path.name,
                "views": 1, "by_views": {"1": cal["temperature"]}})
    update_record(path, {"posterior_temperature": cal["temperature"],
                         "posterior_calibration": cal})
    halves = cal.get("half_split")
    spread = "" if not halves else (
        f"; fitted on each half instead: T {halves['temperature'][0]:.3g} / "
        f"{halves['temperature'][1]:.3g}, covering {halves['coverage'][0]:.2f} / "
        f"{halves['coverage'][1]:.2f} of the other half")
    say(f"[train] posterior temperature {cal['temperature']:.3g}, fitted on {cal['n']} "
        f"held-out images (90% intervals cover {cal['coverage_fit']:.2f} there, mean width "
        f"{cal['width']:.3g}{spread}); stored in {path}")
    return cal


def train_on_folder(spec: FolderSpec | None, config, *, resume: bool = False,
                    progress: bool = True, say=print):
    """Train ``config`` on a user's folder, fit its posterior temperature on the held-out
    split (:func:`fit_run_temperature`) and read its test split once at the end: what
    ``conceptebm train --data`` runs. Returns ``(TrainResult, test record or None)``.

    ``resume=True`` continues the run in ``config.out_dir`` on the data and splits its
    ``data.json`` recorded (``spec`` may then be ``None``). The record is written only once
    the data and a resumed checkpoint are accepted.
    """
    from conceptebm.checkpoints import atomic_write_text
    from conceptebm.train.loop import train

    record_path = Path(config.out_dir) / "data.json"
    if spec is None:
        if not (resume and record_path.is_file()):
            raise ValueError(f"no data: pass a FolderSpec, or resume a run whose folder holds "
                             f"data.json ({record_path} not found)")
        spec = FolderSpec.from_record(json.loads(record_path.read_text()))
    data = folder_data(spec, config, say=say)
    result = train(data.config, dataset=data.train_set, eval_dataset=data.held_out,
                   resume=resume, progress=progress,
                   on_start=lambda: atomic_write_text(record_path,
                                                      json.dumps(data.record, indent=1)))
    from conceptebm.evaluate.map_grid import select_run_map_settings  # grid for its images
    select_run_map_settings(result.out_dir, data.held_out, say=say)
    fit_run_temperature(result, data.held_out, say=say)
    return result, score_test(result, data.test_set, say=say)

"""A user's own images on the command line: ``train --data``, and ``--each DIR`` outputs.

* :func:`add_data_options` adds ``--data PATH`` (a folder with labels.csv / labels.json, or an
  .npz), ``--columns NAME=COL[,COL]``, ``--concepts-file JSON`` and ``--holdout N|FRACTION``
  to ``conceptebm train``; :func:`training_data` loads the data (concepts declared, built-in,
  or inferred from the data and printed), makes the seeded held-out split, fits the image
  size, and records both in ``RUN/data.json`` (the concepts are also in every checkpoint's
  net config, so ``conceptebm infer --model RUN/best.safetensors`` reads them back).
* :func:`write_each` writes one PNG per image plus ``labels.csv`` (and ``concepts.json``) in
  the loader's own layout (``render --each DIR``, ``sample --each DIR``), so render -> infer
  -> train runs from the shell.

Example::

    python -m conceptebm.datasets.foreign --out data/foreign -n 1700
    conceptebm train --data data/foreign --concept position --objective contrastive \\
        --time-limit-min 10 --threads 2 --out-dir runs/foreign
    conceptebm infer --model runs/foreign/best.safetensors data/foreign/scene_00000.png --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_data_options", "data_words", "training_data", "write_each",
           "write_each_sample"]


def _holdout(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--holdout takes a count (300) or a fraction (0.2), "
                                         f"got {text!r}") from None
    if not (0 < v < 1 or (v >= 1 and v.is_integer())):
        raise argparse.ArgumentTypeError(f"--holdout takes a count >= 1 or a fraction in "
                                         f"(0, 1), got {text!r}")
    return v


_holdout.bad = ("abc", "nan", "0", "-5", "1.5")  # what the CLI option walk feeds it


def _column_spec(text: str) -> str:
    name, eq, cols = text.partition("=")
    if not (eq and name.strip() and cols.strip()):
        raise argparse.ArgumentTypeError(f"--columns takes NAME=COL[,COL] (e.g. position=x,y), "
                                         f"got {text!r}")
    return text


_column_spec.bad = ("abc", "=x", "position=")


def add_data_options(p: argparse.ArgumentParser) -> None:
    from conceptebm.cli import validate

    g = p.add_argument_group("your own images (instead of a scene dataset)")
    g.add_argument("--data", type=validate.existing_path("image folder or .npz file"),
                   default=None, metavar="PATH",
                   help="a folder of PNG/JPEG images with labels.csv or labels.json, or an "
                        ".npz (images + one array per label); --concept names one label")
    g.add_argument("--columns", action="append", type=_column_spec, default=None,
                   metavar="NAME=COL[,COL]",
                   help="which columns make up a label, repeatable (e.g. position=x,y; bare "
                        "x,y columns become position by themselves)")
    g.add_argument("--concepts-file", type=validate.existing_file((".json",), "JSON file"),
                   default=None, metavar="JSON",
                   help='declared concepts: {"size": {"low": 0.18, "high": 0.3}, "kind": '
                        '{"values": ["cat", "dog"]}}; undeclared labels are inferred from the '
                        "data (ranges printed)")
    g.add_argument("--holdout", type=_holdout, default=None, metavar="N|FRACTION",
                   help="held-out images for evaluation (MAP error / accuracy): a count or a "
                        "fraction, split with --seed (default 20%%, at most 300)")


def data_words(args: argparse.Namespace) -> list[str]:
    """The data options as command words (for the run's command.txt)."""
    words = []
    if getattr(args, "data", None):
        words += ["--data", str(args.data)]
    for spec in getattr(args, "columns", None) or []:
        words += ["--columns", spec]
    if getattr(args, "concepts_file", None):
        words += ["--concepts-file", str(args.concepts_file)]
    if getattr(args, "holdout", None) is not None:
        words += ["--holdout", f"{args.holdout:g}"]
    return words


def training_data(args: argparse.Namespace, config, explicit: dict | None = None):
    """``(config, train_set, held_out_set)`` for ``--data``; ``ValueError`` names the problem.

    ``config.image_size`` follows the images unless ``--image-size`` was given.
    """
    from conceptebm.datasets.user import load_images, read_concepts, split_holdout

    declared = read_concepts(args.concepts_file) if args.concepts_file else None
    ds = load_images(args.data, concepts=declared, columns=args.columns, infer=True)
    if config.concept not in ds.concepts:
        raise ValueError(f"--concept {config.concept!r} is not a label of {args.data}; its "
                         f"labels: {', '.join(ds.concepts)} (map columns with --columns "
                         f"{config.concept}=a,b)")
    if "image_size" not in (explicit or {}) and config.image_size != ds.image_size:
        config = config.replace(image_size=ds.image_size)
    if config.image_size != ds.image_size:
        raise ValueError(f"--image-size {config.image_size} but the images of {args.data} are "
                         f"{ds.image_size}x{ds.image_size}; drop --image-size")
    train_set, held = split_holdout(ds, args.holdout, seed=config.seed)
    print(f"[train] {args.data}: {len(ds)} images of {ds.image_size}x{ds.image_size}, "
          f"{len(held)} held out (seed {config.seed})")
    for line in ds.describe():
        print(f"[train]   {line}")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.json").write_text(json.dumps(
        {"data": str(args.data), "columns": args.columns, "concepts_file": args.concepts_file,
         "holdout": len(held), "split_seed": config.seed, "train": len(train_set),
         **ds.info()}, indent=1))
    return config, train_set, held


def write_each(folder, images, labels: dict, concepts: dict, *, start: int = 0,
               append: bool = False) -> Path:
    """One PNG per image plus labels (see :func:`conceptebm.datasets.save_folder`)."""
    from conceptebm.datasets.user import save_folder

    return save_folder(images, labels, concepts, folder, start=start, append=append)


def write_each_sample(folder, images, tree, models: dict, expression: str) -> Path:
    """``sample --each``: the samples with the values of the expression's atoms as labels
    when it is a plain conjunction (``position=(0.3,-0.2) & color=red``); an expression with
    ``|``, ``~`` or weights has no single label per image, so only the file names are listed.
    The expression itself goes to ``expression.txt``."""
    import torch

    from conceptebm.compose.expr import Atom, Conj

    terms = tree.terms if isinstance(tree, Conj) else (tree,)
    labels, concepts = {}, {}
    if all(isinstance(t, Atom) for t in terms):
        for t in terms:
            c = models[t.name].concept
            enc = c.index(t.value) if c.is_categorical else torch.as_tensor(
                t.value if isinstance(t.value, tuple) else (t.value,), dtype=torch.float32)
            labels[t.name] = (torch.full((images.shape[0],), enc, dtype=torch.long)
                              if c.is_categorical else enc[None].expand(images.shape[0], -1))
            concepts[t.name] = c
    out = write_each(folder, images, labels, concepts)
    (out / "expression.txt").write_text(expression + "\n")
    return out

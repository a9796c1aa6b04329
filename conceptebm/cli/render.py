"""``conceptebm render NAME -n 64 -o grid.png``: a PNG grid of a dataset's examples.

Example:
    conceptebm render position -n 64 -o position.png
    conceptebm render cross_product --set fraction=0.1 --set split=test -n 32 -o held_out.png
    conceptebm render multiview -n 16 -o views.png      # one scene's views per row
"""

from __future__ import annotations

import argparse
import json

import torch

from conceptebm.cli import validate
from conceptebm.cli.user_data import add_each_options
from conceptebm.cli.validate import CommandError
from conceptebm.datasets.factories import DATASETS, make_dataset
from conceptebm.plotting import save_grid

__all__ = ["register", "parse_option", "batches"]


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as int, float, or a comma-separated tuple of them."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r} (no key)")

    def one(v: str):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    parts = [one(v.strip()) for v in raw.split(",")]
    return key.strip(), tuple(parts) if len(parts) > 1 else parts[0]


parse_option.bad = ("novalue", "=1", "nope=1")  # what the CLI test feeds --set


MAX_GRID = 1024  # images in one PNG grid; more is unreadable (write files with --each)
CHUNK = 256  # items rendered per batch: memory stays bounded whatever -n is


def _check(args: argparse.Namespace) -> None:
    """The dataset options exist and the grid is readable, before rendering anything."""
    try:
        make_dataset(args.name, size=1, seed=args.seed, image_size=args.image_size,
                     **dict(args.set or []))
    except (ValueError, TypeError) as err:
        given = " ".join(f"{k}={v}" for k, v in (args.set or []))
        raise CommandError(f"--set {given}: {err}") from None
    if args.n > MAX_GRID and not getattr(args, "each", None):
        raise CommandError(f"-n {args.n}: a grid holds at most {MAX_GRID} images; pass "
                           "--each DIR to write each image to a file instead")
    each_folder(args)


def each_folder(args):
    """The --each folder, checked before any work (nothing of the user's is overwritten)."""
    from conceptebm.cli.user_data import EachFolder

    if (getattr(args, "append", False) or getattr(args, "force", False)) and not args.each:
        raise CommandError(f"--{'append' if args.append else 'force'} applies to --each DIR; "
                           "pass --each DIR or drop it")
    if not getattr(args, "each", None):
        return None
    each = EachFolder(args.each, append=getattr(args, "append", False),
                      force=getattr(args, "force", False))
    each.check()
    return each


def batches(ds, start: int, n: int, chunk: int = CHUNK, progress: bool = False):
    """``(indices, images (b, 3, H, W), labels)`` for items ``start .. start + n - 1`` of
    ``ds``, ``chunk`` at a time (a tqdm bar with ``progress``)."""
    from tqdm.auto import tqdm

    with tqdm(total=n, desc="render", unit="img", disable=not progress) as bar:
        for lo in range(start, start + n, chunk):
            idx = list(range(lo, min(lo + chunk, start + n)))
            images, labels = ds.batch(idx)
            bar.update(len(idx))
            yield idx, images, labels


def _main(args) -> int:
    torch.set_num_threads(args.threads)
    options = dict(args.set or [])
    ds = make_dataset(args.name, size=args.start + args.n, seed=args.seed,
                      image_size=args.image_size, **options)
    grid, rows = [], []
    if getattr(args, "each", None):  # one PNG per image + labels.csv (cli/user_data.py)
        return _write_each(args, ds)
    for idx, images, labels in batches(ds, args.start, args.n,
                                       progress=args.n > CHUNK and not args.quiet):
        grid.append(images)
        if args.labels:
            rows += [{k: v[j].tolist() for k, v in labels.items()} for j in range(len(idx))]
    images = torch.cat(grid)  # (n, 3, H, W), at most MAX_GRID of them
    nrow = args.nrow or getattr(ds, "n_views", 8)
    last = args.start + args.n - 1
    title = f"{args.name} (seed {args.seed}, items {args.start}..{last})"
    path = save_grid(images, args.output, nrow=nrow, title=title)
    print(f"wrote {path} ({args.n} images of {args.image_size}x{args.image_size})")
    if args.labels:
        from conceptebm.checkpoints import atomic_write_text

        atomic_write_text(args.labels, json.dumps({"dataset": ds.info(), "items": rows}))
        print(f"wrote {args.labels}")
    return 0


def _write_each(args, ds) -> int:
    from conceptebm.cli import Interrupted

    if getattr(ds, "n_objects", 1) != 1 or getattr(ds, "n_views", None):
        raise CommandError(f"--each writes one labelled object per image; {args.name!r} has "
                           "several objects or views per scene (use the grid)")
    each = each_folder(args)
    try:
        for _idx, images, labels in batches(ds, args.start, args.n,
                                            progress=args.n > CHUNK and not args.quiet):
            each.write(images, labels, ds.concepts)
    except KeyboardInterrupt as err:  # what was finished stays, listed in labels.csv
        each.finish()
        raise Interrupted(getattr(err, "signum", 2),
                          f"wrote {len(each.written)} of {args.n} images to {args.each}; "
                          "its labels.csv lists them") from None
    each.finish()
    print(f"wrote {args.n} PNGs and labels.csv to {args.each} (conceptebm train --data "
          f"{args.each} reads them)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("render", help="render a PNG grid of a scene dataset's examples",
                       description=f"Datasets: {', '.join(DATASETS)}.")
    p.add_argument("name", choices=list(DATASETS), metavar="NAME",
                   help=f"dataset name ({', '.join(DATASETS)})")
    p.add_argument("-n", type=validate.integer(1, 100_000_000), default=64,
                   help=f"number of images (default 64; a grid holds at most {MAX_GRID})")
    p.add_argument("-o", "--output", type=validate.output_file(), default="grid.png",
                   help="image path (.png, .jpg, .pdf, .svg; default grid.png)")
    p.add_argument("--seed", type=validate.SEED, default=0)
    p.add_argument("--start", type=validate.integer(0, 10**12), default=0,
                   help="index of the first item")
    p.add_argument("--image-size", type=validate.integer(8, 1024), default=32,
                   help="H = W in pixels, 8-1024 (default 32)")
    p.add_argument("--nrow", type=validate.integer(0, MAX_GRID), default=0,
                   help="images per row (default 8; multiview: one scene per row)")
    p.add_argument("--set", type=parse_option, action="append", metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. clutter=1,3 colors=red,blue)")
    p.add_argument("--each", type=validate.output_dir(), default=None, metavar="DIR",
                   help="write one PNG per image plus labels.csv to DIR instead of a grid "
                        "(the layout conceptebm train --data and infer read); a folder "
                        "holding images or labels this tool did not write is refused unless "
                        "--append or --force")
    add_each_options(p)
    p.add_argument("--labels", type=validate.output_file((".json",), "JSON"), default=None,
                   help="also write the labels to this JSON file")
    validate.add_threads(p)
    validate.add_quiet(p)
    p.set_defaults(func=_main, check=_check)

"""``conceptebm render NAME -n 64 -o grid.png``: a PNG grid of a dataset's examples.

Example:
    conceptebm render position -n 64 -o position.png
    conceptebm render cross_product --set fraction=0.1 --set split=test -n 32 -o held_out.png
    conceptebm render multiview -n 16 -o views.png      # one scene's views per row
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from conceptebm.datasets.factories import DATASETS, make_dataset
from conceptebm.plotting import save_grid

__all__ = ["register", "parse_option"]


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as int, float, or a comma-separated tuple of them."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)

    def one(v: str):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    parts = [one(v.strip()) for v in raw.split(",")]
    return key.strip(), tuple(parts) if len(parts) > 1 else parts[0]


def _main(args) -> int:
    torch.set_num_threads(max(1, args.threads))
    options = dict(args.set or [])
    ds = make_dataset(args.name, size=args.start + args.n, seed=args.seed,
                      image_size=args.image_size, **options)
    idx = list(range(args.start, args.start + args.n))
    images, labels = ds.batch(idx)
    nrow = args.nrow or getattr(ds, "n_views", 8)
    title = f"{args.name} (seed {args.seed}, items {idx[0]}..{idx[-1]})"
    path = save_grid(images, args.output, nrow=nrow, title=title)
    print(f"wrote {path} ({len(idx)} images of {args.image_size}x{args.image_size})")
    if args.labels:
        rows = [{k: v[j].tolist() for k, v in labels.items()} for j in range(len(idx))]
        Path(args.labels).write_text(json.dumps({"dataset": ds.info(), "items": rows}))
        print(f"wrote {args.labels}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("render", help="render a PNG grid of a scene dataset's examples",
                       description=f"Datasets: {', '.join(DATASETS)}.")
    p.add_argument("name", choices=list(DATASETS), metavar="NAME",
                   help=f"dataset name ({', '.join(DATASETS)})")
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("-o", "--output", default="grid.png", help="PNG path (default grid.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="index of the first item")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--nrow", type=int, default=0,
                   help="images per row (default 8; multiview: one scene per row)")
    p.add_argument("--set", type=parse_option, action="append", metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. clutter=1,3 colors=red,blue)")
    p.add_argument("--labels", default=None, help="also write the labels to this JSON file")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=_main)

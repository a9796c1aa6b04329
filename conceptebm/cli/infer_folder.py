"""``conceptebm infer DIR --separate -o results.jsonl``: a folder streamed to JSON Lines.

    conceptebm infer photos/ --separate -o results.jsonl          # rerun: skips what is done
    torchrun --nproc-per-node 4 -m conceptebm infer photos/ --separate -o results.jsonl

The streaming, resume, sharding and merge are :mod:`conceptebm.scenes.folder`; this module
gives it ``infer``'s answer of a chunk (the same rows as ``--json``, with ``path`` and
``flags``) and the option checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conceptebm.cli import validate
from conceptebm.cli.validate import CommandError

__all__ = ["IMAGE_OR_FOLDER", "OUTPUT", "expand_images", "check", "write_jsonl"]

IMAGE_OR_FOLDER = validate.existing_path("image file or folder of images")
OUTPUT = validate.output_file((".jsonl",), what="JSON Lines file")


def expand_images(given) -> list[str]:
    """The image paths ``given`` names: files as they are, a folder as its image files in
    sorted order (:func:`conceptebm.scenes.folder.image_files`)."""
    from conceptebm.scenes.folder import IMAGE_SUFFIXES, image_files

    paths = []
    for g in given:
        if Path(g).is_dir():
            found = image_files(g)
            if not found:
                raise CommandError(f"the folder {g} holds no image files "
                                   f"({', '.join(IMAGE_SUFFIXES)}); give a folder of images")
            paths += found
        else:
            paths.append(str(g))
    return paths


def check(args: argparse.Namespace) -> None:
    """``-o`` writes one line per image: several images need ``--separate``; ``--save``
    (posterior files numbered by position) does not stream."""
    out = getattr(args, "output", None)
    if out is None or not hasattr(args, "images"):  # energy-map's -o is its figure
        return
    if getattr(args, "save", None):
        raise CommandError(f"--save {args.save} with -o {out}: the posterior files of a "
                           "streamed folder would be numbered by chunk; drop --save (the JSON "
                           "lines hold each interval) or run --save without -o")
    many = len(args.images) > 1 or any(Path(p).is_dir() for p in args.images)
    if many and not args.separate:
        raise CommandError(f"-o {out} writes one JSON line per image: add --separate (without "
                           "it, several images are views of one object)")


def _line(path: str, row: dict) -> dict:
    flags = []
    if row.get("object_found") is False:
        flags.append("no_object_found")
    if (row.get("posterior") or {}).get("warnings"):
        flags.append("posterior_warnings")
    return {"path": path, **{k: v for k, v in row.items() if k != "images"}, "flags": flags}


def write_jsonl(model, paths: list[str], calibration, args: argparse.Namespace,
                infer_sets, load_images) -> int:
    """Stream ``paths`` through ``infer_sets`` (``infer``'s answer of a batch of sets) into
    ``args.output``, in one process or as this process's shard under ``torchrun``."""
    from conceptebm.scenes.folder import CHUNK, infer_folder

    quiet = argparse.Namespace(**{**vars(args), "json": True})  # rows only, no text lines

    def rows_of(chunk: list[str]) -> list[dict]:
        images = load_images(chunk, model, args.resize)  # (n, 3, H, W)
        rows = infer_sets(model, images[:, None], [[p] for p in chunk], chunk, calibration,
                          quiet)
        return [_line(p, r) for p, r in zip(chunk, rows, strict=True)]

    stats = infer_folder(paths, rows_of, args.output, chunk=CHUNK,
                         progress=not args.quiet and sys.stderr.isatty())
    if stats["rows"] is not None:  # rank 0
        who = (f" ({stats['world']} processes; rank 0 inferred {stats['inferred']} of its "
               f"{stats['assigned']})" if stats["world"] > 1 else
               f" ({stats['inferred']} inferred now, {stats['skipped']} already there)")
        print(f"wrote {args.output}: {stats['rows']} rows{who}", flush=True)
    return 0

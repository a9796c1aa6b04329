"""``conceptebm make-data NAME``: the example datasets, written as a user's own files.

    conceptebm make-data foreign --out-dir data/foreign -n 1700   # PNGs + labels.csv
    conceptebm make-data digits -o digits.npz                     # scikit-learn's digits
    conceptebm make-data digits -o digits16.npz --image-size 16   # upsampled

``foreign``: our renderer with a camera, light, palette, shape names and size range that no
shipped model saw (:mod:`conceptebm.datasets.foreign`), as a folder of PNGs with a
``labels.csv``. ``digits``: the 1,797 8x8 handwritten digits bundled with scikit-learn
(:mod:`conceptebm.datasets.digits`; no download), as one ``.npz`` that declares its
categorical ``digit`` concept. Both train with ``conceptebm train --data``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from conceptebm.cli import validate
from conceptebm.cli.validate import CommandError

__all__ = ["register"]

MAX_FOREIGN = 10_000_000  # scenes; rendered 256 at a time, so memory stays bounded
# what make-data foreign writes into its folder (anything else there is the user's)
_FOREIGN_FILE = re.compile(r"scene_\d{5,}\.png|labels\.csv")


def _power_of_two(text: str) -> int:
    v = int(text)
    if v < 8 or v > 1024 or v & (v - 1):
        raise ValueError(text)
    return v


DIGITS_SIZE = validate.OptionType("must be a power of two in [8, 1024] (8: the digits' own "
                                  "size)", _power_of_two, ["abc", "12", "4", "2048"],
                                  "power_of_two")


def _check_foreign(args: argparse.Namespace) -> None:
    """Nothing of the user's is overwritten: the folder is new, empty, or make-data's own."""
    out = Path(args.out_dir)
    if not out.is_dir():
        return
    others = sorted(p.name for p in out.iterdir() if not _FOREIGN_FILE.fullmatch(p.name))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3
                                         else "")
        raise CommandError(f"--out-dir {args.out_dir} holds files make-data did not write "
                           f"({shown}); choose a new or empty folder")


def _foreign(args: argparse.Namespace) -> int:
    import torch

    from conceptebm.datasets.foreign import write_foreign

    torch.set_num_threads(args.threads)
    out = write_foreign(args.out_dir, args.n, seed=args.seed, image_size=args.image_size)
    print(f"wrote {args.n} foreign scenes and labels.csv to {out} (conceptebm train --data "
          f"{out} reads them)")
    return 0


def _digits(args: argparse.Namespace) -> int:
    import torch

    from conceptebm.datasets.digits import write_digits

    torch.set_num_threads(args.threads)
    try:
        path = write_digits(args.output, args.image_size)
    except ImportError as err:  # scikit-learn is the dev extra
        raise CommandError(str(err)) from None
    print(f"wrote 1797 digits ({args.image_size}x{args.image_size}) to {path} (conceptebm "
          f"train --data {path} reads them)")
    return 0


def register(sub) -> None:
    from conceptebm.cli import Parser  # one-line errors, exit 2

    p = sub.add_parser("make-data", help="write an example dataset (foreign scenes, digits) "
                                         "as a user's files",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    names = p.add_subparsers(dest="dataset", metavar="dataset", parser_class=Parser,
                             required=True)
    f = names.add_parser("foreign", help="scenes no shipped model saw: PNGs + labels.csv",
                         description="Scenes of a camera, light, palette, shape names and size "
                                     "range no shipped model saw (conceptebm.datasets.foreign), "
                                     "written as PNGs plus labels.csv (file,x,y,color,shape,"
                                     "size).")
    f.add_argument("--out-dir", type=validate.output_dir(), required=True,
                   help="folder to write (new, empty, or an earlier make-data foreign's)")
    f.add_argument("-n", type=validate.integer(1, MAX_FOREIGN), default=1700,
                   help=f"number of scenes, 1-{MAX_FOREIGN:_} (default 1700)")
    f.add_argument("--seed", type=validate.SEED, default=0)
    f.add_argument("--image-size", type=validate.integer(8, 1024), default=32,
                   help="H = W in pixels, 8-1024 (default 32)")
    validate.add_threads(f)
    f.set_defaults(func=_foreign, check=_check_foreign)

    d = names.add_parser("digits", help="scikit-learn's 1,797 handwritten digits: one .npz",
                         description="scikit-learn's bundled handwritten digits (1,797 8x8 "
                                     "images, 10 classes; no download) as one .npz with its "
                                     "categorical 'digit' concept declared inside. Needs "
                                     "scikit-learn (the dev extra).")
    d.add_argument("-o", "--output", type=validate.output_file((".npz",), "NumPy archive"),
                   default="digits.npz", help="the .npz to write (default digits.npz)")
    d.add_argument("--image-size", type=DIGITS_SIZE, default=8,
                   help="8 (native) or 16, 32... (upsampled bilinearly)")
    validate.add_threads(d)
    d.set_defaults(func=_digits)

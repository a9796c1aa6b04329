"""``conceptebm calibrate NAME...``: the energy calibration of shipped models ("no object").

    conceptebm calibrate position                  # print its calibration and verdicts (JSON)
    conceptebm calibrate position color --write    # and store it in each model's record

Renders ``-n`` held-out scenes of each model's training dataset at a seed no training run uses,
records the quantiles of their best energies, and prints one JSON line per model: the record,
the thresholds it sets, and how images that hold no object (white, black, grey, noise, the
empty background) fare against them. ``--write`` stores the record in the shipped model's
files (``conceptebm infer`` reads it). The work is :mod:`conceptebm.scenes.calibrate`.
"""

from __future__ import annotations

import argparse
import json

from conceptebm.cli import validate

__all__ = ["register"]

MAX_SCENES = 100_000  # held-out scenes rendered and read at once: 100,000 32x32 are 1.2 GB


def _main(args: argparse.Namespace) -> int:
    import torch

    from conceptebm import pretrained
    from conceptebm.scenes.calibrate import calibration_report, store_calibration

    torch.set_num_threads(args.threads)
    for name in args.names:
        report = calibration_report(name, n=args.n)
        print(json.dumps(report), flush=True)
        if args.write:
            store_calibration(pretrained.DIR / f"{name}.safetensors",
                              report["energy_calibration"])
    return 0


def register(sub) -> None:
    from conceptebm import pretrained
    from conceptebm.scenes.calibrate import MIN_SCENES

    p = sub.add_parser("calibrate", help="energy calibration of shipped models (no-object "
                                         "answers)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", choices=pretrained.NAMES, metavar="NAME",
                   help=f"shipped model names ({', '.join(pretrained.NAMES)})")
    p.add_argument("-n", type=validate.integer(MIN_SCENES, MAX_SCENES), default=200,
                   help=f"held-out scenes, {MIN_SCENES}-{MAX_SCENES} (default 200: the "
                        "shipped records' count)")
    p.add_argument("--write", action="store_true",
                   help="store the calibration in each model's record (safetensors metadata "
                        "and JSON twin)")
    validate.add_threads(p)
    p.set_defaults(func=_main)

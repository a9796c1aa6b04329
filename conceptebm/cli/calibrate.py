"""``conceptebm calibrate NAME...``: the calibrations of shipped models, stored in their records.

    conceptebm calibrate position                  # print its calibration and verdicts (JSON)
    conceptebm calibrate position color --write    # and store it in each model's record
    conceptebm calibrate position_multiview --posterior-temperature --views 1 2 4 8 --write

The energy calibration ("no object found"):
Renders ``-n`` held-out scenes of each model's training dataset at a seed no training run uses,
records the quantiles of their best energies, and prints one JSON line per model: the record,
the thresholds it sets, and how images that hold no object (white, black, grey, noise, the
empty background) fare against them. ``--write`` stores the record in the shipped model's
files (``conceptebm infer`` reads it). The work is :mod:`conceptebm.scenes.calibrate`.

``--posterior-temperature`` fits instead the temperature at which the model's 90 % posterior
intervals cover the truth 90 % of the time on ``-n`` validation sets (default 100) of each count
of ``--views``, on a ``--points`` grid refined ``--refine`` times where the mass lies
(:mod:`conceptebm.scenes.temperature`); ``--write``
stores it as ``posterior_temperature`` (``conceptebm infer --posterior`` uses it).

``--map-grid`` chooses instead the MAP start grid and refinement steps of a continuous reader:
the error of every grid (9 ... 65 points a coordinate) and step count (0 ... 120) on ``-n``
validation images (default 200) of its training family and of a renderer variant with another
camera and light; the smallest grid, then the fewest steps, within 0.002 of the finest search on
every source (:mod:`conceptebm.evaluate.map_grid`). ``--write`` stores it as ``"map"`` (with
the table as ``"map_selection"``); ``conceptebm infer`` and ``scenes.infer_concept`` use it.

``--energy-margin M --write`` stores a model's own energy margin (the "no object found"
threshold is q99 + M (q99 - q50) of its energy calibration; default M = 1), chosen on
validation images with and without objects (``benchmarks/false_alarms.py`` prints the trade
at several margins); a later ``--write`` of the energy calibration keeps it.

``--familiarity`` fits instead the check that an image is of the kind the model knows (coarse
scene statistics and a colour floor, fitted on ``-n`` renders of the scene family, default
6,000; :mod:`conceptebm.evaluate.familiarity`); ``--write`` stores it as ``familiarity``, and
``conceptebm infer`` then says "unlike the scenes the model knows" (or "no patch of colour
like the objects the model knows") rather than answering a photograph, a drawing or a texture.
"""

from __future__ import annotations

import argparse
import json
import sys

from conceptebm.cli import validate

__all__ = ["register"]

MAX_SCENES = 100_000  # held-out scenes rendered and read at once: 100,000 32x32 are 1.2 GB


def _main(args: argparse.Namespace) -> int:
    import torch

    from conceptebm import pretrained
    from conceptebm.scenes.calibrate import calibration_report, store_calibration

    torch.set_num_threads(args.threads)
    chosen = [f for f, on in (("--map-grid", args.map_grid),
                              ("--posterior-temperature", args.posterior_temperature),
                              ("--familiarity", args.familiarity),
                              ("--energy-margin", args.energy_margin is not None)) if on]
    if len(chosen) > 1:
        print(f"error: conceptebm calibrate: {' and '.join(chosen)} are {len(chosen)} "
              "calibrations; run them one at a time", file=sys.stderr)
        return 2
    if args.map_grid:
        return _map_grid(args)
    if args.energy_margin is not None:
        return _energy_margin(args)
    if args.familiarity:
        from conceptebm.checkpoints import update_record
        from conceptebm.scenes.calibrate import shipped_familiarity

        for name in args.names:
            record = shipped_familiarity(name, n=args.n or 6000)
            print(json.dumps({"model": name, **{k: v for k, v in record.items()
                                                if k not in ("mean", "basis", "variance")}}),
                  flush=True)
            if args.write:
                update_record(pretrained.DIR / f"{name}.safetensors", {"familiarity": record})
        return 0
    if args.posterior_temperature:
        from conceptebm.scenes.temperature import (
            shipped_temperature,
            store_posterior_temperature,
        )

        for name in args.names:
            cal = shipped_temperature(name, tuple(args.views), n=args.n or 100,
                                      points=args.points, refine=args.refine)
            print(json.dumps({"model": name, "posterior_calibration": cal}), flush=True)
            if args.write:
                store_posterior_temperature(pretrained.DIR / f"{name}.safetensors", cal)
        return 0
    for name in args.names:
        report = calibration_report(name, n=args.n or 200)
        print(json.dumps(report), flush=True)
        if args.write:
            store_calibration(pretrained.DIR / f"{name}.safetensors",
                              report["energy_calibration"])
    return 0


def _energy_margin(args: argparse.Namespace) -> int:
    from conceptebm import pretrained
    from conceptebm.checkpoints import read_record, update_record
    from conceptebm.evaluate.calibration import no_object_threshold

    for name in args.names:
        path = pretrained.DIR / f"{name}.safetensors"
        cal = read_record(path).get("energy_calibration")
        if not cal:
            print(f"error: conceptebm calibrate --energy-margin: {name} has no energy "
                  f"calibration; run conceptebm calibrate {name} --write first", file=sys.stderr)
            return 2
        new = {**cal, "margin": args.energy_margin,
               "margin_command": f"conceptebm calibrate {name} --energy-margin "
                                 f"{args.energy_margin:g} --write"}
        print(json.dumps({"model": name, "margin": args.energy_margin,
                          "threshold_before": no_object_threshold(cal),
                          "threshold": no_object_threshold(new)}), flush=True)
        if args.write:
            update_record(path, {"energy_calibration": new})
    return 0


def _map_grid(args: argparse.Namespace) -> int:
    from conceptebm import pretrained
    from conceptebm.evaluate.map_grid import (
        VALIDATION_SEED,
        select_map_settings,
        store_map_settings,
        validation_sources,
    )

    n = args.n or 200
    for name in args.names:
        model = pretrained.load(name)
        if model.concept.is_categorical:
            print(f"error: conceptebm calibrate --map-grid: {name} reads the categorical "
                  f"{model.concept.name!r}, which is read exactly (no start grid); pass a "
                  "position reader", file=sys.stderr)
            return 2
        sources = validation_sources(model, n)
        grids = f" --grids {' '.join(map(str, args.grids))}" if args.grids else ""
        settings, record = select_map_settings(
            model, sources, grids=args.grids, progress=not args.quiet, seed=VALIDATION_SEED,
            command=f"conceptebm calibrate {name} --map-grid -n {n}{grids} --write")
        print(json.dumps({"model": name, "map": settings.to_dict(), "map_selection": record}),
              flush=True)
        if args.write:  # the record re-read right before writing: other entries are kept
            store_map_settings(pretrained.DIR / f"{name}.safetensors", settings, record)
    return 0


def register(sub) -> None:
    from conceptebm import pretrained
    from conceptebm.scenes.calibrate import MIN_SCENES

    p = sub.add_parser("calibrate", help="energy calibration of shipped models (no-object "
                                         "answers)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", choices=pretrained.NAMES, metavar="NAME",
                   help=f"shipped model names ({', '.join(pretrained.NAMES)})")
    p.add_argument("-n", type=validate.integer(MIN_SCENES, MAX_SCENES), default=None,
                   help=f"held-out scenes (or scene sets), {MIN_SCENES}-{MAX_SCENES} (default "
                        "200 for the energy calibration, 100 sets a view count for the "
                        "temperature: the shipped records' counts)")
    p.add_argument("--posterior-temperature", action="store_true",
                   help="fit the posterior temperature (interval coverage) instead of the "
                        "energy calibration")
    p.add_argument("--views", type=validate.integer(1, 64), nargs="+", default=[1],
                   help="with --posterior-temperature: view counts to fit at, 1-64 "
                        "(default 1; position_multiview: 1 2 4 8)")
    p.add_argument("--points", type=validate.integer(8, 256), default=48,
                   help="with --posterior-temperature: grid points a coordinate, 8-256 "
                        "(default 48)")
    p.add_argument("--refine", type=validate.integer(1, 16), default=1,
                   help="with --posterior-temperature: refine the grid this many times a "
                        "coordinate where the posterior's mass lies, 1-16 (default 1: none)")
    p.add_argument("--map-grid", action="store_true",
                   help="choose the MAP start grid and refinement steps on validation images "
                        "(default -n 200) instead of the energy calibration")
    p.add_argument("--grids", type=validate.integer(2, 257), nargs="+", default=None,
                   help="with --map-grid: the start grids to compare, points a coordinate "
                        "(default 9 17 25 33 41 65, and 97 129 for a late-conditioned model)")
    p.add_argument("--familiarity", action="store_true",
                   help="fit the check that an image is of the kind the model knows (scene "
                        "statistics and a colour floor; default -n 6000 renders of the scene "
                        "family) instead of the energy calibration")
    p.add_argument("--energy-margin", type=validate.real(-1.0, 5.0), default=None,
                   metavar="M",
                   help="store M (in [-1, 5]) as the model's own energy margin, in units of "
                        "its calibration's q99 - q50 (default rule: 1): choose it with "
                        "benchmarks/false_alarms.py's margin sweep on validation images; "
                        "with --write")
    p.add_argument("--write", action="store_true",
                   help="store the calibration in each model's record (safetensors metadata "
                        "and JSON twin)")
    validate.add_threads(p)
    validate.add_quiet(p)
    p.set_defaults(func=_main)

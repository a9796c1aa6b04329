"""How good are the trained concept EBMs? Judge their generations; infer positions with them.

    python -m paper.benchmarks.train_quality                         # the shipped models, n = 500
    python -m paper.benchmarks.train_quality --quick --json out/train_quality.json
    python -m paper.benchmarks.train_quality --checkpoint position=runs/position/best.safetensors
    python -m paper.benchmarks.train_quality --select runs/position --concepts position --export

For each concept EBM, ``n`` target values are the labels of held-out scenes
(``make_dataset(concept, seed=2000003)``, a seed no training or selection run uses); one image
is generated per target from fresh low-frequency noise with the model's recommended sampler,
and the shipped judges read the concept off it. Position inference runs MAP
(:func:`conceptebm.infer.map_estimate`: a 17x17 grid, then 60 projected Adam steps) on the
held-out real scenes themselves. Every number has its standard error.

JSON keys: ``position.acc04`` (Euclidean error < 0.4), ``position.acc015``, ``position.mae``
(mean absolute error over both coordinates), ``color.acc``, ``shape.acc``, ``size.mae``,
``size.mae_frac`` (size MAE as a fraction of the size range), ``inference_position_mae``,
each with ``<key>_stderr`` (the keys follow each concept's declaration:
:func:`conceptebm.evaluate.selection.result_keys`; every continuous concept also gets
``<concept>.mae_frac``; with ``--inference`` the inference keys of a concept, e.g.
``inference_position_acc04``); ``<concept>.object_rate`` (the share of generations that show an
object at all: a blank generation counts as wrong, whatever the judges read off it);
``targets`` and ``pass`` (the targets of the task), ``n``,
``seconds`` per model, ``load_average``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.checkpoints import load_energy
from conceptebm.datasets import make_dataset
from conceptebm.evaluate import load_judges
from conceptebm.evaluate.selection import (
    SELECT_SEED,
    TEST_SEED,
    export,
    passes,
    score_model,
    select,
)
from conceptebm.infer.settings import MAP_GRID, MAP_STEPS, MAPSettings

#: The targets of the task: JSON key -> (target, "min" or "max").
TARGETS = {
    "position.acc04": (0.95, "min"),
    "position.mae": (0.10, "max"),
    "color.acc": (0.95, "min"),
    "shape.acc": (0.95, "min"),
    "size.mae_frac": (0.05, "max"),  # size MAE as a fraction of its range
    "inference_position_mae": (0.05, "max"),  # MAP inference on real scenes
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8 targets per model (the tests)")
    p.add_argument("--n", type=int, default=500, help="targets per model")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--concepts", nargs="*", default=list(pretrained.CONCEPTS))
    p.add_argument("--inference", nargs="*", default=["position"], metavar="CONCEPT",
                   help="also score MAP inference on the held-out scenes for these concepts "
                   "(default: position)")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="NAME=PATH: score this checkpoint instead of the shipped model")
    p.add_argument("--select", help="a run folder: pick its best snapshot and sampler steps "
                   "(with --concepts NAME) on held-out scenes of another seed")
    p.add_argument("--select-n", type=int, default=200, help="targets per selection candidate")
    p.add_argument("--export", action="store_true",
                   help="with --select: ship the pick to conceptebm/pretrained with its metrics")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n = 8 if args.quick else args.n
    map_settings = MAPSettings(grid=5, steps=10) if args.quick else MAPSettings(grid=MAP_GRID,
                                                                                steps=MAP_STEPS)
    judge = load_judges()

    def scenes(name: str, size: int, seed: int, image_size: int):
        return make_dataset(name, size=size, seed=seed, image_size=image_size)

    if args.select:
        name = args.concepts[0]
        infer = name in args.inference
        path, sampler, _ = select(
            Path(args.select), load_energy, judge,
            lambda net: scenes(name, args.select_n, SELECT_SEED, net.image_size), args.select_n,
            inference=infer, log=lambda s: print(s, flush=True))
        print(f"selected {path} with {sampler.num_steps} sampler steps")
        if args.export:
            def metrics(dest):
                net = load_energy(dest)
                return score_model(net, judge, scenes(name, n, TEST_SEED, net.image_size), n,
                                   inference=infer, map_settings=map_settings)

            dest = export(Path(args.select), path, pretrained.DIR / f"{name}.safetensors",
                          sampler, metrics, n,
                          f"python -m paper.benchmarks.train_quality --concepts {name}")
            print(f"shipped {dest}")
        return 0
    overrides = dict(kv.split("=", 1) for kv in args.checkpoint)
    results = {}
    for name in args.concepts:
        net = load_energy(overrides[name]) if name in overrides else pretrained.load(name)
        results.update(score_model(net, judge, scenes(name, n, TEST_SEED, net.image_size), n,
                                   inference=name in args.inference,
                                   map_settings=map_settings))
    ok = passes(results, TARGETS)
    print(f"{'metric':<26}{'value':>10}{'stderr':>10}  target")
    for key, v in results.items():
        if key.endswith("_stderr") or key.endswith("seconds"):
            continue
        se = results.get(key + "_stderr", float("nan"))
        flag = "" if key not in ok else ("pass" if ok[key] else "FAIL")
        print(f"{key:<26}{v:>10.4f}{se:>10.4f}  {flag}")
    if args.json:
        out = {**results, "pass": ok, "n": n, "quick": args.quick,
               "load_average": os.getloadavg()[0], "checkpoints": overrides}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

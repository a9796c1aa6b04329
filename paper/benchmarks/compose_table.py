"""Reproduce the paper's Table 1 on our scenes: compositions of shipped position and color EBMs.

    python -m paper.benchmarks.compose_table --n 500 --json out/compose_table.json
    python -m paper.benchmarks.compose_table --quick            # a few chains, few steps (tests)

Every row generates ``--n`` images from fresh low-frequency noise, one chain per random target,
and scores them with the shipped judges (position correct within 0.4, also 0.15 and the mean
error; color accuracy; standard errors). Composition is calibrated by each model's energy gap
(``conceptebm.compose.calibrate``) unless ``--raw``. A PNG gallery per row goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from conceptebm.compose.calibrate import composition_scales
from conceptebm.compose.defaults import STEPS
from conceptebm.compose.generate import (
    composition_settings,
    generate,
    load_concepts,
    serving_models,
)
from conceptebm.compose.table import ROWS, draw_targets, extra_rows, row_energy
from conceptebm.datasets import PALETTE
from conceptebm.evaluate import load_judges
from conceptebm.plotting import save_grid

PAPER = {  # Table 1 of the paper: (first, second) accuracy per row
    "color": (0.128, 0.997), "position": (0.984, 0.201), "pos_and_color": (0.801, 0.8125),
    "pos_and_not_color": (0.872, 0.096), "not_pos_and_color": (0.033, 0.971),
    "pos1_or_pos2": (0.432, 0.413), "or_of_ands": (0.210, 0.217),
}


def _slice(targets: dict, s: int, e: int) -> dict:
    return {k: v[s:e] for k, v in targets.items()}


def _served(tree) -> dict:
    """The concepts a row's expression routes to another shipped model (two objects:
    position -> position_cd)."""
    return {c: m for c, m in serving_models(tree).items() if m != c}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [r for r in ROWS if not args.rows or r.key in args.rows]
    num_colors = len(PALETTE)
    if args.extras:
        rows += [r for r in extra_rows(num_colors) if not args.rows or r.key in args.rows]
    needed = sorted({c for r in rows for c in r.concepts})
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint or [])
    targets = draw_targets(args.n, num_colors, torch.Generator().manual_seed(args.seed))
    loaded = {}  # a row's serving models (serving_models: two objects use position_cd)

    def models_for(serve: dict):
        key = tuple(sorted(serve.items()))
        if key not in loaded:
            loaded[key] = load_concepts(needed, device=device, checkpoints=checkpoints,
                                        serve=serve, temperatures=args.negation != "energy")
        return loaded[key]

    cm = models_for(_served(rows[0].tree(targets))) if rows else load_concepts(needed,
                                                                                 device=device)
    settings = cm.settings.replace(num_steps=args.steps or STEPS, step_size=args.step_size,
                                   noise_scale=args.noise_scale)
    judge = load_judges().to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"_settings": {**settings.to_dict(), "n": args.n, "alpha": args.alpha,
                             "temperature": args.temperature, "calibrated": not args.raw,
                             "mixture_or": not args.energy_or,
                             "calibration_power": args.calibration_power,
                             "negation": args.negation, "negation_weight": args.negation_weight,
                             "temperatures": cm.temperatures,
                             "scales": cm.scales}}
    for row in rows:
        t0 = time.time()
        tree = row.tree(targets)
        served = _served(tree)
        cm = models_for(served)
        scales = None if args.raw else composition_scales(cm.scales, args.calibration_power)
        row_settings = composition_settings(cm, tree, steps=args.steps,
                                            step_size=args.step_size,
                                            noise_scale=args.noise_scale)
        images, preds = [], []
        for s in range(0, args.n, args.batch):
            tb = {k: v.to(device) for k, v in _slice(targets, s, s + args.batch).items()}
            energy = row_energy(row, tb, cm.models, alpha=args.alpha,
                                temperature=args.temperature, scales=scales,
                                temperatures=(cm.temperatures if args.negation != "energy"
                                              else None),
                                negation_weight=args.negation_weight,
                                closed_world=args.negation == "complement")
            x = generate(energy, tb["pos"].shape[0], row_settings, cm.image_shape, generator=gen,
                         device=device, mixture_or=not args.energy_or)
            preds.append(judge.predict(x))
            images.append(x.cpu())
        preds = {k: torch.cat([p[k] for p in preds]) for k in preds[0]}
        images = torch.cat(images)
        scores = row.scores(preds, {k: v.to(device) for k, v in targets.items()}, images)
        results[row.key] = {k: m.value for k, m in scores.items()}
        results[row.key].update({f"{k}_se": m.stderr for k, m in scores.items()})
        results[row.key]["seconds"] = time.time() - t0
        results[row.key]["num_steps"] = row_settings.num_steps
        if served:
            results[row.key]["models"] = served
        save_grid(images[:16], out_dir / f"{row.key}.png", title=row.title)
        cells = "  ".join(f"{k} {m.value:.3f}+-{m.stderr:.3f}" for k, m in scores.items()
                          if not k.endswith("0.15"))
        paper = f"  (paper {PAPER[row.key][0]:.3f} / {PAPER[row.key][1]:.3f})" \
            if row.key in PAPER else ""
        print(f"{row.title:<38} {cells}{paper}  {time.time() - t0:.0f}s", flush=True)
    return results


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="generations per row")
    p.add_argument("--batch", type=int, default=100, help="chains per sampler call")
    p.add_argument("--steps", type=int, default=None,
                   help="Langevin steps (default: conceptebm.compose.defaults.STEPS)")
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--noise-scale", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None, help="negation weight")
    p.add_argument("--temperature", type=float, default=None, help="disjunction temperature")
    p.add_argument("--raw", action="store_true", help="compose raw energies (no calibration)")
    p.add_argument("--calibration-power", type=float, default=None,
                   help="weight each concept by gap^-p (default: conceptebm.compose.defaults)")
    p.add_argument("--energy-or", action="store_true",
                   help="sample disjunctions by Langevin on the soft-min energy (eq. 8) instead "
                        "of as the mixture they define")
    p.add_argument("--negation", choices=("energy", "classifier", "complement"),
                   default="energy",
                   help="energy: NOT as -alpha * E (eq. 9); classifier: negated concepts "
                        "through their classifier (conceptebm.energies.NotAny / NotNear); "
                        "complement: the same in a closed world, the values left")
    p.add_argument("--negation-weight", type=float, default=1.0,
                   help="weight of a classifier / complement negation")
    p.add_argument("--rows", nargs="*", help="only these row keys")
    p.add_argument("--extras", action="store_true",
                   help="also implication, four-concept conjunction and two objects")
    p.add_argument("--checkpoint", nargs="*", metavar="NAME=PATH",
                   help="use these checkpoints instead of the shipped models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="out/compose_table", help="folder for PNG galleries")
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--quick", action="store_true", help="tiny run for tests")
    args = p.parse_args(argv)
    from conceptebm.compose.defaults import ALPHA, CALIBRATION_POWER, TEMPERATURE

    for name in ("n", "batch", "steps", "threads"):  # counts
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    for name, low, strict in (("negation_weight", 0, True), ("temperature", 0, True),
                              ("step_size", 0, True), ("noise_scale", 0, False),
                              ("alpha", 0, False), ("calibration_power", 0, False)):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value)
                                      and (value > low if strict else value >= low)):
            p.error(f"--{name.replace('_', '-')} must be a finite number "
                    f"{'>' if strict else '>='} {low}, got {value}")
    known = {r.key for r in ROWS} | {r.key for r in extra_rows(len(PALETTE))}
    unknown = sorted(set(args.rows or ()) - known)
    if unknown:
        p.error(f"--rows: unknown row {unknown[0]!r}; rows: {', '.join(sorted(known))}")

    if args.calibration_power is None:
        args.calibration_power = CALIBRATION_POWER
    args.alpha = ALPHA if args.alpha is None else args.alpha
    args.temperature = TEMPERATURE if args.temperature is None else args.temperature
    if args.quick:
        args.n, args.batch, args.steps = 8, 8, 3
    return args


def main(argv=None) -> int:
    args = parse(argv)
    res = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

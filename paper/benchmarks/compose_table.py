"""Reproduce the paper's Table 1 on our scenes: compositions of shipped position and color EBMs.

    OMP_NUM_THREADS=1 python -m paper.benchmarks.compose_table --threads 1 --n 500 \\
        --denoise-steps 0 K --json paper/results/table1.json     # the test read (seed 20261207)
    python -m paper.benchmarks.compose_table --split validation ...  # what compose_sweep runs
    python -m paper.benchmarks.compose_table --quick            # a few chains, few steps (tests)

Protocol. Every row draws ``--n`` random targets from a seed: ``--val-seed`` (default 0, the
seed on which the composition knobs of :mod:`conceptebm.compose.defaults` were fixed, and on
which :mod:`paper.benchmarks.compose_sweep` checks them) with ``--split validation``, or
``--test-seed`` (default 20261207, read once for the reported table) with ``--split test``
(the default). The two must differ.

Every row generates one chain per target from fresh low-frequency noise and scores the images
with the shipped judges (position correct within 0.4, also 0.15 and the mean error; color
accuracy; standard errors). An image that shows no object fails its row (it counts as wrong
in every accuracy, and as showing the negated value in a rate that should be low;
``object_rate`` is reported). Composition is calibrated by each model's energy gap
(``conceptebm.compose.calibrate``) unless ``--raw``. Realism (unless ``--no-realism``): the
Fréchet distance in the judges' feature space (:func:`conceptebm.evaluate.realism`) between a
row's generations and real renders of the same targets (:func:`conceptebm.compose.table.
real_targets`), and its floor (a second real set of the same targets). ``--denoise-steps 0 5``
scores each chain as it ends and after 5 more noise-free steps (the same chains continued).

JSON (flat): ``<row>.<metric>`` and ``<row>.<metric>_se`` for each row (``<row>.denoise<K>.
<metric>`` for a denoised read), ``<row>.fid``, ``<row>.fid_floor``, ``command``,
``protocol``, ``settings``. A PNG gallery per row goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import zlib
from pathlib import Path

import torch

from conceptebm.compose.calibrate import composition_scales
from conceptebm.compose.defaults import STEPS
from conceptebm.compose.generate import (
    choose_branches,
    composition_settings,
    load_concepts,
    serving_models,
)
from conceptebm.compose.table import (
    ROWS,
    draw_targets,
    extra_rows,
    real_targets,
    render_targets,
    row_energy,
)
from conceptebm.datasets import PALETTE
from conceptebm.evaluate import load_judges
from conceptebm.infer import initial_samples, langevin
from conceptebm.plotting import save_grid

PAPER = {  # Table 1 of the paper: (first, second) accuracy per row
    "color": (0.128, 0.997), "position": (0.984, 0.201), "pos_and_color": (0.801, 0.8125),
    "pos_and_not_color": (0.872, 0.096), "not_pos_and_color": (0.033, 0.971),
    "pos1_or_pos2": (0.432, 0.413), "or_of_ands": (0.210, 0.217),
}
VAL_SEED, TEST_SEED = 0, 20261207
#: real renders: the reference set and the floor set draw shapes, sizes and light from these
#: offsets of the split's seed (the targets' own values are put in)
REAL_SEED_OFFSETS = (101, 202)


def _slice(targets: dict, s: int, e: int) -> dict:
    return {k: v[s:e] for k, v in targets.items()}


def _served(tree) -> dict:
    """The concepts a row's expression routes to another shipped model (two objects:
    position -> position_cd)."""
    return {c: m for c, m in serving_models(tree).items() if m != c}


def _chains(energy, n, settings, image_shape, denoise, *, generator, device, mixture_or):
    """``{K: images}`` for each K in ``denoise`` (sorted): the chains of
    :func:`conceptebm.compose.generate.generate_images` (same noise, same branch choice), then K
    noise-free steps more; and the branch each chain followed (``None`` without a top-level
    disjunction)."""
    x0 = initial_samples((n, *image_shape), init=settings.init, bounds=settings.bounds,
                         generator=generator, device=device)  # (n, C, H, W)
    if mixture_or:
        energy = choose_branches(energy, n, generator)
    branch = getattr(energy, "index", None)
    x = langevin(energy, x0, num_steps=settings.num_steps, step_size=settings.step_size,
                 noise_scale=settings.noise_scale, bounds=settings.bounds, generator=generator)
    out, done = {}, 0
    for k in denoise:
        if k > done:  # continue the same chains, noise-free, at the last step size
            x = langevin(energy, x, num_steps=0, step_size=settings.step_size,
                         noise_scale=settings.noise_scale, bounds=settings.bounds,
                         generator=generator, denoise_steps=k - done)
            done = k
        out[k] = x.detach()
    return out, (branch.cpu() if branch is not None else None)


def _prefix(row: str, k: int) -> str:
    return row if k == 0 else f"{row}.denoise{k}"


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [r for r in ROWS if not args.rows or r.key in args.rows]
    num_colors = len(PALETTE)
    if args.extras:
        rows += [r for r in extra_rows(num_colors) if not args.rows or r.key in args.rows]
    needed = sorted({c for r in rows for c in r.concepts})
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint or [])
    seed = args.val_seed if args.split == "validation" else args.test_seed
    targets = draw_targets(args.n, num_colors, torch.Generator().manual_seed(seed))
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
    realism = None
    if args.realism:
        from conceptebm.evaluate.realism import realism
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    other = args.test_seed if args.split == "validation" else args.val_seed
    results = {
        "command": args.command,
        "protocol": {
            "selection": "the composition knobs (calibration power 0.5, 100 Langevin steps, "
                         "negation weight alpha 0.05, disjunction temperature 0.1, calibrated "
                         "sum, mixture OR) were fixed earlier on seed 0 and checked there by "
                         "paper.benchmarks.compose_sweep (n = 200 per setting); denoise_steps "
                         "chosen there by the lowest mean Frechet distance",
            "selection_seeds": sorted({args.val_seed}),
            "test_seeds": [args.test_seed],
        },
        "split": args.split, "seed": seed, "n": args.n,
        "settings": {**settings.to_dict(), "n": args.n, "alpha": args.alpha,
                     "temperature": args.temperature, "calibrated": not args.raw,
                     "mixture_or": not args.energy_or,
                     "calibration_power": args.calibration_power,
                     "negation": args.negation, "negation_weight": args.negation_weight,
                     "denoise_steps": args.denoise_steps,
                     "temperatures": cm.temperatures, "scales": cm.scales,
                     "other_split_seed": other},
    }
    for row in rows:
        t0 = time.time()
        # each row its own noise stream (a function of the seed and the row): a row reads the
        # same chains whichever rows run with it, so settings compare on paired noise
        gen = torch.Generator(device=device).manual_seed(seed * 2**32 + zlib.crc32(
            row.key.encode()))
        tree = row.tree(targets)
        served = _served(tree)
        cm = models_for(served)
        scales = None if args.raw else composition_scales(cm.scales, args.calibration_power)
        row_settings = composition_settings(cm, tree, steps=args.steps,
                                            step_size=args.step_size,
                                            noise_scale=args.noise_scale)
        images = {k: [] for k in args.denoise_steps}
        preds = {k: [] for k in args.denoise_steps}
        branches = []
        for s in range(0, args.n, args.batch):
            tb = {k: v.to(device) for k, v in _slice(targets, s, s + args.batch).items()}
            energy = row_energy(row, tb, cm.models, alpha=args.alpha,
                                temperature=args.temperature, scales=scales,
                                temperatures=(cm.temperatures if args.negation != "energy"
                                              else None),
                                negation_weight=args.negation_weight,
                                closed_world=args.negation == "complement")
            xs, branch = _chains(energy, tb["pos"].shape[0], row_settings, cm.image_shape,
                                 args.denoise_steps, generator=gen, device=device,
                                 mixture_or=not args.energy_or)
            branches.append(branch)
            for k, x in xs.items():
                with torch.no_grad():
                    preds[k].append(judge.predict(x))
                images[k].append(x.cpu())
        branch = None if branches[0] is None else torch.cat(branches)
        real = None
        if realism is not None:
            fixed = real_targets(row, targets, branch)
            if row.key != "two_objects":  # no single-object reference
                real = torch.cat([render_targets(fixed, args.n, seed=seed + off)
                                  for off in REAL_SEED_OFFSETS])
        lines = []
        for k in args.denoise_steps:
            pk = {c: torch.cat([p[c] for p in preds[k]]) for c in preds[k][0]}
            xk = torch.cat(images[k])
            scores = row.scores(pk, {c: v.to(device) for c, v in targets.items()}, xk)
            key = _prefix(row.key, k)
            for name, m in scores.items():
                results[f"{key}.{name}"] = m.value
                results[f"{key}.{name}_se"] = m.stderr
            if real is not None:
                r = realism(xk, real, judges=judge)
                results[f"{key}.fid"] = r["fid"]
                results[f"{key}.fid_floor"] = r["fid_floor"]
            suffix = "" if k == 0 else f"_denoise{k}"
            save_grid(xk[:16], out_dir / f"{row.key}{suffix}.png",
                      title=row.title + ("" if k == 0 else f" (+{k} noise-free steps)"))
            cells = "  ".join(f"{c} {m.value:.3f}+-{m.stderr:.3f}" for c, m in scores.items()
                              if not c.endswith("0.15"))
            if real is not None:
                cells += f"  fid {results[f'{key}.fid']:.2f} (floor " \
                         f"{results[f'{key}.fid_floor']:.2f})"
            paper = f"  (paper {PAPER[row.key][0]:.3f} / {PAPER[row.key][1]:.3f})" \
                if row.key in PAPER and k == 0 else ""
            lines.append(f"{row.title + ('' if k == 0 else f' +{k}'):<42} {cells}{paper}")
        results[f"{row.key}.seconds"] = time.time() - t0
        results[f"{row.key}.num_steps"] = row_settings.num_steps
        if served:
            results["settings"][f"{row.key}.models"] = served
        for line in lines:
            print(f"{line}  {time.time() - t0:.0f}s", flush=True)
    return results


def _denoise(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {k}")
    return k


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="generations per row")
    p.add_argument("--batch", type=int, default=100, help="chains per sampler call")
    p.add_argument("--steps", type=int, default=None,
                   help="Langevin steps (default: conceptebm.compose.defaults.STEPS)")
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--noise-scale", type=float, default=None)
    p.add_argument("--denoise-steps", type=_denoise, nargs="+", default=[0],
                   help="score the chains after each of these numbers of extra noise-free "
                        "steps (0: as they end); e.g. 0 5")
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
    p.add_argument("--split", choices=("validation", "test"), default="test",
                   help="draw the targets (and the chains' noise) from --val-seed or "
                        "--test-seed (default test: the reported read)")
    p.add_argument("--val-seed", type=int, default=VAL_SEED,
                   help=f"seed of the validation targets (default {VAL_SEED})")
    p.add_argument("--test-seed", type=int, default=TEST_SEED,
                   help=f"seed of the test targets (default {TEST_SEED})")
    p.add_argument("--no-realism", dest="realism", action="store_false",
                   help="skip the Frechet distance to real renders")
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
    if args.n < 2:
        p.error(f"--n must be >= 2 (standard errors), got {args.n}")
    for name in ("val_seed", "test_seed"):
        if not 0 <= getattr(args, name) < 2**31:
            p.error(f"--{name.replace('_', '-')} must lie in [0, 2**31), got "
                    f"{getattr(args, name)}")
    if args.val_seed == args.test_seed:
        p.error(f"--val-seed and --test-seed must differ (the test targets are read once, "
                f"after every choice), got {args.val_seed} for both")
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
    args.denoise_steps = sorted(set(args.denoise_steps))

    if args.calibration_power is None:
        args.calibration_power = CALIBRATION_POWER
    args.alpha = ALPHA if args.alpha is None else args.alpha
    args.temperature = TEMPERATURE if args.temperature is None else args.temperature
    args.command = " ".join(["OMP_NUM_THREADS=1 python -m paper.benchmarks.compose_table",
                             *(shlex.quote(a) for a in (sys.argv[1:] if argv is None
                                                        else argv))])
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

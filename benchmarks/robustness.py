"""Robustness table of position readers: clean, noise 0.1, grey clutter, unseen light, JPEG
quality 40, blur sigma 1.5 px, another ground colour, a checkerboard ground, a jittered camera,
two objects (both basins), no-object false alarms (:mod:`conceptebm.scenes.robustness`), and
the built-in foreign fixture after ``conceptebm train --data`` with each reader's recipe.

    python benchmarks/robustness.py --models position_contrastive runs/late_robust \\
        --seed 600001 --split validation --json out/robustness_val.json     # to choose
    python benchmarks/robustness.py --models position_contrastive position_late_robust \\
        --seed 20261208 --split test --json benchmarks/results/robustness.json  # read once
    python benchmarks/robustness.py --models position_late_robust position_contrastive \
        position_late --seed 20261211 --split test --foreign \
        benchmarks/results/robustness_foreign.json --foreign-run position_late_robust=RUN1 \
        --foreign-run position_contrastive=RUN2 \
        --json benchmarks/results/robustness_full.json      # every column, read once
    python benchmarks/robustness.py --quick --json /tmp/robustness.json       # seconds

The foreign column: ``conceptebm make-data foreign --out-dir D/foreign`` (1,700 images, seed
0) and ``... -n 150 --seed TEST --out-dir D/test``; ``conceptebm train --data D/foreign
--concept position --test D/test --time-limit-min 10 --out-dir RUN`` once with the default
recipe (``--preset data``) and once with ``--preset position_contrastive``; ``python
benchmarks/data_defaults.py collect RUN1 RUN2 --json F`` reads the runs' records, and
``--foreign F --foreign-run MODEL=RUN`` puts each run's test MAE in MODEL's row.

Every model reads the same renders of ``--seed`` (``--n`` per column; the no-object column
holds ``2 n + 5`` images) with its default MAP settings; each value has its standard error.
JSON: ``{"command", "seed", "split", "n", "models": {name: {column: {...}}},
"seconds": {name: s}}`` (with ``--foreign``: ``models[name]["foreign"]`` holds the run's
``test_mae`` and its records, and ``"foreign_runs"`` the collected file's command and note);
``--add-to`` adds models to an earlier table of the same renders (the commands joined by
``&&``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from conceptebm import load
from conceptebm.scenes.robustness import COLUMNS, robustness_images, robustness_table


def _show(col: dict) -> str:
    for key in ("mae", "frac", "false_alarm"):
        if col.get(key):
            v = col[key]
            extra = (f" (missed {col['missed']['value']:.3f})" if key == "false_alarm" else
                     f" (floor {col['floor']['value']:.4f}, against what is shown "
                     f"{col['mae_seen']['value']:.4f})" if "floor" in col else "")
            return f"{key} {v['value']:.4f} ± {v['stderr']:.4f}{extra}"
    return "no calibration"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["position_contrastive", "position_late"],
                   help="shipped names, checkpoints or run folders")
    p.add_argument("--n", type=int, default=150, help="renders per column")
    p.add_argument("--seed", type=int, default=600_001,
                   help="render seed (a validation seed to choose, a fresh test seed to report)")
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    p.add_argument("--columns", default=",".join(COLUMNS))
    p.add_argument("--json", help="write the table here")
    p.add_argument("--add-to", metavar="JSON",
                   help="add these models to a table of the same seed, split and n (its "
                        "command kept beside this one)")
    p.add_argument("--foreign", metavar="JSON",
                   help="runs trained on the foreign fixture, collected by benchmarks/"
                        "data_defaults.py collect (with --foreign-run)")
    p.add_argument("--foreign-run", action="append", default=[], metavar="MODEL=RUN",
                   help="the run of --foreign that stands for MODEL's recipe (repeatable)")
    p.add_argument("--quick", action="store_true", help="4 renders per column")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = 4 if args.quick else args.n
    columns = [c.strip() for c in args.columns.split(",")]
    if set(columns) - set(COLUMNS):
        p.error(f"--columns: unknown {sorted(set(columns) - set(COLUMNS))}; choose from "
                f"{', '.join(COLUMNS)}")
    command = " ".join(["python benchmarks/robustness.py",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    out = {"command": command, "seed": args.seed, "split": args.split, "n": n,
           "models": {}, "seconds": {}}
    if args.add_to:
        old = json.loads(Path(args.add_to).read_text())
        if (old["seed"], old["split"], old["n"]) != (args.seed, args.split, n):
            p.error(f"--add-to {args.add_to}: its seed, split and n are {old['seed']}, "
                    f"{old['split']}, {old['n']}; run with the same")
        out.update(models=old["models"], seconds=old["seconds"],
                   command=" && ".join(c for c in (old["command"], command) if c))
    foreign = {}
    if args.foreign:
        runs = json.loads(Path(args.foreign).read_text())
        out["foreign_runs"] = {"command": runs["command"], "note": runs.get("note", "")}
        for pair in args.foreign_run:
            model, _, run = pair.partition("=")
            if run not in runs["runs"] or "test_mae" not in runs["runs"][run]:
                p.error(f"--foreign-run {pair}: {run!r} is not a run with a test read in "
                        f"{args.foreign}; use one of {sorted(runs['runs'])}")
            foreign[model] = {"run": run, **runs["runs"][run]}
    elif args.foreign_run:
        p.error("--foreign-run needs --foreign JSON (benchmarks/data_defaults.py collect)")
    images = robustness_images(n, args.seed)
    for spec in args.models:
        model = load(spec)
        t0 = time.process_time()
        table = robustness_table(model, n, args.seed, columns=columns, images=images)
        out["seconds"][spec] = round(time.process_time() - t0, 1)
        out["models"][spec] = table
        for col in columns:
            print(f"{spec:28s} {col:12s} {_show(table[col])}", flush=True)
    for model, run in foreign.items():
        out["models"].setdefault(model, {})["foreign"] = run
        print(f"{model:28s} {'foreign':12s} mae {run['test_mae']:.4f} ± "
              f"{run['test_mae_stderr']:.4f} ({run['run']}: {run['iterations']} iterations, "
              f"{run['train_s']:.0f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}  ({command})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

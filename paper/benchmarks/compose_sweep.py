"""Sweep the composition knobs that limit Table 1: negation weight, disjunction temperature,
Langevin steps, calibrated vs raw composition.

    python -m paper.benchmarks.compose_sweep --n 200 --json out/compose_sweep.json
    python -m paper.benchmarks.compose_sweep --quick

Each setting reruns the relevant rows of ``paper/benchmarks/compose_table.py`` (same targets, same
seed) as a subprocess and prints its lines; the JSON maps ``"<knob>=<value>"`` to the row
results (compose_table's JSON).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "compose_table.py"

SWEEPS = {
    "alpha": ("--alpha", [0.01, 0.03, 0.1, 0.3, 1.0], ["pos_and_not_color", "not_pos_and_color"]),
    "temperature": ("--temperature", [0.01, 0.1, 0.3, 1.0], ["pos1_or_pos2", "or_of_ands"]),
    "steps": ("--steps", [20, 40, 60, 100], ["pos_and_color"]),
    "calibration_power": ("--calibration-power", [0.0, 0.25, 0.5, 0.75, 1.0], ["pos_and_color"]),
    "energy_or": ("--energy-or", [None], ["pos1_or_pos2", "or_of_ands"]),
    "raw": ("--raw", [None], ["pos_and_color", "pos_and_not_color", "pos1_or_pos2"]),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--sweeps", nargs="*", default=list(SWEEPS), choices=list(SWEEPS))
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--checkpoint", nargs="*", metavar="NAME=PATH", default=[])
    p.add_argument("--out", default="out/compose_sweep")
    args = p.parse_args(argv)
    results = {}
    for name in args.sweeps:
        flag, values, rows = SWEEPS[name]
        if args.quick:
            values = values[:1]
        for v in values:
            label = name if v is None else f"{name}={v}"
            print(f"--- {label}", flush=True)
            cli = ["--n", str(args.n), "--rows", *rows, "--out", f"{args.out}/{label}"]
            cli += [flag] if v is None else [flag, str(v)]
            if args.quick:
                cli.append("--quick")
            if args.checkpoint:
                cli += ["--checkpoint", *args.checkpoint]
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "rows.json"
                subprocess.run([sys.executable, str(TABLE), *cli, "--json", str(out)],
                               check=True)
                results[label] = json.loads(out.read_text())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

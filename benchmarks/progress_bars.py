"""What the MALA progress bar costs: a posterior run with and without it.

    python benchmarks/progress_bars.py --json benchmarks/results/progress_bars.json   # ~1 minute
    python benchmarks/progress_bars.py --quick --json /tmp/bars.json                  # seconds

The bar of ``infer.mala`` / ``infer.langevin`` (``progress=True``; ``conceptebm infer
--posterior`` on a terminal, ``--quiet`` silences it) shows the chains' mean energy,
acceptance and step size, read every ``infer.chain.BAR_EVERY`` steps. This times the CLI's
posterior run (``position_late``, ``--images`` images x 4 chains in one batch, ``--steps``
steps with ``return_trace``) with the bar (drawn into a string buffer) and without, in
interleaved repeats, in process CPU time, and reports the median overhead in percent.

JSON keys: ``with_bar_s``, ``without_bar_s`` (medians), ``overhead_percent``, ``repeats``,
``settings`` and ``command``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import conceptebm
from conceptebm.datasets import make_dataset
from conceptebm.infer import mala
from conceptebm.infer.optimize import concept_energy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="tiny settings (the test runs this)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.repeats = 2, 100, 2
    torch.set_num_threads(1)
    model = conceptebm.load("position_late")
    images, labels = make_dataset("position", seed=1).batch(torch.arange(args.images))
    problem = concept_energy(model, images[:, None], views=True)
    b = args.images

    def energy(x):  # (B * 4, 2) -> (B * 4,)
        return problem(x.reshape(b, 4, 2)).reshape(-1) / 0.64

    x0 = torch.as_tensor(labels["position"]).repeat_interleave(4, 0).clamp(-0.99, 0.99)
    times = {True: [], False: []}
    for rep in range(args.repeats):
        for bar in ((True, False) if rep % 2 else (False, True)):
            with contextlib.redirect_stderr(io.StringIO()):
                t0 = time.process_time()
                mala(energy, x0, num_steps=args.steps, step_size=1e-4, bounds=(-1, 1),
                     adapt_steps=args.steps // 3, progress=bar, return_trace=True,
                     generator=torch.Generator().manual_seed(0))
                times[bar].append(time.process_time() - t0)
    with_bar, without = statistics.median(times[True]), statistics.median(times[False])
    overhead = 100 * (with_bar / without - 1)
    print(f"MALA, {b} images x 4 chains, {args.steps} steps: {with_bar:.3f} CPU s with the "
          f"bar, {without:.3f} without: overhead {overhead:+.1f}% (medians of "
          f"{args.repeats})")
    out = {"with_bar_s": with_bar, "without_bar_s": without, "overhead_percent": overhead,
           "repeats": args.repeats, "times": {"with": times[True], "without": times[False]},
           "settings": {"images": b, "chains": 4, "steps": args.steps, "quick": args.quick,
                        "model": "position_late"},
           "command": "python benchmarks/progress_bars.py " + " ".join(sys.argv[1:])}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Calibration of posterior intervals: coverage of 90 % intervals on fresh test scenes.

    python benchmarks/posteriors.py --json benchmarks/results/posteriors.json     # ~12 minutes
    python benchmarks/posteriors.py --quick --json /tmp/posteriors.json           # seconds

Each shipped position model carries a posterior temperature fitted on its validation scenes
(``conceptebm calibrate NAME --posterior-temperature --write``, seed 20261129; one per count of
views for ``position_multiview``). This reads ``--n`` fresh test sets (seed 20261207, never
used for fitting) and reports, per model and count of views, the coverage of the exact grid
posterior's 90 % equal-tailed intervals at the record's temperature (what ``conceptebm infer
--posterior`` uses by default) and at T = 1 (the energies as trained), with standard errors
(from the per-set means) and the mean interval width. Rows: single images (``position_late``,
``position_contrastive``: the CLI's default for position) and ``position_multiview`` with 1,
2, 4 and 8 views. The sampler row runs the CLI's sampler (MALA, 4 chains batched) on the
``position_late`` test scenes at the fitted temperature: its intervals should cover as the
grid's do, with the share of sets whose chains were flagged (R-hat > 1.01 or ESS < 100).

JSON keys: ``rows`` (one dict per model and count of views: ``model``, ``views``, ``n``,
``temperature``, ``coverage``, ``se``, ``joint``, ``width``, ``coverage_t1``, ``se_t1``,
``width_t1``), ``sampler`` (``coverage``, ``se``, ``width``, ``flagged``, ``rhat_max``,
``seconds``), flat ``coverage_<model>_v<views>`` keys, ``settings`` and ``command``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import conceptebm
from conceptebm.scenes import (
    grid_posterior,
    interval_coverage,
    multiview_posteriors,
    posterior_temperature,
)
from conceptebm.scenes.temperature import TEST_SEED, coverage, scene_sets

ROWS = [("position_late", "position", 1, 128), ("position_contrastive", "position", 1, 32)] + \
    [("position_multiview", "multiview", v, 32) for v in (1, 2, 4, 8)]
QUICK_ROWS = [("position_late", "position", 1, 16), ("position_multiview", "multiview", 2, 12)]


def coverage_row(name: str, dataset: str, views: int, points: int, n: int, seed: int) -> dict:
    model = conceptebm.load(name)
    sets, truth = scene_sets(dataset, n, views, seed, model.image_size)
    t = posterior_temperature(model, views=views)
    t0 = time.process_time()
    g = grid_posterior(model, sets, points, temperature=1.0)  # energies reused for T
    at_t = coverage(model, sets, truth, t, posterior=g)
    at_1 = coverage(model, sets, truth, 1.0, posterior=g)
    return {"model": name, "views": views, "n": n, "points": points, "temperature": t,
            "fitted": "posterior_temperature" in model.record,
            "coverage": at_t["coverage"], "se": at_t["se"], "joint": at_t["joint"],
            "width": at_t["width"], "coverage_t1": at_1["coverage"], "se_t1": at_1["se"],
            "width_t1": at_1["width"], "cpu_s": time.process_time() - t0}


def sampler_row(n: int, seed: int, samples: int, warmup: int) -> dict:
    model = conceptebm.load("position_late")
    sets, truth = scene_sets("position", n, 1, seed, model.image_size)
    t0 = time.process_time()
    posts = multiview_posteriors(model, sets, num_samples=samples, warmup_steps=warmup,
                                 chains=4, seed=0)
    seconds = time.process_time() - t0
    interval = torch.stack([p.interval for p in posts])  # (n, 2, 2)
    inside = interval_coverage(interval, truth).double()
    per_set = inside.mean(1)
    return {"model": "position_late", "sampler": "mala", "chains": 4, "samples": samples,
            "warmup": warmup, "n": n, "temperature": posts[0].temperature,
            "coverage": float(inside.mean()),
            "se": float(per_set.std() / n ** 0.5) if n > 1 else float("nan"),
            "width": float((interval[:, 1] - interval[:, 0]).mean()),
            "flagged": sum(bool(p.warnings) for p in posts) / n,
            "rhat_max": max(max(p.diagnostics["rhat"]) for p in posts), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="test sets per row (100; quick 6)")
    p.add_argument("--seed", type=int, default=TEST_SEED, help="test scenes' seed")
    p.add_argument("--models", nargs="+", default=None,
                   help="only these models' rows (default: all)")
    p.add_argument("--no-sampler", action="store_true", help="skip the sampler row")
    p.add_argument("--quick", action="store_true", help="tiny settings (the test runs this)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n = args.n or (6 if args.quick else 100)
    rows = []
    print(f"90% intervals on {n} test sets a row (seed {args.seed}); grid posterior")
    print(f"{'model':22s} {'views':>5s} {'T':>7s} {'coverage':>15s} {'width':>6s}   "
          f"{'at T=1':>15s} {'width':>6s}")
    for name, dataset, views, points in (QUICK_ROWS if args.quick else ROWS):
        if args.models and name not in args.models:
            continue
        m = n if dataset == "position" or args.quick else max(n // 2, 2)
        r = coverage_row(name, dataset, views, 12 if args.quick else points, m, args.seed)
        rows.append(r)
        print(f"{name:22s} {views:5d} {r['temperature']:7.3g} "
              f"{r['coverage']:7.3f} ± {r['se']:.3f} {r['width']:6.3f}   "
              f"{r['coverage_t1']:7.3f} ± {r['se_t1']:.3f} {r['width_t1']:6.3f}", flush=True)
    s = None
    if not args.no_sampler:
        s = sampler_row(n, args.seed, 30 if args.quick else 1000, 30 if args.quick else 500)
        print(f"sampler (MALA, 4 chains, position_late, T {s['temperature']:.3g}): coverage "
              f"{s['coverage']:.3f} ± {s['se']:.3f}, width {s['width']:.3f}, flagged "
              f"{s['flagged']:.2f}, max R-hat {s['rhat_max']:.3f}, {s['seconds']:.0f} CPU s")
    out = {"rows": rows, "sampler": s,
           **{f"coverage_{r['model']}_v{r['views']}": r["coverage"] for r in rows},
           "settings": {"n": n, "seed": args.seed, "quick": args.quick, "level": 0.9},
           "command": "python benchmarks/posteriors.py " + " ".join(sys.argv[1:])}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

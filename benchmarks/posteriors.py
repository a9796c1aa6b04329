"""Calibration of posterior intervals: coverage of 90 % intervals on fresh test scenes.

    python benchmarks/posteriors.py --seed 20261208 --json benchmarks/results/posteriors.json
    python benchmarks/posteriors.py --quick --json /tmp/posteriors.json           # seconds

Each shipped position model carries a posterior temperature fitted on its validation scenes
(``conceptebm calibrate NAME --posterior-temperature --write``, seed 20261129; one per count of
views for ``position_multiview``); a ``train --data`` run fits its own on its held-out images
(:func:`conceptebm.train.folder.fit_run_temperature`). This reads ``--n`` fresh test sets (the
``--seed``, never used for fitting) and reports, per model and count of views, the coverage
of the grid posterior's 90 % equal-tailed intervals at the record's temperature (what
``conceptebm infer --posterior`` uses by default), on the grid the temperature was fitted on
(the record's ``points`` and ``refine``), and at T = 1 (the energies as trained), with
standard errors (from the per-set means) and the mean interval width. Rows: single images
(``position_late``, ``position_contrastive``: the CLI's default for position),
``position_multiview`` with 1, 2, 4 and 8 views, and a ``train --data`` model on the foreign
fixture (``--foreign-run RUN``; without it the benchmark makes the fixture, ``conceptebm
make-data foreign -n 1700`` at seed 0, and trains the run with :data:`FOREIGN_TRAIN` into
``out/posteriors/foreign``; its test images are the fixture's renderer at ``--seed``). The
sampler row runs the CLI's sampler (MALA, 4 chains batched) on the ``position_late`` test
scenes at the fitted temperature, with the share of sets whose chains were flagged (R-hat >
1.01 or ESS < 100).

JSON keys: ``rows`` (one dict per model and count of views: ``model``, ``views``, ``n``,
``temperature``, ``points``, ``refine``, ``coverage``, ``se``, ``joint``, ``width``,
``coverage_t1``, ``se_t1``, ``width_t1``), ``sampler`` (``coverage``, ``se``, ``width``,
``flagged``, ``rhat_max``, ``seconds``), ``foreign`` (the run, its training command and
record), flat ``coverage_<model>_v<views>`` keys, ``settings`` and ``command``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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

ROWS = [("position_late", "position", 1), ("position_contrastive", "position", 1)] + \
    [("position_multiview", "multiview", v) for v in (1, 2, 4, 8)] + \
    [("foreign", "foreign", 1)]
QUICK_ROWS = [("position_late", "position", 1), ("position_multiview", "multiview", 2),
              ("foreign", "foreign", 1)]
FOREIGN_DIR = Path("out/posteriors/foreign")
#: the run of the foreign row: the user-data benchmark's late-conditioned recipe
#: (paper/benchmarks/user_data.py), five minutes on one thread
FOREIGN_TRAIN = ["--concept", "position", "--objective", "contrastive", "--net", "late",
                 "--contrastive-negatives", "15", "--augment-noise", "0.1",
                 "--time-limit-min", "5", "--iterations", "1000000", "--threads", "1"]
FOREIGN_QUICK = ["--concept", "position", "--objective", "contrastive", "--smoke",
                 "--eval-every", "3", "--holdout", "12", "--threads", "1"]


def foreign_run(run: Path | None, quick: bool) -> tuple[Path, dict]:
    """The ``train --data`` run on the foreign fixture: ``run``, else one trained here."""
    from conceptebm.cli import main as cli

    if run is not None:
        return run, {"trained": "given (--foreign-run)"}
    base = Path(tempfile.mkdtemp(prefix="posteriors_")) if quick else FOREIGN_DIR
    data, run = base / "data", base / "ebm"
    make = ["make-data", "foreign", "--out-dir", str(data), "-n", "40" if quick else "1700"]
    train = ["train", "--data", str(data), *(FOREIGN_QUICK if quick else FOREIGN_TRAIN),
             "--quiet", "--out-dir", str(run)]
    if not (data / "labels.csv").is_file() and cli(make) != 0:
        raise SystemExit("error: make-data foreign failed")
    if not (run / "last.safetensors").is_file() and cli(train) != 0:
        raise SystemExit("error: training on the foreign fixture failed")
    return run, {"make_data": "conceptebm " + " ".join(make),
                 "train_command": "conceptebm " + " ".join(train)}


def test_sets(model, dataset: str, n: int, views: int, seed: int):
    if dataset == "foreign":
        from conceptebm.datasets.foreign import foreign_batch

        images, raw = foreign_batch(range(n), seed=seed, image_size=model.image_size)
        return images[:, None], torch.as_tensor(raw["position"]).reshape(n, 2)
    return scene_sets(dataset, n, views, seed, model.image_size)


def coverage_row(name: str, dataset: str, views: int, n: int, seed: int,
                 grid: tuple[int, int] | None = None, model=None) -> dict:
    model = model or conceptebm.load(name)
    sets, truth = test_sets(model, dataset, n, views, seed)
    t = posterior_temperature(model, views=views)
    cal = model.record.get("posterior_calibration") or {}
    points, refine = grid or (int(cal.get("points", 32)), int(cal.get("refine", 1)))
    t0 = time.process_time()
    # energies at T = 1 reused for the fitted T; refined where the mass lies at the larger
    g = grid_posterior(model, sets, points, temperature=1.0, refine=refine,
                       refine_temperature=max(t, 1.0))
    at_t = coverage(model, sets, truth, t, posterior=g)
    at_1 = coverage(model, sets, truth, 1.0, posterior=g)
    return {"model": name, "views": views, "n": n, "points": points, "refine": refine,
            "evaluated": g.evaluated, "temperature": t,
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
    p.add_argument("--foreign-run", type=Path, default=None,
                   help="the train --data run on the foreign fixture (default: train one "
                        "into out/posteriors/foreign, ~5 minutes)")
    p.add_argument("--quick", action="store_true", help="tiny settings (the test runs this)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--update", action="store_true",
                   help="with --json: keep the file's rows of other models (same --seed and "
                        "--n), replace those run now, and add this command to its commands")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n = args.n or (6 if args.quick else 100)
    rows, foreign = [], None
    print(f"90% intervals on {n} test sets a row (seed {args.seed}); grid posterior")
    print(f"{'model':22s} {'views':>5s} {'T':>7s} {'coverage':>15s} {'width':>6s}   "
          f"{'at T=1':>15s} {'width':>6s}")
    for name, dataset, views in (QUICK_ROWS if args.quick else ROWS):
        if args.models and name not in args.models:
            continue
        model = None
        if dataset == "foreign":
            run, how = foreign_run(args.foreign_run, args.quick)
            model = conceptebm.load(str(run))
            foreign = {"run": str(run), **how,
                       "posterior_calibration": model.record.get("posterior_calibration")}
        r = coverage_row(name, dataset, views, n, args.seed,
                         (12, 2) if args.quick else None, model)
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
    command = "python benchmarks/posteriors.py " + " ".join(sys.argv[1:] if argv is None
                                                           else argv)
    settings = {"n": n, "seed": args.seed, "quick": args.quick, "level": 0.9}
    commands = [command]
    if args.update and args.json and args.json.is_file():
        old = json.loads(args.json.read_text())
        if {k: old["settings"].get(k) for k in settings} != settings:
            raise SystemExit(f"error: --update: {args.json} was made with {old['settings']}, "
                             f"not {settings}; write a new file")
        ran = {(r["model"], r["views"]) for r in rows}
        rows = [r for r in old["rows"] if (r["model"], r["views"]) not in ran] + rows
        s = s or old.get("sampler")
        foreign = foreign or old.get("foreign")
        commands = old.get("commands", [old.get("command")]) + commands
    order = {(m, v): i for i, (m, _, v) in enumerate(ROWS)}
    rows.sort(key=lambda r: order.get((r["model"], r["views"]), len(order)))
    out = {"rows": rows, "sampler": s, "foreign": foreign,
           **{f"coverage_{r['model']}_v{r['views']}": r["coverage"] for r in rows},
           "settings": settings, "command": commands[-1], "commands": commands}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

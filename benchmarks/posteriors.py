"""Calibration of posterior intervals: coverage of 90 % intervals on fresh test scenes.

    python benchmarks/posteriors.py --seed 20261210 --n 200 --view-images 800 \
        --json benchmarks/results/posteriors.json
    python benchmarks/posteriors.py --quick --json /tmp/posteriors.json           # seconds

Each shipped position model carries a posterior temperature fitted on its validation scenes
(``conceptebm calibrate NAME --posterior-temperature --write``, seed 20261129; one per count of
views for ``position_multiview``); a ``train --data`` run fits its own on its held-out images
(:func:`conceptebm.train.folder.fit_run_temperature`). This reads ``--n`` fresh test sets (the
``--seed``, never used for fitting; ``--view-images`` caps the images of a multi-view row) and
reports, per model and count of views, the coverage of the grid posterior's 90 %
equal-tailed intervals at the record's temperature (what ``conceptebm infer --posterior``
uses by default), on the grid the temperature was fitted on (the record's ``points`` and
``refine``), and at T = 1 (the energies as trained), with standard errors (from the per-set
means) and the mean interval width. Rows: single images (``position_late``, the default
reader ``pretrained.INFER_DEFAULT["position"]`` (``position_late_robust``) on its training
family ``position_robust``, ``position_contrastive``), a ``train --data`` model on the
foreign fixture (``--foreign-run RUN``; without it the benchmark makes the fixture,
``conceptebm make-data foreign -n 2000`` at seed 0, and trains the run with
:data:`FOREIGN_TRAIN` (600 held out) into ``out/posteriors/foreign600``; its test images
are the fixture's renderer at ``--seed``, written as PNGs with ``labels.csv`` and read back
by the loader that read its held-out images), and ``position_multiview`` with 1, 2, 4 and
8 views. The sampler rows run the CLI's sampler (MALA, 4 chains batched) at the fitted
temperature on the ``position_late`` test scenes and on the default reader's, with the share
of sets whose chains were flagged (R-hat > 1.01 or ESS < 100).

JSON keys: ``rows`` (one dict per model and count of views: ``model``, ``views``, ``n``,
``temperature``, ``points``, ``refine``, ``coverage``, ``se``, ``joint``, ``width``,
``coverage_t1``, ``se_t1``, ``width_t1``), ``sampler`` and ``sampler_default``
(``coverage``, ``se``, ``width``, ``flagged``, ``rhat_max``, ``seconds``), ``foreign`` (the
run, its training command and record), flat ``coverage_<model>_v<views>`` keys,
``default_reader``, ``settings``, ``complete`` (the file is written after every row) and
``command``.
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
from conceptebm import pretrained
from conceptebm.scenes import (
    grid_posterior,
    interval_coverage,
    multiview_posteriors,
    posterior_temperature,
)
from conceptebm.scenes.temperature import TEST_SEED, VALIDATION_SEED, coverage, scene_sets

#: rows in the order they run (the cheap ones first; the JSON is written after each row)
ROWS = [("position_late", "position", 1),
        (pretrained.INFER_DEFAULT["position"], "position_robust", 1),
        ("position_contrastive", "position", 1), ("foreign", "foreign", 1)] + \
    [("position_multiview", "multiview", v) for v in (1, 2, 4, 8)]
QUICK_ROWS = [("position_late", "position", 1), ("position_multiview", "multiview", 2),
              ("foreign", "foreign", 1)]
FOREIGN_DIR = Path("out/posteriors/foreign600")
#: images of the foreign fixture: 1,400 to train on and the 600 held out
FOREIGN_IMAGES = 2000
#: the run of the foreign row: the user-data benchmark's late-conditioned recipe
#: (paper/benchmarks/user_data.py), five minutes on one thread, with 600 held-out images: a
#: temperature fitted on 300 (the default split of 1,700) varied with its images by about
#: 0.03 (0.50-0.60 on folds of 300 fresh validation images; --fit-spread,
#: benchmarks/results/posteriors_foreign_validation.json), which moves the coverage of fresh
#: images by about 0.02
FOREIGN_TRAIN = ["--concept", "position", "--objective", "contrastive", "--net", "late",
                 "--contrastive-negatives", "15", "--augment-noise", "0.1", "--holdout", "600",
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
    make = ["make-data", "foreign", "--out-dir", str(data), "-n",
            "40" if quick else str(FOREIGN_IMAGES)]
    train = ["train", "--data", str(data), *(FOREIGN_QUICK if quick else FOREIGN_TRAIN),
             "--quiet", "--out-dir", str(run)]
    if not (data / "labels.csv").is_file() and cli(make) != 0:
        raise SystemExit("error: make-data foreign failed")
    if not (run / "last.safetensors").is_file() and cli(train) != 0:
        raise SystemExit("error: training on the foreign fixture failed")
    return run, {"make_data": "conceptebm " + " ".join(make),
                 "train_command": "conceptebm " + " ".join(train)}


def test_sets(model, dataset: str, n: int, views: int, seed: int):
    """The test sets of a row: rendered scenes, or for the foreign row the fixture's renderer
    at ``seed`` written as a user's folder (PNGs + labels.csv) and read back by the loader
    that read the run's held-out images (its temperature was fitted on those)."""
    if dataset == "foreign":
        from conceptebm.datasets.foreign import write_foreign
        from conceptebm.datasets.user import load_images

        with tempfile.TemporaryDirectory(prefix="posteriors_test_") as tmp:
            data = load_images(write_foreign(tmp, n, seed=seed, image_size=model.image_size),
                               infer=True)
        return data.images[:, None], torch.as_tensor(data.labels["position"]).reshape(n, 2)
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


def sampler_row(n: int, seed: int, samples: int, warmup: int, name: str = "position_late",
                dataset: str = "position") -> dict:
    model = conceptebm.load(name)
    sets, truth = scene_sets(dataset, n, 1, seed, model.image_size)
    t0 = time.process_time()
    posts = multiview_posteriors(model, sets, num_samples=samples, warmup_steps=warmup,
                                 chains=4, seed=0)
    seconds = time.process_time() - t0
    interval = torch.stack([p.interval for p in posts])  # (n, 2, 2)
    inside = interval_coverage(interval, truth).double()
    per_set = inside.mean(1)
    return {"model": name, "sampler": "mala", "chains": 4, "samples": samples,
            "warmup": warmup, "n": n, "temperature": posts[0].temperature,
            "coverage": float(inside.mean()),
            "se": float(per_set.std() / n ** 0.5) if n > 1 else float("nan"),
            "width": float((interval[:, 1] - interval[:, 0]).mean()),
            "flagged": sum(bool(p.warnings) for p in posts) / n,
            "rhat_max": max(max(p.diagnostics["rhat"]) for p in posts), "seconds": seconds}


def foreign_fit_spread(run: Path, n: int, seed: int) -> dict:
    """Validation only (no test image): why a ``train --data`` run's temperature may cover
    fresh images otherwise than its held-out ones. (1) The run's held-out PNGs against the
    same items rendered in memory (the image path); (2) ``n`` fresh validation renders at
    ``seed``, written and read back as a user's folder: the coverage at the stored
    temperature, and temperatures fitted on disjoint folds of the held-out split's size
    (the fit's sampling error) with each fold's coverage on the rest."""
    from conceptebm.datasets.foreign import foreign_batch, write_foreign
    from conceptebm.datasets.user import load_images
    from conceptebm.infer.posterior_grid import fit_temperature, summarise_grid

    model = conceptebm.load(str(run))
    t = posterior_temperature(model)
    cal = model.record.get("posterior_calibration") or {}
    points, refine = int(cal.get("points", 17)), int(cal.get("refine", 4))
    record = json.loads((run / "data.json").read_text())
    folder = load_images(record["data"], infer=True)
    where = {f: i for i, f in enumerate(folder.files)}
    files = record["holdout_items"]["files"]
    rows = [where[f] for f in files]
    held = folder.images[rows], torch.as_tensor(folder.labels["position"])[rows].reshape(-1, 2)
    items = [int(f.split("_")[1].split(".")[0]) for f in files]
    mem, raw = foreign_batch(items, seed=int(record.get("split_seed", 0)),
                             image_size=model.image_size)
    in_memory = mem, torch.as_tensor(raw["position"]).reshape(-1, 2)

    def posterior(images):
        return grid_posterior(model, images[:, None], points, temperature=1.0, refine=refine,
                              refine_temperature=max(t, 1.0))

    def read(images, truth) -> dict:
        g = posterior(images)
        return {**coverage(model, images[:, None], truth, t, posterior=g),
                "fitted": fit_temperature(g, truth)}

    out = {"run": str(run), "temperature": t, "points": points, "refine": refine,
           "held_out_png": read(*held), "held_out_in_memory": read(*in_memory),
           "max_pixel_difference": float((held[0] - mem).abs().max())}
    with tempfile.TemporaryDirectory(prefix="posteriors_val_") as tmp:
        fresh = load_images(write_foreign(tmp, n, seed=seed, image_size=model.image_size),
                            infer=True)
    images, truth = fresh.images, torch.as_tensor(fresh.labels["position"]).reshape(n, 2)
    g = posterior(images)
    size = len(files)
    folds = []
    for k in range(n // size):
        part = torch.arange(k * size, (k + 1) * size)
        rest = torch.cat([torch.arange(0, k * size), torch.arange((k + 1) * size, n)])
        tk = fit_temperature(summarise_grid(g.energies[part], g.grid, 0.9, 1.0), truth[part])
        at = summarise_grid(g.energies[rest], g.grid, 0.9, tk)
        folds.append({"temperature": tk,
                      "coverage_rest": float(interval_coverage(at.interval, truth[rest])
                                             .double().mean())})
    ts = torch.tensor([f["temperature"] for f in folds])
    out["fresh"] = {"n": n, "seed": seed, **coverage(model, images[:, None], truth, t,
                                                       posterior=g),
                    "fitted": fit_temperature(g, truth), "fold_size": size, "folds": folds,
                    "fold_temperature_sd": float(ts.std()) if len(folds) > 1 else None}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="test sets per row (100; quick 6)")
    p.add_argument("--view-images", type=int, default=None,
                   help="at most this many images a row: a row of V views reads "
                        "min(n, VIEW_IMAGES // V) sets (default: n sets every row)")
    p.add_argument("--seed", type=int, default=TEST_SEED, help="test scenes' seed")
    p.add_argument("--models", nargs="+", default=None,
                   help="only these models' rows (default: all)")
    p.add_argument("--no-sampler", action="store_true", help="skip the sampler rows")
    p.add_argument("--foreign-run", type=Path, default=None,
                   help="the train --data run on the foreign fixture (default: train one "
                        "into out/posteriors/foreign600, ~5 minutes)")
    p.add_argument("--fit-spread", type=int, default=None, metavar="N",
                   help="validation only, instead of the test read: the foreign run's "
                        "held-out PNGs against the same items in memory, and N fresh "
                        "validation renders (seed 20261129): the coverage at its temperature "
                        "and the spread of temperatures fitted on folds of its held-out size")
    p.add_argument("--quick", action="store_true", help="tiny settings (the test runs this)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the results here (after every row; 'complete' says whether "
                        "every row ran)")
    p.add_argument("--update", action="store_true",
                   help="with --json: keep the file's rows of other models (same --seed and "
                        "--n), replace those run now, and add this command to its commands")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.fit_spread:
        run, _ = foreign_run(args.foreign_run, args.quick)
        res = foreign_fit_spread(run, args.fit_spread, VALIDATION_SEED)
        f, h, m = res["fresh"], res["held_out_png"], res["held_out_in_memory"]
        print(f"foreign run {run}: T {res['temperature']:.3g} (fitted on {h['n']} held-out "
              f"PNGs)\n  held-out PNGs:      coverage {h['coverage']:.3f} ± {h['se']:.3f}, "
              f"refit T {h['fitted']:.3g}\n  same items in memory: coverage "
              f"{m['coverage']:.3f} ± {m['se']:.3f}, refit T {m['fitted']:.3g} (pixels differ "
              f"by <= {res['max_pixel_difference']:.4f})\n  {f['n']} fresh validation PNGs: "
              f"coverage {f['coverage']:.3f} ± {f['se']:.3f}, refit T {f['fitted']:.3g}; "
              f"folds of {f['fold_size']}: T " + " ".join(f"{x['temperature']:.3f}"
                                                         for x in f["folds"]) +
              ", coverage of the rest " + " ".join(f"{x['coverage_rest']:.3f}"
                                                   for x in f["folds"]))
        res["command"] = "python benchmarks/posteriors.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=2) + "\n")
            print(f"wrote {args.json}")
        return 0
    n = args.n or (6 if args.quick else 100)
    command = "python benchmarks/posteriors.py " + " ".join(sys.argv[1:] if argv is None
                                                           else argv)
    settings = {"n": n, "seed": args.seed, "quick": args.quick, "level": 0.9}
    if args.view_images:
        settings["view_images"] = args.view_images
    old = None
    if args.update and args.json and args.json.is_file():
        old = json.loads(args.json.read_text())
        if {k: old["settings"].get(k) for k in settings} != settings:
            raise SystemExit(f"error: --update: {args.json} was made with {old['settings']}, "
                             f"not {settings}; write a new file")
    rows, foreign, samplers = [], None, {}

    def write(complete: bool) -> None:
        out_rows, s, fr, commands = list(rows), dict(samplers), foreign, [command]
        if old is not None:
            ran = {(r["model"], r["views"]) for r in rows}
            out_rows = [r for r in old["rows"] if (r["model"], r["views"]) not in ran] + rows
            s = {k: s.get(k) or old.get(k) for k in ("sampler", "sampler_default")}
            fr = fr or old.get("foreign")
            commands = old.get("commands", [old.get("command")]) + commands
        order = {(m, v): i for i, (m, _, v) in enumerate(ROWS)}
        out_rows.sort(key=lambda r: order.get((r["model"], r["views"]), len(order)))
        out = {"rows": out_rows, "sampler": s.get("sampler"),
               "sampler_default": s.get("sampler_default"), "foreign": fr,
               **{f"coverage_{r['model']}_v{r['views']}": r["coverage"] for r in out_rows},
               "default_reader": pretrained.INFER_DEFAULT["position"],
               "settings": settings, "complete": complete, "command": commands[-1],
               "commands": commands}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2) + "\n")

    sizes = "" if not args.view_images else f", at most {args.view_images} images a row"
    print(f"90% intervals on {n} test sets a row{sizes} (seed {args.seed}); grid posterior")
    print(f"{'model':22s} {'views':>5s} {'n':>4s} {'T':>7s} {'coverage':>15s} {'width':>6s}   "
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
        sets = min(n, args.view_images // views) if args.view_images else n
        r = coverage_row(name, dataset, views, sets, args.seed,
                         (12, 2) if args.quick else None, model)
        rows.append(r)
        print(f"{name:22s} {views:5d} {sets:4d} {r['temperature']:7.3g} "
              f"{r['coverage']:7.3f} ± {r['se']:.3f} {r['width']:6.3f}   "
              f"{r['coverage_t1']:7.3f} ± {r['se_t1']:.3f} {r['width_t1']:6.3f}", flush=True)
        write(False)
    if not args.no_sampler:
        runs = [("sampler", "position_late", "position")]
        if not args.quick:  # the default reader, as conceptebm infer --posterior reads
            runs.append(("sampler_default", pretrained.INFER_DEFAULT["position"],
                         "position_robust"))
        for key, name, dataset in runs:
            s = sampler_row(n, args.seed, 30 if args.quick else 1000,
                            30 if args.quick else 500, name, dataset)
            samplers[key] = s
            print(f"sampler (MALA, 4 chains, {name}, T {s['temperature']:.3g}): coverage "
                  f"{s['coverage']:.3f} ± {s['se']:.3f}, width {s['width']:.3f}, flagged "
                  f"{s['flagged']:.2f}, max R-hat {s['rhat_max']:.3f}, {s['seconds']:.0f} "
                  "CPU s", flush=True)
            write(False)
    write(True)
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

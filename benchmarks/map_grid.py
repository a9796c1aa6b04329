"""MAP start grid against error: the validation tables the shipped readers' grids were chosen
on, a ``train --data`` run's table on its held-out split, and one read of the chosen settings
on test images (issue 29 item 4).

The choices are made elsewhere, on validation images only: ``conceptebm calibrate NAME
--map-grid --write`` (``conceptebm.evaluate.map_grid``: scenes of the model's training family
and a renderer variant with another camera and light, seed 20261130) stores ``"map"`` and its
table ``"map_selection"`` in each shipped record; a ``conceptebm train --data`` run stores its
own, chosen on its held-out split. This script reads those tables, then reads the test images
once (seed 20261207 renders; for the run, its ``--test`` folder) at the chosen setting and at
the old default (grid 17, 60 steps), with process CPU images/s at one thread, and draws the
error against grid with the chosen grid marked.

    python benchmarks/map_grid.py --threads 1 --run out/foreign_bench/run \
        --run-test out/foreign_bench/test

writes ``benchmarks/results/map_grid.json`` and ``benchmarks/results/map_grid.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import conceptebm
from conceptebm.evaluate.map_grid import TEST_SEED, validation_sources
from conceptebm.evaluate.metrics import mean_absolute_error
from conceptebm.infer.settings import MAP_GRID, MAP_STEPS
from conceptebm.scenes import infer_concept

MODELS = ("position_late", "position_contrastive", "position_multiview")
OLD = (MAP_GRID, MAP_STEPS)  # the default every reader had before: grid 17, 60 steps


def read(model, images, targets, views: bool, grid: int, steps: int) -> dict:
    t0 = time.process_time()
    est = infer_concept(model, images, views=views, grid=grid, steps=steps)
    cpu = time.process_time() - t0
    m = mean_absolute_error(est.value, targets.reshape(est.value.shape))
    return {"grid": grid, "steps": steps, "mae": m.value, "mae_se": m.stderr,
            "images_per_s_cpu": len(images) * (images.shape[1] if views else 1) / cpu}


def test_read(model, sources: dict, chosen: tuple[int, int]) -> dict:
    first = next(iter(sources.values()))  # warm-up: the first MAP pays one-off imports
    infer_concept(model, first["images"][:2], views=bool(first.get("views")), grid=9, steps=1)
    out = {}
    for name, src in sources.items():
        x, t, v = src["images"], torch.as_tensor(src["targets"]), bool(src.get("views"))
        out[name] = {"n": len(x), "about": src.get("about", ""),
                     "chosen": read(model, x, t, v, *chosen),
                     "old_default": read(model, x, t, v, *OLD)}
        c, o = out[name]["chosen"], out[name]["old_default"]
        print(f"  test [{name:12s}] chosen {chosen}: MAE {c['mae']:.4f} ± {c['mae_se']:.4f} "
              f"({c['images_per_s_cpu']:.1f} img/s)   old {OLD}: MAE {o['mae']:.4f} ± "
              f"{o['mae_se']:.4f} ({o['images_per_s_cpu']:.1f} img/s)", flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(results["models"].items()) + (
        [("train --data run (foreign fixture)", results["run"])] if results.get("run") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], panels, strict=True):
        grid, steps = r["chosen"]["grid"], r["chosen"]["steps"]
        for src, table in r["validation"].items():
            rows = [row for row in table["rows"] if row["steps"] == steps]
            ax.errorbar([row["grid"] for row in rows], [row["mae"] for row in rows],
                        yerr=[2 * row["mae_se"] for row in rows], marker="o", ms=3,
                        capsize=2, label=f"{src} (n {table['n']})")
        ax.axvline(grid, color="k", ls="--", lw=1, label=f"chosen: grid {grid}, {steps} steps")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("start grid (points a coordinate)")
        ax.set_ylabel("validation MAE (±2 se)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("-n", type=int, default=100, help="test images (sets) a source (100)")
    p.add_argument("--run", default=None, help="a train --data run folder (its best checkpoint "
                                               "holds the table chosen on its held-out split)")
    p.add_argument("--run-test", default=None, help="the run's --test folder, read once")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="8 test images, position_late only")
    p.add_argument("--out", default="benchmarks/results/map_grid.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = ["position_late"] if args.quick else args.models
    n = 8 if args.quick else args.n
    results = {"command": "python benchmarks/map_grid.py " + " ".join(argv or []),
               "threads": args.threads, "test_seed": TEST_SEED, "old_default": list(OLD),
               "models": {}}
    for name in models:
        model = conceptebm.load(name)
        sel = model.record.get("map_selection")
        if sel is None:
            raise SystemExit(f"{name} has no map_selection in its record: run conceptebm "
                             f"calibrate {name} --map-grid --write first")
        chosen = (sel["grid"], sel["steps"])
        print(f"{name}: chosen on validation (seed {sel.get('seed')}): grid {chosen[0]}, "
              f"{chosen[1]} steps", flush=True)
        sources = validation_sources(model, n, seed=TEST_SEED)
        results["models"][name] = {
            "chosen": {"grid": chosen[0], "steps": chosen[1]},
            "selection_command": sel.get("command"), "validation_seed": sel.get("seed"),
            "tolerance": sel["tolerance"], "rule": sel["rule"],
            "validation": sel["sources"], "test": test_read(model, sources, chosen)}
    if args.run and not args.quick:
        from conceptebm.datasets import load_images

        model = conceptebm.load(args.run)
        sel = model.record["map_selection"]
        chosen = (sel["grid"], sel["steps"])
        print(f"run {args.run}: chosen on its held-out split: grid {chosen[0]}, {chosen[1]} "
              "steps", flush=True)
        run = {"run": args.run, "chosen": {"grid": chosen[0], "steps": chosen[1]},
               "tolerance": sel["tolerance"], "validation": sel["sources"],
               "train_command": model.record.get("command")}
        if args.run_test:
            test = load_images(args.run_test, infer=True)
            run["test"] = test_read(model, {"test_folder": {
                "images": test.images, "targets": test.labels["position"], "views": False,
                "about": f"{args.run_test} (foreign fixture, seed {TEST_SEED})"}}, chosen)
        results["run"] = run
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

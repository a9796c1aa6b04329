"""Concept inference with position EBMs (paper section 4.5): one image, many views, two objects.

    python -m paper.benchmarks.inference --json out/inference.json  # full run (tens of minutes)
    python -m paper.benchmarks.inference --quick --json out/quick.json    # tiny settings, < 1 min

Sections (each on held-out renders, seeds apart from any training seed):

* single: MAP position (17x17 grid + 60 Adam steps) on ``--n-single`` scenes of the
  "position" set, against the reproduction's one supervised regressor
  (:mod:`paper.baselines.regressor`: the EBM's conv trunk at its width), trained here on as
  many images as the EBM saw (``--regressor-images``) with its augmentation, snapshot chosen
  on validation renders; clean and perturbed (pixel noise sigma 0.1, 1-3 clutter objects, a
  light from outside the training range).
* multiview: error against the number of views (1, 2, 4, 8) on ``--n-multiview`` scenes of the
  "multiview" set (camera, size, shape, colour and light change between views; eq. 11).
* two_objects: on ``--n-two`` two-object scenes, whether the two lowest separated basins of the
  single-object model's energy map lie within 0.15 of the two objects, and the correlation of
  that map with the sum of the maps of each object rendered alone (Figure 12).
* nuts: Pyro NUTS on the multi-view posterior (4 views) of ``--n-nuts`` scenes: how often the
  90% intervals cover the truth (per coordinate), next to the exact grid posterior's coverage,
  and the grid coverage after fitting a temperature on as many other scenes.

JSON keys: ``single_mae_ebm``, ``single_mae_regressor``, ``multiview_mae`` ({"1", "2", "4",
"8"}), ``two_object_frac``, ``nuts_coverage90``, plus a ``details`` object (standard errors,
perturbations, timings, settings). PNGs go to ``--out``. Timings on the shared 2-core CPU are
pessimistic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.checkpoints import load_checkpoint, load_energy
from conceptebm.datasets import SceneDataset, make_dataset
from conceptebm.evaluate import (
    add_pixel_noise,
    binomial_metric,
    mean_absolute_error,
    position_accuracy,
)
from conceptebm.scenes import (
    grid_posterior,
    infer_concept,
    locate_objects,
    multiview_posterior,
    scene_energy_maps,
)
from conceptebm.scenes.inference import map_correlation, match_objects
from conceptebm.scenes.multiview import fit_temperature, interval_coverage

TEST_SEED = 700_001  # held-out renders: no training run uses this seed
VAL_SEED = 600_001  # the regressor's validation renders (its snapshot choice)
VIEWS = (1, 2, 4, 8)
SECTIONS = ("single", "multiview", "two_objects", "nuts")
UNSEEN_LIGHT = ((100.0, 170.0), (20.0, 35.0), (0.5, 0.65), (0.2, 0.3))  # training: az -70..10,
#                                                     elevation 45..70, intensity .75-.95



# ------------------------------------------------------------------------------ helpers
def _checkpoint(spec: str) -> Path:
    path = Path(spec)
    path = path / "best.safetensors" if path.is_dir() else path  # a run folder: its best
    if not path.is_file():
        raise SystemExit(f"paper/benchmarks/inference.py: no model {spec!r}: not a shipped model "
                         f"({', '.join(pretrained.NAMES)}) nor a checkpoint file")
    return path


def load_model(spec: str):
    """A shipped model name or a checkpoint path (or run folder), with its sampler settings."""
    return pretrained.load(spec) if spec in pretrained.NAMES else load_energy(_checkpoint(spec))


def training_record(spec: str) -> dict:
    """The JSON record of a shipped model name or a checkpoint path (its training config...)."""
    return pretrained.info(spec) if spec in pretrained.NAMES else (
        load_checkpoint(_checkpoint(spec)).meta)


def regressor_baseline(model, n_images: int | None, batch: int, quick: bool,
                       trained: dict | None = None):
    """The supervised baseline of the reproduction
    (:class:`~paper.baselines.regressor.ConceptRegressor`: ``model``'s conv trunk at its width,
    a value head, MSE), trained on renders of the same "position" set (seed 0, like the EBM's
    training data) with the EBM's batch size and pixel-noise augmentation, on as many images as
    the EBM saw (``trained``: its checkpoint's training config; else the TrainConfig defaults,
    2000 iterations x batch 32), snapshot chosen by its error on ``VAL_SEED`` renders."""
    from paper.baselines.regressor import fit_regressor

    size = getattr(model, "image_size", 32)
    trained = trained or {}
    n = n_images or int(trained.get("iterations", 2000)) * int(trained.get("batch_size", 32))
    ds = make_dataset("position", size=max(n, batch), seed=0, image_size=size)
    val_x, val_labels = make_dataset("position", size=64 if quick else 500, seed=VAL_SEED,
                                     image_size=size).batch(range(64 if quick else 500))
    noise = float(trained.get("augment_noise") or 0.0)
    reg = fit_regressor(ds, "position", model.concept, iterations=max(1, n // batch),
                        batch_size=batch, width=int(model.config.get("width", 16)), seed=0,
                        augment_noise=noise, val=(val_x, val_labels["position"]),
                        eval_every=max(1, min(250, n // batch // 4)))
    return reg, {"params": reg.record["params"],
                 "ebm_params": sum(p.numel() for p in model.parameters()),
                 "width": reg.record["width"], "images": reg.record["iterations"] * batch,
                 "augment_noise": noise, "best_update": reg.record["best_iteration"],
                 "updates": reg.record["iterations"]}


def coverage(intervals, truth):
    """Per-coordinate coverage (a Metric) and joint box coverage of ``(n, 2, d)`` intervals."""
    inside = interval_coverage(intervals, truth)  # (n, d)
    return binomial_metric(inside.flatten()), inside.all(1).double().mean().item()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def multiview_figure(model, views, truth, res: dict, path: Path) -> None:
    """Views of one scene, their summed energy maps for 1/2/4/8 views, and MAE vs views."""
    from conceptebm.scenes.plots import plot_energy_map, show_image

    plt = _plt()
    fig = plt.figure(figsize=(17, 5.4))
    gs = fig.add_gridspec(2, 10, height_ratios=[1, 1.7])
    for i in range(views.shape[0]):
        show_image(fig.add_subplot(gs[0, i]), views[i], f"view {i + 1}")
    for j, v in enumerate(VIEWS):
        ax = fig.add_subplot(gs[1, 2 * j: 2 * j + 2])
        m = scene_energy_maps(model, views[None, :v], 33, views=True)[0][0]
        plot_energy_map(ax, m, model.concept, truth=truth[None], colorbar=False,
                        title=f"sum of {v} view energies")
    ax = fig.add_subplot(gs[1, 8:])
    ks = [int(k) for k in res]
    ax.errorbar(ks, [res[str(k)]["mae"] for k in ks], [2 * res[str(k)]["mae_se"] for k in ks],
                marker="o", capsize=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("views")
    ax.set_ylabel("position MAE (±2 se)")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def two_object_figure(model, x, alone, truth, found, points: int, path: Path) -> None:
    """Figure 12: each object alone, both together, their maps and the sum of single maps."""
    from conceptebm.scenes.plots import plot_energy_map, show_image

    plt = _plt()
    n = x.shape[0]
    fig, axes = plt.subplots(n, 7, figsize=(20, 3 * n), squeeze=False)
    for i in range(n):
        imgs = [alone[0][i], alone[1][i], x[i]]
        maps = [scene_energy_maps(model, im[None], points)[0][0] for im in imgs]
        for j, (im, t) in enumerate(zip(imgs, ("object 1", "object 2", "both"), strict=True)):
            show_image(axes[i, j], im, t)
        for j, (m, t) in enumerate(zip(maps, ("E: object 1", "E: object 2", "E: both"),
                                       strict=True)):
            plot_energy_map(axes[i, 3 + j], m, model.concept, colorbar=False, title=t,
                            truth=truth[i] if j == 2 else truth[i, j][None],
                            marks=found[i] if j == 2 else None)
        plot_energy_map(axes[i, 6], maps[0] + maps[1], model.concept, colorbar=False,
                        title="E: object 1 + E: object 2", truth=truth[i])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _metrics(pred, truth) -> dict:
    m = mean_absolute_error(pred, truth)
    a = position_accuracy(pred, truth, 0.15)
    return {"mae": m.value, "mae_se": m.stderr, "acc_0.15": a.value, "acc_0.15_se": a.stderr}


def single_section(model, args, details) -> None:
    n = args.n_single
    base = make_dataset("position", size=n, seed=TEST_SEED)
    sets = {
        "clean": base,
        "noise": base,
        "clutter": make_dataset("cluttered", size=n, seed=TEST_SEED),
        "lighting": SceneDataset(replace(base.spec, light=UNSEEN_LIGHT), size=n,
                                 seed=TEST_SEED, name="position_unseen_light",
                                 concept="position"),
    }
    t0 = time.time()
    regressor, reg_info = regressor_baseline(model, args.regressor_images, args.regressor_batch,
                                             quick=args.quick,
                                             trained=training_record(args.model).get("train"))
    details["regressor"] = {**reg_info, "train_s": round(time.time() - t0, 1)}
    gen = torch.Generator().manual_seed(0)
    rows = {}
    for name, ds in sets.items():
        x, labels = ds.batch(range(n))
        if name == "noise":
            x = add_pixel_noise(x, torch.full((n,), 0.1), generator=gen)
        truth = labels["position"]
        t0 = time.time()
        est = infer_concept(model, x, grid=args.grid, steps=args.steps, progress=args.progress)
        ebm_s = time.time() - t0
        rows[name] = {"ebm": _metrics(est.value, truth),
                      "regressor": _metrics(regressor.predict(x), truth),
                      "ebm_s_per_image": ebm_s / n}
        print(f"single [{name:8s}] EBM MAE {rows[name]['ebm']['mae']:.3f} "
              f"± {rows[name]['ebm']['mae_se']:.3f}   regressor MAE "
              f"{rows[name]['regressor']['mae']:.3f} ± {rows[name]['regressor']['mae_se']:.3f}",
              flush=True)
    details["single"] = rows


def multiview_section(mv_model, args, details, out: Path) -> dict:
    n = args.n_multiview
    ds = make_dataset("multiview", size=n * max(VIEWS), seed=TEST_SEED, n_views=max(VIEWS))
    views, labels = ds.views(range(n))  # (n, 8, 3, H, W)
    truth = labels["position"][:, 0]
    res, t0 = {}, time.time()
    for v in VIEWS:
        est = infer_concept(mv_model, views[:, :v], views=True, grid=args.grid, steps=args.steps)
        res[str(v)] = _metrics(est.value, truth)
        print(f"multiview [{v} view{'s' if v > 1 else ' '}] MAE {res[str(v)]['mae']:.3f} ± "
              f"{res[str(v)]['mae_se']:.3f}   acc@0.15 {res[str(v)]['acc_0.15']:.3f}", flush=True)
    details["multiview"] = {"n_scenes": n, "per_views": res, "seconds": round(time.time() - t0)}
    multiview_figure(mv_model, views[0], truth[0], res, out / "multiview.png")
    return {k: r["mae"] for k, r in res.items()}


def two_object_section(model, args, details, out: Path) -> float:
    n = args.n_two
    ds = make_dataset("two_objects", size=n, seed=TEST_SEED)
    x, labels = ds.batch(range(n))
    truth = labels["position"]  # (n, 2, 2)
    t0 = time.time()
    found = locate_objects(model, x, 2, points=args.map_points, progress=args.progress)
    worst = match_objects(found.points, truth)  # (n,)
    solved = binomial_metric(worst < 0.15)
    scene = ds.scenes(range(n))
    alone = []
    for k in range(2):  # each labelled object rendered on its own, same camera and light
        s = scene.select(slice(None))
        s.active = torch.zeros_like(scene.active)
        s.active[:, k] = True
        alone.append(ds.render_scenes(s))
    both = scene_energy_maps(model, x, args.map_points)[0]
    singles = [scene_energy_maps(model, a, args.map_points)[0] for a in alone]
    corr = map_correlation(both, singles[0] + singles[1])
    details["two_objects"] = {
        "n": n, "frac": solved.value, "frac_se": solved.stderr,
        "frac_0.3": (worst < 0.3).double().mean().item(),
        "two_basins_found": (found.found == 2).double().mean().item(),
        "corr_with_sum_mean": corr.mean().item(), "corr_with_sum_median": corr.median().item(),
        "seconds": round(time.time() - t0)}
    print(f"two objects: both within 0.15 in {solved.value:.3f} ± {solved.stderr:.3f} of "
          f"{n} scenes; corr(map, sum of single maps) mean {corr.mean():.3f}", flush=True)
    two_object_figure(model, x[:3], alone, truth[:3], found.points[:3], args.map_points,
                      out / "two_objects.png")
    return solved.value


def nuts_section(mv_model, args, details) -> float:
    n, v = args.n_nuts, 4
    ds = make_dataset("multiview", size=2 * n * 8, seed=TEST_SEED + 1, n_views=8)
    views, labels = ds.views(range(2 * n))  # the first n: test; the last n: calibration
    views, truth = views[:, :v], labels["position"][:, 0]
    t0 = time.time()
    grid = grid_posterior(mv_model, views[:n], points=args.posterior_points,
                          temperature=1.0)
    grid_s = time.time() - t0
    intervals, ess, t0 = [], [], time.time()
    for i in range(n):
        # the section measures Pyro's NUTS at the energies as trained (T = 1), one chain
        post = multiview_posterior(mv_model, views[i], num_samples=args.nuts_samples,
                                   warmup_steps=args.nuts_warmup, seed=i,
                                   init=grid.grid[grid.probs[i].argmax()], sampler="nuts",
                                   chains=1, temperature=1.0)
        intervals.append(post.interval)
        ess.append(post.ess.min().item())
    nuts_s = (time.time() - t0) / n
    intervals = torch.stack(intervals)  # (n, 2, 2)
    cov, joint = coverage(intervals, truth[:n])
    gcov, gjoint = coverage(grid.interval, truth[:n])
    # Recalibration: the temperature fitted on the other n scenes, applied to these.
    calib = grid_posterior(mv_model, views[n:], points=args.posterior_points, temperature=1.0)
    temp = fit_temperature(calib, truth[n:])
    tcov, tjoint = coverage(grid_posterior(mv_model, views[:n], points=args.posterior_points,
                                           temperature=temp).interval, truth[:n])
    width = (intervals[:, 1] - intervals[:, 0]).mean().item()
    details["nuts"] = {"n": n, "views": v, "coverage90": cov.value, "coverage90_se": cov.stderr,
                       "joint_box_coverage": joint, "grid_coverage90": gcov.value,
                       "grid_joint_box_coverage": gjoint, "mean_interval_width": width,
                       "nuts_vs_grid_interval_mae": (intervals - grid.interval).abs().mean().item(),
                       "fitted_temperature": temp, "grid_coverage90_at_fitted_T": tcov.value,
                       "grid_coverage90_at_fitted_T_se": tcov.stderr,
                       "min_ess_median": float(torch.tensor(ess).median()),
                       "nuts_s_per_scene": round(nuts_s, 2), "grid_s": round(grid_s, 1),
                       "samples": args.nuts_samples, "warmup": args.nuts_warmup}
    print(f"NUTS ({v} views, {n} scenes): 90% intervals cover the truth in {cov.value:.3f} ± "
          f"{cov.stderr:.3f} of coordinates (grid posterior: {gcov.value:.3f}); mean width "
          f"{width:.3f}; {nuts_s:.1f} s per scene. Temperature fitted on {n} other scenes: "
          f"{temp:.3g}, grid coverage then {tcov.value:.3f} ± {tcov.stderr:.3f}", flush=True)
    return cov.value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings (what the tests run)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--out", default="out/inference", help="folder for the PNGs")
    p.add_argument("--model", default="position", help="single-object position model: shipped "
                   "name or checkpoint path")
    p.add_argument("--multiview-model", default="position_multiview",
                   help="position model trained on the multiview set (name or path; default: "
                        "shipped, else runs/position_multiview.safetensors, trained if missing)")
    p.add_argument("--n-single", type=int, default=500)
    p.add_argument("--n-multiview", type=int, default=200)
    p.add_argument("--n-two", type=int, default=200)
    p.add_argument("--n-nuts", type=int, default=50)
    p.add_argument("--regressor-images", type=int, default=None,
                   help="training images of the regressor (default: as many as the EBM saw)")
    p.add_argument("--regressor-batch", type=int, default=32)
    p.add_argument("--grid", type=int, default=17, help="MAP start grid per coordinate")
    p.add_argument("--steps", type=int, default=60, help="MAP Adam steps")
    p.add_argument("--map-points", type=int, default=33, help="energy map grid per coordinate")
    p.add_argument("--posterior-points", type=int, default=64)
    p.add_argument("--nuts-samples", type=int, default=300)
    p.add_argument("--nuts-warmup", type=int, default=200)
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--progress", action="store_true", help="tqdm bars for the long steps")
    args = p.parse_args(argv)
    if args.quick:
        args.n_single, args.n_multiview, args.n_two, args.n_nuts = 12, 6, 4, 2
        args.grid, args.steps, args.map_points, args.posterior_points = 9, 10, 17, 24
        args.nuts_samples, args.nuts_warmup = 20, 15
        args.regressor_images = args.regressor_images or 256
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    sections = [s.strip() for s in args.sections.split(",")]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    model = load_model(args.model) if {"single", "two_objects"} & set(sections) else None
    mv_model = (load_model(args.multiview_model)
                if {"multiview", "nuts"} & set(sections) else None)
    details = {"settings": {k: v for k, v in vars(args).items() if k != "json"},
               "test_seed": TEST_SEED}
    result = {}
    if "single" in sections:
        single_section(model, args, details)
        result["single_mae_ebm"] = details["single"]["clean"]["ebm"]["mae"]
        result["single_mae_regressor"] = details["single"]["clean"]["regressor"]["mae"]
    if "multiview" in sections:
        result["multiview_mae"] = multiview_section(mv_model, args, details, out)
    if "two_objects" in sections:
        result["two_object_frac"] = two_object_section(model, args, details, out)
    if "nuts" in sections:
        result["nuts_coverage90"] = nuts_section(mv_model, args, details)
    details["seconds"] = round(time.time() - t_start)
    result["details"] = details
    print(f"PNGs in {out}; total {details['seconds']} s (shared 2-core CPU: pessimistic)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A late-conditioned multi-view position reader (``LateEnergyNet(camera=True)``) against
``position_multiview``.

    # train (one thread, validation seed 900011 picks the checkpoint): the shipped
    # position_multiview_late (7,421 of 8,000 iterations in the time limit, shared machine)
    python benchmarks/late_multiview.py train --iterations 8000 --time-limit-min 33 \
        --out out/mvlate/a.safetensors
    # copied to conceptebm/pretrained/, then its MAP settings chosen on validation images,
    # its energy calibration and its posterior temperatures:
    #   conceptebm calibrate position_multiview_late --map-grid --write
    #   conceptebm calibrate position_multiview_late --write
    #   conceptebm calibrate position_multiview_late --posterior-temperature --views 1 2 4 8 \
    #       -n 200 --points 32 --write
    # read the test scenes once: 1 / 2 / 4 / 8 views, both readers on the same scenes
    python benchmarks/late_multiview.py test --model position_multiview_late \
        -o benchmarks/results/late_multiview.json
    python benchmarks/late_multiview.py train --quick --out /tmp/mv_late.safetensors

``position_multiview`` is early-conditioned (a full pass over each view per candidate
position). The late net runs its trunk once per view; where it reads a candidate world
position in the feature map depends on the view's camera, which a small head estimates from
moments of the feature map (``make_dataset("multiview")``: azimuth 0-360 deg, elevation
35-75 deg, distance 7.5-9.5, and a faint colour gradient on the ground that orients the axes),
and the world point is projected through that camera (see ``conceptebm/energies/late.py``).

Training: the concept-contrastive recipe of ``benchmarks/late_model.py`` on single views of
the "multiview" set (true world position against 31 uniform and ``--near-negatives`` near
wrong ones, cross-entropy on ``-E``, 0.01 L2 on the energies, Adam 1e-3 with cosine decay to
lr/20, batch 32), plus ``--camera-weight`` times the squared error of the estimated camera
against the rendered one (the ``"view"`` label; inference needs only the images). Views'
energies add at inference (eq. 11); each view is trained on its own. Every 500 iterations the
MAP error of 1 and 8 views on validation scenes (seed 900011) is read; the checkpoint kept is
the one with the lowest sum.

Test (``test``): fresh "multiview" scenes (seed 20261210, 8 views each), the first 1, 2, 4, 8
views of each, each reader at its stored MAP settings; speed: 8-view sets per second of process
CPU time on one thread.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.checkpoints import load_energy, save_checkpoint
from conceptebm.datasets import make_dataset
from conceptebm.energies.late import LateEnergyNet
from conceptebm.scenes import infer_concept
from conceptebm.train import wrong_concept_values

VIEWS = (1, 2, 4, 8)
VAL_SEED, TEST_SEED = 900_011, 20_261_210
RECIPE = {"dataset": "multiview", "n_views": 8, "dataset_size": 1_600_000, "seed": 0,
          "batch_size": 32, "negatives": 31, "near_negatives": 8, "lr": 1e-3,
          "lr_schedule": "cosine to lr/20", "l2": 0.01, "camera_weight": 1.0, "width": 24,
          "layers": 3, "features": 32, "hidden": 64, "center_input": False,
          "loss": "concept-contrastive per view + camera squared error (no CD)"}


def views_of(seed: int, n: int):
    """``n`` scenes of 8 views of the "multiview" set: images (n, 8, 3, H, W), positions."""
    ds = make_dataset("multiview", size=n * max(VIEWS), seed=seed, n_views=max(VIEWS))
    x, labels = ds.views(range(n))
    return x, labels["position"][:, 0]


def mae_by_views(model, x, truth, **map_kw) -> dict:
    """MAE (mean over both coordinates) and its standard error for the first 1, 2, 4, 8 views."""
    out = {}
    for v in VIEWS:
        with torch.no_grad():
            est = infer_concept(model, x[:, :v], views=True, **map_kw).value
        err = (est - truth).abs().mean(1)  # (n,)
        out[str(v)] = {"mae": err.mean().item(),
                       "mae_se": (err.std() / len(err) ** 0.5).item()}
    return out


def train(out, *, iterations: int, time_limit_min: float | None, width: int, seed: int,
          near_negatives: int, camera_weight: float, val_scenes: int, command: str,
          eval_every: int = 500) -> Path:
    cfg = {**RECIPE, "iterations": int(iterations), "width": int(width), "seed": int(seed),
           "near_negatives": int(near_negatives), "camera_weight": float(camera_weight)}
    ds = make_dataset("multiview", size=cfg["dataset_size"], seed=seed, n_views=cfg["n_views"])
    concept = ds.concepts["position"]
    torch.manual_seed(seed)
    net = LateEnergyNet(concept, width=cfg["width"], layers=cfg["layers"],
                        features=cfg["features"], hidden=cfg["hidden"],
                        center_input=cfg["center_input"], camera=True)
    x_val, t_val = views_of(VAL_SEED, val_scenes)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["iterations"],
                                                       eta_min=cfg["lr"] / 20)
    gen = torch.Generator().manual_seed(seed)
    b, t0, avg = cfg["batch_size"], time.time(), {"acc": 0.0, "cam": 1.0}
    best, history = (float("inf"), None, 0), []
    for it in range(cfg["iterations"]):
        x, labels = ds.batch(torch.randint(len(ds), (b,), generator=gen))
        c = labels["position"]
        wrong = wrong_concept_values(concept, c, cfg["negatives"], near=cfg["near_negatives"],
                                     generator=gen)
        f = net.features(x)
        e = net.energy_from_features(f, torch.cat([c[:, None], wrong], 1))  # (B, 1 + M)
        ce = torch.nn.functional.cross_entropy(-e, torch.zeros(b, dtype=torch.long))
        cam = (net.camera(f) - net.camera_target(labels["view"])).pow(2).sum(1).mean()
        loss = ce + cfg["l2"] * e.pow(2).mean() + cfg["camera_weight"] * cam
        if not torch.isfinite(loss):
            raise RuntimeError(f"training diverged at iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        avg["acc"] = 0.98 * avg["acc"] + 0.02 * (e.argmin(1) == 0).float().mean().item()
        avg["cam"] = 0.98 * avg["cam"] + 0.02 * cam.item()
        out_of_time = time_limit_min is not None and time.time() - t0 > 60 * time_limit_min
        if (it + 1) % eval_every == 0 or it + 1 == cfg["iterations"] or out_of_time:
            net.eval()
            res = mae_by_views(net, x_val[:, :8], t_val, grid=17, steps=30)
            net.train()
            score = res["1"]["mae"] + res["8"]["mae"]
            history.append({"iteration": it + 1, "score": round(score, 5),
                            **{f"mae_{v}": round(res[str(v)]["mae"], 5) for v in VIEWS},
                            "train_acc": round(avg["acc"], 3), "camera_sq": round(avg["cam"], 4),
                            "time_s": round(time.time() - t0)})
            print(history[-1], flush=True)
            if score < best[0]:
                best = (score, {k: t.detach().clone() for k, t in net.state_dict().items()},
                        it + 1)
        if out_of_time:
            break
    net.load_state_dict(best[1])
    cfg.update(train_s=round(time.time() - t0, 1), iterations_run=history[-1]["iteration"],
               best_iteration=best[2], validation=history,
               select=f"lowest MAP MAE(1 view) + MAE(8 views) of every {eval_every} "
                      f"iterations on {val_scenes} validation scenes (seed {VAL_SEED}, grid 17, "
                      f"30 steps)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, {"model": net.state_dict()},
                    {"net": net.config, "train": cfg, "command": command,
                     "training_time_s": cfg["train_s"]})
    return out


def sets_per_cpu_s(model, x, repeats: int = 2) -> float:
    """8-view sets read per second of process CPU time (best of ``repeats``), stored MAP."""
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        with torch.no_grad():
            infer_concept(model, x, views=True)
        best = min(best, time.process_time() - t)
    return len(x) / best


def test(model_spec: str, reference: str, n: int, speed_n: int, seed: int) -> dict:
    def load(spec):
        return pretrained.load(spec) if spec in pretrained.NAMES else load_energy(spec)

    x, truth = views_of(seed, n)
    rows = {}
    for name, spec in (("late", model_spec), ("reference", reference)):
        model = load(spec)
        t = time.time()
        rows[name] = {"model": spec, "map": model.map_settings.to_dict()
                      if hasattr(model.map_settings, "to_dict") else str(model.map_settings),
                      "mae": mae_by_views(model, x, truth)}
        rows[name]["sets_per_cpu_s"] = sets_per_cpu_s(model, x[:speed_n])
        rows[name]["seconds"] = round(time.time() - t)
        print(name, spec, {v: f"{r['mae']:.4f} ± {r['mae_se']:.4f}"
                           for v, r in rows[name]["mae"].items()},
              f"{rows[name]['sets_per_cpu_s']:.2f} 8-view sets/s per core", flush=True)
    wins = {v: rows["late"]["mae"][v]["mae"] <= rows["reference"]["mae"][v]["mae"]
            for v in map(str, VIEWS)}
    return {"seed": seed, "n_scenes": n, "views": list(VIEWS), "speed_sets": speed_n,
            "readers": rows, "late_at_least_as_good": wins,
            "speedup": rows["late"]["sets_per_cpu_s"] / rows["reference"]["sets_per_cpu_s"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the camera-aware late net")
    t.add_argument("--out", default="out/position_multiview_late.safetensors")
    t.add_argument("--iterations", type=int, default=20_000, help="cosine schedule length")
    t.add_argument("--time-limit-min", type=float, default=None)
    t.add_argument("--width", type=int, default=RECIPE["width"])
    t.add_argument("--near-negatives", type=int, default=RECIPE["near_negatives"])
    t.add_argument("--camera-weight", type=float, default=RECIPE["camera_weight"])
    t.add_argument("--val-scenes", type=int, default=60)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quick", action="store_true", help="20 iterations of a width-4 net")
    r = sub.add_parser("test", help="read the test scenes once, both readers")
    r.add_argument("--model", required=True, help="the late checkpoint (or shipped name)")
    r.add_argument("--reference", default="position_multiview")
    r.add_argument("-n", type=int, default=200, help="test scenes (8 views each)")
    r.add_argument("--speed-n", type=int, default=50, help="8-view sets timed")
    r.add_argument("--seed", type=int, default=TEST_SEED)
    r.add_argument("-o", "--output", default=None, help="JSON file")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/late_multiview.py",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    if args.cmd == "train":
        kw = ({"iterations": 20, "width": 4, "val_scenes": 4} if args.quick else
              {"iterations": args.iterations, "width": args.width,
               "val_scenes": args.val_scenes})
        path = train(args.out, time_limit_min=args.time_limit_min, seed=args.seed,
                     near_negatives=args.near_negatives, camera_weight=args.camera_weight,
                     command=command, eval_every=10 if args.quick else 500, **kw)
        print(f"wrote {path}")
        return 0
    result = {"command": command, **test(args.model, args.reference, args.n, args.speed_n,
                                         args.seed)}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

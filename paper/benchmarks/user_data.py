"""A user's folder of foreign images -> an inference model from the CLI, against a supervised
regressor of the same size on the same images, clean and under pixel noise.

    python -m paper.benchmarks.user_data --json runs/foreign/result.json      # the 10-minute target
    python -m paper.benchmarks.user_data --quick --json /tmp/user_data.json   # smoke (seconds)
    python -m paper.benchmarks.user_data --run runs/foreign/ebm               # score a trained run

1. The fixture: ``python -m conceptebm.datasets.foreign --out RUNS/data -n 1700`` (our
   renderer with a camera, light, palette, shape names and size range that no shipped model
   saw; see :mod:`conceptebm.datasets.foreign`), a folder of PNGs + ``labels.csv`` with the
   columns ``file,x,y,color,shape,size``.
2. ``conceptebm train --data RUNS/data --concept position --objective contrastive
   --time-limit-min 10 --threads 2 --out-dir RUNS/ebm`` (the default held-out split: 300
   images, seed 0; best checkpoint by held-out MAP error).
3. On those 300 held-out images: MAP position error of the EBM (grid 17 x 17, 60 Adam steps)
   and of the shipped ``position_contrastive`` model (it never saw this camera), and the
   error of :class:`~paper.baselines.regressor.ConceptRegressor` (the EBM's conv trunk,
   same width, a value head, MSE; trained on the same 1,400 images for
   ``--regressor-iterations``), each clean and with N(0, 0.1^2) pixel noise.

JSON keys: ebm_mae, ebm_mae_noisy, regressor_mae, regressor_mae_noisy, shipped_mae,
minutes (EBM training), regressor_seconds, iterations, command, load (``uptime`` at start).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

QUICK = ["--smoke", "--eval-every", "3"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/foreign", help="folder for data and run")
    p.add_argument("--data", default=None, help="use this folder instead of the fixture")
    p.add_argument("--run", default=None, help="score this trained run instead of training")
    p.add_argument("-n", type=int, default=1700, help="fixture size (default 1700)")
    p.add_argument("--minutes", type=float, default=10.0, help="EBM training time limit")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-args", default="", help="extra conceptebm train options")
    p.add_argument("--regressor-iterations", type=int, default=3000)
    p.add_argument("--noise", type=float, default=0.1, help="pixel noise sigma")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: 40 images, tiny models")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()

    from conceptebm import pretrained
    from conceptebm.checkpoints import load_energy
    from conceptebm.cli import main as cli
    from conceptebm.datasets import load_images, split_holdout
    from conceptebm.datasets.foreign import write_foreign
    from conceptebm.evaluate.heldout_map import heldout_map_metrics
    from paper.baselines.regressor import fit_regressor, regressor_metrics

    out = Path(args.out)
    n = 40 if args.quick else args.n
    data = Path(args.data) if args.data else out / "data"
    if not args.data and not (data / "labels.csv").is_file():
        write_foreign(data, n, seed=0)
    run = Path(args.run) if args.run else out / "ebm"
    command = ["train", "--data", str(data), "--concept", "position", "--objective",
               "contrastive", "--threads", str(args.threads), "--out-dir", str(run), "--quiet",
               # --iterations: TrainConfig's default (2,000) would end the run before the
               # time limit (3 minutes on 2 free cores); the time limit should decide
               *(QUICK if args.quick else ["--time-limit-min", f"{args.minutes:g}",
                                           "--iterations", "1000000"]),
               *args.train_args.split()]
    t0 = time.time()
    if not args.run and cli(command) != 0:
        print("error: training failed", file=sys.stderr)
        return 1
    minutes = (time.time() - t0) / 60
    config = json.loads((run / "config.json").read_text())
    record = json.loads((run / "data.json").read_text())
    train_set, held = split_holdout(load_images(data, infer=True), record["holdout"],
                                    seed=record["split_seed"])
    x_te, y_te = held.images, held.labels["position"]
    net = load_energy(run / "best.safetensors")
    kw = {"grid": 5, "steps": 5} if args.quick else {}
    mae = {}
    for tag, sigma in (("", 0.0), ("_noisy", args.noise)):
        mae["ebm_mae" + tag] = heldout_map_metrics(net, x_te, y_te, noise_sigma=sigma,
                                                   **kw)["position_mae"].value
    shipped = pretrained.load("position_contrastive")
    mae["shipped_mae"] = heldout_map_metrics(shipped, x_te, y_te, **kw)["position_mae"].value
    t1 = time.time()
    reg = fit_regressor(train_set.images, train_set.labels["position"], net.concept,
                        iterations=30 if args.quick else args.regressor_iterations,
                        width=config["width"], seed=0)
    reg_s = time.time() - t1
    for tag, sigma in (("", 0.0), ("_noisy", args.noise)):
        mae["regressor_mae" + tag] = regressor_metrics(reg, x_te, y_te,
                                                       noise_sigma=sigma)["position_mae"].value
    evals = (run / "eval.csv").read_text().splitlines()
    result = {**mae, "minutes": minutes, "regressor_seconds": reg_s,
              "iterations": int(evals[-1].split(",")[0]) if len(evals) > 1 else 0,
              "heldout": len(held), "train": len(train_set), "noise_sigma": args.noise,
              "command": "conceptebm " + " ".join(command), "load": list(load),
              "regressor_iterations": args.regressor_iterations}
    print(f"held-out MAP position error ({len(held)} images): EBM {mae['ebm_mae']:.4f} clean, "
          f"{mae['ebm_mae_noisy']:.4f} noisy (sigma {args.noise}); regressor "
          f"{mae['regressor_mae']:.4f} / {mae['regressor_mae_noisy']:.4f}; shipped "
          f"position_contrastive {mae['shipped_mae']:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

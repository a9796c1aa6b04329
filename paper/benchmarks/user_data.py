"""A user's folder of foreign images -> an inference model from the CLI, against the supervised
regressor of :mod:`paper.baselines.regressor` on the same images, clean and under pixel noise.

    OMP_NUM_THREADS=1 python -m paper.benchmarks.user_data --threads 1 \\
        --json paper/results/user_data.json                  # trains 10 min, then scores
    python -m paper.benchmarks.user_data --quick --json /tmp/user_data.json   # smoke (seconds)
    python -m paper.benchmarks.user_data --run RUN --json result.json         # score a run

The protocol (``paper/PROTOCOL.md``): three disjoint sets of images.

* training and validation: the fixture ``conceptebm make-data foreign --out-dir RUNS/data
  -n 1700`` (seed 0; our renderer with a camera, light, palette, shape names and
  size range no shipped model saw, see :mod:`conceptebm.datasets.foreign`; PNGs +
  ``labels.csv`` with ``file,x,y,color,shape,size``); ``train``'s default held-out split
  (300 images, seed 0) is the validation split: it picks the EBM's checkpoint and the
  regressor's snapshot;
* test: 300 more images of the fixture rendered with the test seed 20261207 (``RUNS/test``),
  read once, after every choice, by ``train --test`` (its ``RUN/test.json``) and below.

1. The EBM: ``conceptebm train --data RUNS/data --test RUNS/test --concept position
   --objective contrastive`` with :data:`RECIPE` (the late-conditioned net, 15 contrastive
   negatives, pixel-noise augmentation sigma ~ U(0, 0.1)), ``--time-limit-min 10`` on one
   thread, best checkpoint by validation MAP error.
2. The regressor: :class:`~paper.baselines.regressor.ConceptRegressor` (the early net's
   conv trunk at the EBM's width, a value head, MSE) on the same 1,400 training images with
   the same noise augmentation and batch size, trained for as many CPU seconds as the EBM
   trained wall-clock seconds (so at least its CPU time), snapshot chosen by validation MAE.
3. On the test images: MAP position error of the EBM (grid 17 x 17, 60 Adam steps) and of the
   shipped ``position_contrastive`` model (it never saw this camera), and the regressor's
   error, each clean and with N(0, 0.1^2) pixel noise, with standard errors.

JSON: flat keys with ``<key>_se`` standard errors (``ebm_mae``, ``ebm_mae_noisy``,
``regressor_mae``, ``regressor_mae_noisy``, ``shipped_mae``, ``shipped_mae_noisy``), the
budgets (``ebm_seconds``, ``ebm_iterations``, ``regressor_cpu_seconds``,
``regressor_updates``, their ratios), ``command``, ``train_command`` and ``protocol``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

# the late-conditioned recipe for a position concept on a few thousand images (fixed before
# this protocol, chosen on the images that are now the validation split)
RECIPE = ["--net", "late", "--contrastive-negatives", "15", "--augment-noise", "0.1"]
QUICK = ["--smoke", "--eval-every", "3"]
TEST_SEED = 20261207  # the test images' render seed
DATA_SEED = 0  # the training + validation images' render seed (and the split seed)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/foreign", help="folder for data and run")
    p.add_argument("--run", default=None, help="score this trained run instead of training")
    p.add_argument("-n", type=int, default=1700, help="training + validation images (1700)")
    p.add_argument("--n-test", type=int, default=300, help="test images (300)")
    p.add_argument("--minutes", type=float, default=10.0, help="EBM training time limit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-args", default="", help="extra conceptebm train options")
    p.add_argument("--noise", type=float, default=0.1, help="test pixel noise sigma")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: 40 images, tiny models")
    words = list(argv if argv is not None else sys.argv[1:])
    args = p.parse_args(words)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()

    from conceptebm import pretrained
    from conceptebm.checkpoints import load_energy
    from conceptebm.cli import main as cli
    from conceptebm.datasets import load_images, split_holdout
    from conceptebm.datasets.foreign import write_foreign
    from conceptebm.evaluate.heldout_map import heldout_map_metrics
    from conceptebm.infer import MAPSettings
    from paper.baselines.regressor import fit_regressor, regressor_metrics

    out = Path(args.out)
    n, n_test = (40, 12) if args.quick else (args.n, args.n_test)
    data, test_dir = out / "data", out / "test"
    if not (data / "labels.csv").is_file():
        write_foreign(data, n, seed=DATA_SEED)
    if not (test_dir / "labels.csv").is_file():
        write_foreign(test_dir, n_test, seed=TEST_SEED)
    run = Path(args.run) if args.run else out / "ebm"
    command = ["train", "--data", str(data), "--test", str(test_dir), "--concept", "position",
               "--objective", "contrastive", "--threads", str(args.threads), "--out-dir",
               str(run), "--quiet",
               # --iterations: TrainConfig's default (2,000) would end the run before the
               # time limit; the time limit decides
               *(QUICK if args.quick else [*RECIPE, "--time-limit-min", f"{args.minutes:g}",
                                           "--iterations", "1000000"]),
               *args.train_args.split()]
    t0 = time.time()
    if not args.run and cli(command) != 0:
        print("error: training failed", file=sys.stderr)
        return 1
    minutes = (time.time() - t0) / 60
    config = json.loads((run / "config.json").read_text())
    record = json.loads((run / "data.json").read_text())
    last = json.loads((run / "last.json").read_text())
    best = json.loads((run / "best.json").read_text())
    train_set, val = split_holdout(load_images(data, infer=True), record["holdout"],
                                   seed=record["split_seed"])
    test = load_images(test_dir, infer=True)
    assert not set(train_set.files) & set(val.files), "training and validation overlap"
    x_val, y_val = val.images, val.labels["position"]
    x_te, y_te = test.images, test.labels["position"]
    net = load_energy(run / "best.safetensors")
    # quick: a coarse MAP; else each model's own MAP settings (the shipped recipe)
    kw = {"map_settings": MAPSettings(grid=5, steps=5)} if args.quick else {}
    result = {}

    def put(key, metric):
        result[key], result[key + "_se"] = metric.value, metric.stderr

    for tag, sigma in (("", 0.0), ("_noisy", args.noise)):
        put("ebm_mae" + tag, heldout_map_metrics(net, x_te, y_te, noise_sigma=sigma,
                                                 **kw)["position_mae"])
    shipped = pretrained.load("position_contrastive")
    for tag, sigma in (("", 0.0), ("_noisy", args.noise)):
        put("shipped_mae" + tag, heldout_map_metrics(shipped, x_te, y_te, noise_sigma=sigma,
                                                     **kw)["position_mae"])

    # the regressor: same images, same augmentation and batch, >= the EBM's CPU time
    ebm_seconds = float(last["elapsed_s"])
    ebm_iterations = int(last["iteration"])
    reg = fit_regressor(train_set.images, train_set.labels["position"], net.concept,
                        width=int(config["width"]), batch_size=int(config["batch_size"]),
                        augment_noise=float(config["augment_noise"]), seed=0,
                        iterations=30 if args.quick else None,
                        time_limit_s=None if args.quick else ebm_seconds, clock="cpu",
                        val=(x_val, y_val), eval_every=10 if args.quick else 500)
    for tag, sigma in (("", 0.0), ("_noisy", args.noise)):
        put("regressor_mae" + tag, regressor_metrics(reg, x_te, y_te,
                                                     noise_sigma=sigma)["position_mae"])
    rec = reg.record
    val_mae = heldout_map_metrics(net, x_val, y_val, **kw)["position_mae"].value
    test_json = run / "test.json"
    result.update({
        "command": "OMP_NUM_THREADS=1 python -m paper.benchmarks.user_data "
                   + " ".join(shlex.quote(w) for w in words),
        # what trained the scored run (its command.txt: a --run's own, lines of a resume)
        "train_command": ((run / "command.txt").read_text().strip() if args.run else
                          "conceptebm " + " ".join(shlex.quote(w) for w in command)),
        "protocol": {
            "selection": (f"the EBM's checkpoint by MAP error on the {len(val)} validation "
                          f"images (train's held-out split of the seed-{DATA_SEED} fixture, "
                          f"split seed {record['split_seed']}), scored during training; the "
                          "regressor's snapshot (every 500 updates) by its MAE on the same "
                          f"images; the {len(test)} test images (rendered with seed "
                          f"{TEST_SEED}) are read once, after"),
            "selection_seeds": sorted({DATA_SEED, int(record["split_seed"])}),
            "test_seeds": [TEST_SEED]},
        "ebm_val_mae": val_mae, "regressor_val_mae": -rec["val_score"],
        "ebm_seconds": ebm_seconds, "ebm_iterations": ebm_iterations,
        "ebm_best_iteration": int(best["iteration"]),
        "regressor_cpu_seconds": rec["cpu_seconds"], "regressor_seconds": rec["seconds"],
        "regressor_updates": rec["iterations"], "regressor_best_update": rec["best_iteration"],
        "budget_cpu_ratio": rec["cpu_seconds"] / max(ebm_seconds, 1e-9),
        "budget_updates_ratio": rec["iterations"] / max(ebm_iterations, 1),
        "regressor_params": rec["params"],
        "ebm_params": sum(p.numel() for p in net.parameters()),
        "augment_noise": float(config["augment_noise"]), "batch_size": int(config["batch_size"]),
        "test": len(test), "validation": len(val), "train": len(train_set),
        "noise_sigma": args.noise, "minutes": minutes if not args.run else None,
        "train_test_json": (json.loads(test_json.read_text())["metrics"]
                            if test_json.is_file() else None),
        "load": list(load)})
    print(f"test MAP position error ({len(test)} images, read once): EBM "
          f"{result['ebm_mae']:.4f} ± {result['ebm_mae_se']:.4f} clean, "
          f"{result['ebm_mae_noisy']:.4f} ± {result['ebm_mae_noisy_se']:.4f} noisy (sigma "
          f"{args.noise}); regressor {result['regressor_mae']:.4f} ± "
          f"{result['regressor_mae_se']:.4f} / {result['regressor_mae_noisy']:.4f} ± "
          f"{result['regressor_mae_noisy_se']:.4f}; shipped position_contrastive "
          f"{result['shipped_mae']:.4f}")
    print(f"budgets: EBM {ebm_iterations} iterations in {ebm_seconds:.0f} s; regressor "
          f"{rec['iterations']} updates in {rec['cpu_seconds']:.0f} CPU s (CPU ratio "
          f"{result['budget_cpu_ratio']:.2f}, updates ratio {result['budget_updates_ratio']:.1f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

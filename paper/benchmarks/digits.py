"""scikit-learn's digits through the user-data path: a class-conditional EBM from the CLI.

    OMP_NUM_THREADS=1 python -m paper.benchmarks.digits --threads 1 --json paper/results/digits.json
    python -m paper.benchmarks.digits --quick --json /tmp/digits.json              # smoke (seconds)
    python -m paper.benchmarks.digits --run RUN --json result.json                 # score a run

The protocol (``paper/PROTOCOL.md``): three disjoint splits of the 1,797 digits.

* test: 449 digits (a quarter) drawn with the test seed 20261207, written to
  ``digits_test.npz`` and read once, after every choice, by ``train --test`` (its
  ``RUN/test.json``) and by the scoring below;
* validation: 20 % of the other 1,348 (270 digits, ``train --holdout 0.2``, seed 0): it picks
  the EBM's checkpoint (MAP accuracy every 500 iterations), logistic regression's C and the
  CNN classifier's snapshot;
* training: the remaining 1,078 digits, for the EBM and both baselines alike.

Steps, each a public entry point (nothing digit-specific in the training path):

1. ``conceptebm make-data digits -o RUNS/digits.npz``: the 1,797 8x8 digits as a
   user's .npz (grey levels in [0, 1] on three channels, ``digit`` declared categorical);
   split here into ``digits_trainval.npz`` and ``digits_test.npz``.
2. ``conceptebm train --data digits_trainval.npz --test digits_test.npz --concept digit
   --holdout 0.2 ...``: contrastive divergence (Langevin negatives, replay buffer) plus the
   concept-contrastive term (:data:`RECIPE`, fixed before this protocol), 10,000 iterations,
   best checkpoint by validation MAP accuracy, default sampler (K = 20, step 100, noise 0.005),
   an 8x8 net.
3. On the test digits: ``map_accuracy`` (``argmin_k E(x | k)``) against ``logreg_accuracy``
   (scikit-learn's LogisticRegression on the 64 pixels, C chosen on validation) and
   ``cnn_accuracy`` (:class:`~paper.baselines.regressor.ConceptRegressor` as a classifier,
   the EBM's trunk at the same width, as many updates as the EBM had, snapshot chosen on
   validation); ``generation_accuracy``: one generation per test digit, asked for its label
   (the model's own sampler settings, noise seed 20261207), read by that CNN
   (``generation_accuracy_logreg``: by the logistic regression). Realism (``fid``): the
   Fréchet distance between those generations and the test digits in the CNN's trunk
   features (the scene judges read 32x32 scenes, not digits), with ``fid_floor`` (as many
   real training digits against the test digits). ``denoise_steps`` (noise-free steps that
   end the chain: 0 or 5) is chosen by the same distance on the validation digits (noise seed
   1); when it chose 5, the ``*_denoise`` keys report that sampler too. ``or_split_3`` /
   ``or_split_8``: the shares of 3s and of 8s among ``--samples`` samples of ``digit=3 |
   digit=8`` (the mixture eq. (6) defines, as ``conceptebm sample`` draws it);
   ``or_split_energy_*``: Langevin on the soft-min energy, for comparison.
4. Figures: ``digits_classes.png`` (generations, one row per class) and ``digits_or.png``.

JSON: flat keys with ``<key>_se`` standard errors, ``command``, ``protocol``, budgets.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

# Fixed before the test split existed (chosen on the digits that are now partly test digits,
# with the older run): CD plus the concept-contrastive term at weight 2, lr 2e-4 with a cosine
# decay over the run (a constant lr let the generations collapse); every validation digit is
# scored at each evaluation.
RECIPE = ["--contrastive-weight", "2", "--lr", "2e-4", "--lr-schedule", "cosine",
          "--eval-samples", "1000", "--eval-every", "500", "--checkpoint-every", "1000"]
QUICK = ["--smoke", "--eval-every", "3"]
TEST_SEED = 20261207  # the test digits' split seed and the generations' noise seed
TEST_FRACTION = 0.25
HOLDOUT = 0.2  # validation: a fifth of the non-test digits
C_GRID = (0.01, 0.1, 1.0, 10.0)  # logistic regression's C, chosen on validation
DENOISE = (0, 5)  # denoise_steps candidates, chosen by validation FID
VAL_SEED = 1  # the validation generations' noise seed


def _generate(net, labels, seed: int, denoise: int, sample_images):
    """One sample per label with the model's own sampler, ``denoise`` noise-free steps last."""
    settings = {**dict(net.sampler), "denoise_steps": denoise}
    return sample_images(net, net.concept.encode(labels),
                         generator=torch.Generator().manual_seed(seed), **settings)


def _flat(x):
    return x.mean(1).flatten(1).numpy()  # (n, 64) grey levels


def _logreg(train_x, train_y, val_x, val_y):
    """Logistic regression on the pixels; C picked by validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=5000).fit(_flat(train_x), train_y.numpy())
        acc = float((model.predict(_flat(val_x)) == val_y.numpy()).mean())
        if best is None or acc > best[0]:
            best = (acc, c, model)
    acc, c, model = best
    return (lambda x: torch.as_tensor(model.predict(_flat(x)))), {"C": c, "val_accuracy": acc}


def _binomial(correct):
    from conceptebm.evaluate.metrics import binomial_metric

    m = binomial_metric(torch.as_tensor(correct).bool())
    return m.value, m.stderr


def _shares(read, classes):
    """Share of each class among ``read`` labels, with binomial standard errors."""
    return [_binomial(read == k) for k in classes]


def _features(reader, x, chunk: int = 1024):
    with torch.no_grad():
        coords = reader.coords
        return torch.cat([reader.trunk(torch.cat([c, coords.expand(c.shape[0], -1, -1, -1)], 1))
                          for c in x.split(chunk)]).double()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/digits", help="folder for data, run and figures")
    p.add_argument("--run", default=None, help="score this trained run instead of training")
    p.add_argument("--minutes", type=float, default=15.0, help="training time limit")
    p.add_argument("--iterations", type=int, default=10000,
                   help="training iterations (the cosine schedule decays over them)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--or-temperature", type=float, default=0.01,
                   help="temperature of digit=3 | digit=8 (the official code's 0.01)")
    p.add_argument("--figures", default=None, help="folder for the PNGs (default --out)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, few samples")
    args = p.parse_args(argv if argv is not None else sys.argv[1:])
    argv_words = list(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(args.threads)

    from conceptebm.checkpoints import load_energy
    from conceptebm.cli import main as cli
    from conceptebm.compose.generate import generate_images
    from conceptebm.datasets import load_images, save_npz, split_holdout
    from conceptebm.datasets.digits import write_digits
    from conceptebm.energies import Or
    from conceptebm.evaluate.heldout_map import heldout_map_metrics
    from conceptebm.evaluate.realism import frechet_distance
    from conceptebm.infer import langevin
    from conceptebm.plotting import save_grid
    from conceptebm.train.sampling import sample_images
    from paper.baselines.regressor import fit_regressor

    out = Path(args.out)
    figures = Path(args.figures) if args.figures else out
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    everything = load_images(write_digits(out / "digits.npz"))
    trainval, test = split_holdout(everything, TEST_FRACTION, seed=TEST_SEED)
    save_npz(trainval, out / "digits_trainval.npz")
    save_npz(test, out / "digits_test.npz")
    run = Path(args.run) if args.run else out / "ebm"
    command = ["train", "--data", str(out / "digits_trainval.npz"), "--test",
               str(out / "digits_test.npz"), "--concept", "digit", "--holdout", f"{HOLDOUT:g}",
               "--threads", str(args.threads), "--out-dir", str(run), "--quiet",
               *(QUICK if args.quick else RECIPE + ["--iterations", str(args.iterations),
                                                    "--time-limit-min", str(args.minutes)])]
    t0 = time.time()
    if not args.run and cli(command) != 0:
        print("error: training failed", file=sys.stderr)
        return 1
    minutes = (time.time() - t0) / 60
    net = load_energy(run / "best.safetensors")
    config = json.loads((run / "config.json").read_text())
    record = json.loads((run / "data.json").read_text())
    train_set, val = split_holdout(load_images(out / "digits_trainval.npz"), record["holdout"],
                                   seed=record["split_seed"])
    x_tr, y_tr = train_set.images, train_set.labels["digit"]
    x_val, y_val = val.images, val.labels["digit"]
    x_te, y_te = test.images, test.labels["digit"]
    ebm_iterations = int(json.loads((run / "last.json").read_text())["iteration"])
    best_iteration = int(json.loads((run / "best.json").read_text())["iteration"])

    # the baselines: the same training digits, their own choice on the validation digits
    logreg, logreg_info = _logreg(x_tr, y_tr, x_val, y_val)
    reader = fit_regressor(x_tr, y_tr, net.concept, width=int(net.config.get("width", 16)),
                           seed=0, batch_size=int(config["batch_size"]),
                           iterations=60 if args.quick else ebm_iterations,
                           val=(x_val, y_val), eval_every=20 if args.quick else 250)
    # the test digits, read once
    result = {}
    m = heldout_map_metrics(net, x_te, y_te)["digit_acc"]
    result["map_accuracy"], result["map_accuracy_se"] = m.value, m.stderr
    result["logreg_accuracy"], result["logreg_accuracy_se"] = _binomial(logreg(x_te) == y_te)
    result["cnn_accuracy"], result["cnn_accuracy_se"] = _binomial(reader.predict(x_te) == y_te)

    # generation: one sample per test digit, asked for its label (noise seed TEST_SEED), read
    # by the CNN (and by the logistic regression); realism: the Fréchet distance to those
    # test digits in the CNN's trunk features, floor: as many real training digits against
    # them. denoise_steps (noise-free steps ending the chain) is chosen by the same distance on
    # the validation digits (noise seed VAL_SEED); the test reads the model's own sampler
    # (denoise 0) and, if validation chose another value, that one too.
    feat = (lambda x: _features(reader, x))
    fid_val = {}
    for k in DENOISE:
        fake = _generate(net, y_val, VAL_SEED, k, sample_images)
        fid_val[k] = frechet_distance(feat(fake), feat(x_val))
    chosen = min(DENOISE, key=lambda k: fid_val[k])
    perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(TEST_SEED))
    floor = frechet_distance(feat(x_tr[perm[:len(test)]]), feat(x_te))
    rows = {}
    for k in sorted({0, chosen}):
        images = _generate(net, y_te, TEST_SEED, k, sample_images)
        tag = "" if k == 0 else "_denoise"
        (acc, acc_se), (lr_acc, lr_se) = (_binomial(reader.predict(images) == y_te),
                                          _binomial(logreg(images) == y_te))
        result.update({f"generation_accuracy{tag}": acc, f"generation_accuracy{tag}_se": acc_se,
                       f"generation_accuracy_logreg{tag}": lr_acc,
                       f"generation_accuracy_logreg{tag}_se": lr_se,
                       f"fid{tag}": frechet_distance(feat(images), feat(x_te)),
                       f"fid_floor{tag}": floor})
        rows[k] = images
    result.update({"denoise_steps_chosen": chosen, "fid_n": len(test),
                   **{f"fid_val_denoise_{k}": v for k, v in fid_val.items()}})
    images, labels = rows[0], y_te
    shown = torch.cat([images[labels == c][:10] for c in range(10)])  # (<= 100, 3, 8, 8)
    save_grid(shown, figures / "digits_classes.png", nrow=10,
              title=f"generated digits, a row per class (read correctly: "
                    f"{result['generation_accuracy']:.2f})")

    n = 20 if args.quick else args.samples
    gen = torch.Generator().manual_seed(TEST_SEED)
    settings = dict(net.sampler)
    either = Or(net.given("3"), net.given("8"), temperature=args.or_temperature)
    shape = (n, 3, net.image_size, net.image_size)
    # the toolkit's disjunction: the mixture eq. (6) defines (each chain picks a branch, then
    # Langevin on it), as `conceptebm sample "digit=3 | digit=8"` does; Langevin on the
    # soft-min energy (eq. 8) for comparison
    x_or = generate_images(either, n, net.sampler, shape[1:], generator=gen)
    (s3, s3_se), (s8, s8_se) = _shares(reader.predict(x_or), (3, 8))
    result.update({"or_split_3": s3, "or_split_3_se": s3_se, "or_split_8": s8,
                   "or_split_8_se": s8_se})
    read_e = reader.predict(langevin(either, shape, generator=gen, **settings))
    (e3, _), (e8, _) = _shares(read_e, (3, 8))
    result.update({"or_split_energy_3": e3, "or_split_energy_8": e8})
    save_grid(x_or[:100], figures / "digits_or.png", nrow=10,
              title=f"digit=3 | digit=8: {s3:.2f} threes, {s8:.2f} eights")

    test_json = run / "test.json"
    written = ("OMP_NUM_THREADS=1 python -m paper.benchmarks.digits "
               + " ".join(shlex.quote(w) for w in argv_words))
    result.update({
        "command": written,
        # what trained the scored run (its command.txt: a --run's own, lines of a resume)
        "train_command": ((run / "command.txt").read_text().strip() if args.run else
                          "conceptebm " + " ".join(shlex.quote(w) for w in command)),
        "protocol": {
            "selection": (f"the EBM's checkpoint by MAP accuracy on {len(val)} validation digits "
                          f"(holdout {HOLDOUT:g} of the non-test digits, seed "
                          f"{record['split_seed']}), evaluated every 500 iterations; logistic "
                          f"regression's C from {list(C_GRID)} and the CNN's snapshot (every 250 "
                          "updates) and denoise_steps (0 or 5, by FID) on the same validation "
                          "digits; the test digits are read once, after"),
            "selection_seeds": sorted({int(record["split_seed"]), VAL_SEED}),
            "test_seeds": [TEST_SEED]},
        "test": len(test), "validation": len(val), "train": len(train_set),
        "or_samples": n, "ebm_iterations": ebm_iterations, "ebm_best_iteration": best_iteration,
        "cnn_updates": reader.record["iterations"],
        "cnn_best_update": reader.record["best_iteration"],
        "cnn_updates_per_ebm_iteration": reader.record["iterations"] / max(1, ebm_iterations),
        "cnn_params": reader.record["params"],
        "ebm_params": sum(p.numel() for p in net.parameters()),
        "logreg_C": logreg_info["C"], "minutes": minutes if not args.run else None,
        "train_test_json": (json.loads(test_json.read_text())["metrics"]
                            if test_json.is_file() else None),
        "sampler": settings, "or_temperature": args.or_temperature, "run": str(run),
        "batch_size": config["batch_size"]})
    print(f"test digits ({len(test)}, read once): MAP accuracy {result['map_accuracy']:.3f} ± "
          f"{result['map_accuracy_se']:.3f}; logistic regression {result['logreg_accuracy']:.3f}"
          f" ± {result['logreg_accuracy_se']:.3f} (C {logreg_info['C']}); CNN "
          f"{result['cnn_accuracy']:.3f} ± {result['cnn_accuracy_se']:.3f}")
    print(f"generation accuracy {result['generation_accuracy']:.3f} ± "
          f"{result['generation_accuracy_se']:.3f} (logreg reader "
          f"{result['generation_accuracy_logreg']:.3f}) of {len(test)} samples; FID "
          f"{result['fid']:.2f} (floor {floor:.2f}; validation chose denoise_steps {chosen}"
          + (f": accuracy {result['generation_accuracy_denoise']:.3f}, FID "
             f"{result['fid_denoise']:.2f}" if chosen else "") + ");\n"
          f"digit=3 | digit=8: {s3:.2f} / {s8:.2f} "
          f"(soft-min Langevin {e3:.2f} / {e8:.2f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

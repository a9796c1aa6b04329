"""How good are the shipped judges? Score them on fresh held-out renders, clean and noisy.

    python benchmarks/judges.py                    # 2000 renders, prints a table
    python benchmarks/judges.py --quick --json out/judges.json

The renders come from ``make_dataset("general", seed=--seed)`` with a seed that neither the
training renders (seed 0) nor the held-out set stored in the checkpoint (seed 900001) use.
Noisy rows add N(0, sigma^2) pixel noise (sigma = 0.1 by default, clipped to [0, 1]), the kind
of artefact Langevin samples carry. Every number comes with its standard error (binomial for
accuracies, sd / sqrt(n) for errors). ``--png`` draws a grid of renders with the judge's reading.

``--dataset cluttered`` scores the same judges on scenes with grey clutter, which they were
not trained on.

JSON keys: ``color_acc``, ``shape_acc``, ``position_acc`` (Euclidean distance < 0.4),
``position_acc_0.15``, ``position_mae``, ``size_mae`` for clean renders, each with a
``<key>_stderr``; the same with a ``noisy_`` prefix; ``n``, ``seed``, ``noise_sigma``,
``images_per_s`` (judge throughput, one thread), ``dataset`` and ``checkpoint``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from conceptebm.datasets import make_dataset
from conceptebm.evaluate import SHIPPED, heldout_metrics, load_judge


def _flat(metrics, prefix: str = "") -> dict:
    out = {}
    for k, m in metrics.items():
        out[prefix + k] = m.value
        out[prefix + k + "_stderr"] = m.stderr
    return out


def _throughput(judge, dataset, n: int = 512) -> float:
    images, _ = dataset.batch(torch.arange(min(n, len(dataset))))
    judge.predict(images[:8])  # warm-up
    t0 = time.perf_counter()
    judge.predict(images)
    return images.shape[0] / (time.perf_counter() - t0)


def _png(judge, dataset, path: Path, count: int = 24) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(count, len(dataset))
    images, labels = dataset.batch(torch.arange(count))
    pred = judge.predict(images)
    names = judge.concepts
    cols, rows = 8, -(-count // 8)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[:count]):
        ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_axis_off()
        lines, wrong = [], False
        for name, concept in names.items():  # what each concept's declaration says is right
            if name not in pred or name not in labels:
                continue
            if concept.is_categorical:
                wrong |= int(pred[name][i]) != int(labels[name][i])
                lines.append(concept.values[int(pred[name][i])])
            elif concept.accuracy_tolerances:
                err = float((pred[name][i] - labels[name][i]).norm())
                wrong |= err >= concept.accuracy_tolerances[0]
                lines.append(f"{name} err {err:.2f}")
        ax.set_title("\n".join(lines), fontsize=7, color="red" if wrong else "black")
    fig.suptitle("judge readings on held-out renders (red: a wrong reading)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="held-out renders (default 2000)")
    p.add_argument("--seed", type=int, default=424_242, help="their dataset seed")
    p.add_argument("--noise", type=float, default=0.1, help="pixel noise sigma, noisy rows")
    p.add_argument("--checkpoint", default=str(SHIPPED), help="judge checkpoint stem")
    p.add_argument("--dataset", help="make_dataset name (default: the one the judge was "
                   "trained on, 'general'); e.g. 'cluttered' to see what clutter costs")
    p.add_argument("--quick", action="store_true", help="128 renders (for tests)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--png", type=Path, help="write a grid of judged renders here")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error(f"--n must be >= 2, got {args.n}")
    torch.set_num_threads(1)
    n = 128 if args.quick else args.n

    judge = load_judge(args.checkpoint)
    name = args.dataset or judge.config.extra.get("dataset", "general")
    dataset = make_dataset(name, size=n, seed=args.seed, image_size=judge.config.image_size)
    t0 = time.perf_counter()
    clean = heldout_metrics(judge, dataset)
    noisy = heldout_metrics(judge, dataset, noise_sigma=args.noise, seed=args.seed)
    result = {"dataset": name, "n": n, "seed": args.seed, "noise_sigma": args.noise,
              "checkpoint": str(args.checkpoint), **_flat(clean), **_flat(noisy, "noisy_"),
              "images_per_s": _throughput(judge, dataset),
              "seconds": time.perf_counter() - t0}

    print(f"judges on {n} held-out {name!r} renders (seed {args.seed}); value ± standard "
          "error")
    print(f"{'metric':<20} {'clean':>17} {f'noise {args.noise:g}':>17}")
    for k in clean:
        print(f"{k:<20} {clean[k].format(4):>17} {noisy[k].format(4):>17}")
    print(f"judge throughput: {result['images_per_s']:.0f} images/s (1 thread)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        _png(judge, dataset, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed: seconds per iteration of the one loop, before and after each speed-up.

    python benchmarks/train_speed.py --json out/train_speed.json          # ~10 minutes
    python benchmarks/train_speed.py --quick --json /tmp/train_speed.json # seconds

Recipes (``conceptebm.train.train`` on the ``position`` dataset, evaluation, snapshots and
checkpoints off, so only updates are timed):

* ``position_cd``: the shipped ``position`` model's training settings (its checkpoint's
  ``"train"`` record: CD with K = 20 Langevin steps, replay buffer, concept-contrastive weight
  0.1 with 7 wrong values, cosine lr);
* ``contrastive_conv``: ``objective="contrastive"`` (its recipe, ``make_config``) on the
  early-conditioned conv net;
* ``contrastive_late``: the same on ``net="late"``.

Variants of each recipe run interleaved (before, after, other_layout, then the reverse;
``--rounds`` rounds) so a load change on a shared machine hits all alike. ``before``: the
loop as it was (every (image, candidate) row of the objective through the whole net, and
Langevin chains through weights that require grad); ``after``: the loop now, default
settings (a late net's trunk once per image for the contrastive candidates,
``train.objective.splits``; chains with the weights' grad flags off,
``train.sampling.weights_without_grad``; ``TrainConfig.channels_last`` as the recipe sets
it: on for CD, off in the contrastive recipe); ``other_layout``: ``after`` with
``channels_last`` flipped. A run's seconds per iteration are process CPU
seconds between the loop's callbacks after ``--warmup`` iterations, divided by the threads
(``--threads``; per core) and also reported as wall seconds; the table gives the median over
rounds and the projected minutes for the recipe's full iteration count.

JSON keys: ``results`` (recipe -> variant -> ``cpu_s_per_it``, ``wall_s_per_it``,
``per_round``), ``projected_min`` (recipe -> variant -> wall minutes for its iterations) and
``settings``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from unittest import mock

import torch

from conceptebm.datasets import make_dataset
from conceptebm.train import TrainConfig, make_config, train
from conceptebm.train import objective as objective_module
from conceptebm.train import sampling as sampling_module

ROOT = Path(__file__).resolve().parents[1]
OFF = {"eval_every": 0, "snapshot_every": 0, "checkpoint_every": 0, "time_limit_min": None,
       "log_every": 10**6}


def recipe(name: str, quick: bool) -> TrainConfig:
    """The :class:`TrainConfig` of recipe ``name`` (evaluation and checkpoints off)."""
    small = {"image_size": 16, "width": 4, "embed_dim": 8} if quick else {}
    if name == "position_cd":
        shipped = json.loads((ROOT / "conceptebm/pretrained/position.json").read_text())["train"]
        return TrainConfig.from_dict({**shipped, **OFF, **small})
    if name in ("contrastive_conv", "contrastive_late"):
        return make_config(objective="contrastive", concept="position", iterations=3000,
                           net=name.split("_")[1], **OFF, **small)
    raise ValueError(f"unknown recipe {name!r}; choose from position_cd, contrastive_conv, "
                     "contrastive_late")


VARIANTS = {  # name -> (config changes, whether the loop runs as before these changes)
    "before": ({"channels_last": False}, True),
    "after": ({}, False),
    "other_layout": (None, False),  # after, with channels_last flipped from its default
}


def as_before():
    """The loop as it was: every (image, candidate) row through the full net, and sampler
    chains through weights that require grad."""
    stack = ExitStack()
    stack.enter_context(mock.patch.object(objective_module, "splits", lambda net: False))
    stack.enter_context(mock.patch.object(sampling_module, "weights_without_grad",
                                          lambda modules: nullcontext()))
    return stack


def time_run(config: TrainConfig, dataset, *, before: bool, warmup: int,
             threads: int) -> tuple[float, float]:
    """``(cpu_s_per_it per thread, wall_s_per_it)`` of one run after ``warmup`` updates."""
    stamps = []

    def tick(it, row):
        stamps.append((time.process_time(), time.perf_counter()))

    with tempfile.TemporaryDirectory() as out, (as_before() if before else nullcontext()):
        train(config.replace(out_dir=out), dataset=dataset, callback=tick, progress=False)
    (c0, w0), (c1, w1) = stamps[warmup], stamps[-1]
    n = len(stamps) - 1 - warmup
    return (c1 - c0) / n / threads, (w1 - w0) / n


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", nargs="+",
                    default=["position_cd", "contrastive_conv", "contrastive_late"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--iterations", type=int, default=30, help="timed updates per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed updates per run")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repeats per variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny nets, a few updates (the test)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup, args.rounds = 3, 1, 1
    torch.set_num_threads(args.threads)
    size = 16 if args.quick else 32
    dataset = make_dataset("position", size=100_000, seed=0, image_size=size)
    results, projected = {}, {}
    for name in args.recipes:
        base = recipe(name, args.quick)
        full_its = base.iterations
        base = base.replace(iterations=args.warmup + args.iterations)
        runs = {v: [] for v in args.variants}
        for r in range(args.rounds):  # ABBA order so a drift in load cancels
            order = args.variants if r % 2 == 0 else args.variants[::-1]
            for v in order:
                changes, before = VARIANTS[v]
                if changes is None:
                    changes = {"channels_last": not base.channels_last}
                runs[v].append(time_run(base.replace(**changes), dataset, before=before,
                                        warmup=args.warmup, threads=args.threads))
        results[name] = {v: {"cpu_s_per_it": statistics.median(c for c, _ in rs),
                             "wall_s_per_it": statistics.median(w for _, w in rs),
                             "per_round": [{"cpu_s_per_it": c, "wall_s_per_it": w}
                                           for c, w in rs]} for v, rs in runs.items()}
        projected[name] = {v: res["wall_s_per_it"] * full_its / 60
                           for v, res in results[name].items()}
    print(f"seconds per iteration ({args.threads} thread(s); CPU s per thread, wall s; "
          f"median of {args.rounds} interleaved rounds of {args.iterations} updates)")
    print(f"{'recipe':18s} {'variant':14s} {'cpu s/it':>9s} {'wall s/it':>10s} "
          f"{'vs before':>9s} {'projected min':>14s}")
    for name, res in results.items():
        ref = res.get("before", {}).get("cpu_s_per_it")
        for v, m in res.items():
            ratio = f"{ref / m['cpu_s_per_it']:.2f}x" if ref else "-"
            print(f"{name:18s} {v:14s} {m['cpu_s_per_it']:9.4f} {m['wall_s_per_it']:10.4f} "
                  f"{ratio:>9s} {projected[name][v]:14.1f}")
    out = {"results": results, "projected_min": projected,
           "settings": {"iterations": args.iterations, "warmup": args.warmup,
                        "rounds": args.rounds, "threads": args.threads, "quick": args.quick,
                        "torch": torch.__version__, "command": " ".join(sys.argv)}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

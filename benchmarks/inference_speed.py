"""Concept inference speed: a late-conditioned position model against the early-conditioned one.

    python benchmarks/inference_speed.py --json out/inference_speed.json      # ~3 minutes
    python benchmarks/inference_speed.py --quick --json /tmp/speed.json       # seconds

MAP position inference (``infer_concept``: 17x17 grid, then 60 Adam steps) on ``--n`` held-out
default scenes with ``--model`` (default: the shipped late-conditioned ``position_late``) and
``--reference`` (default: ``position_contrastive``, which feeds the position into its first
layer, so every grid point and Adam step is a full pass over the image). Both run on one thread
and are timed in process CPU time, in interleaved blocks of ``--block`` scenes (model, reference,
reference, model, ...), so a load change on a shared machine hits both alike. Also:

* ``energy_map_48_s``: CPU seconds of one 48x48 energy map of one image (median of repeats);
* the trunk's share of the model's MAP time and its GFLOP/s (convolution FLOPs counted from the
  layer shapes, features of ``--n`` images in one call) against the GFLOP/s of a 2048x2048
  float32 matmul on the same thread (``matmul_gflops``): the fraction of this CPU's measured
  fp32 peak the trunk reaches.

JSON keys: ``map_images_per_s``, ``map_mae``, ``energy_map_48_s``,
``reference_map_images_per_s``, ``reference_map_mae``, ``reference_energy_map_48_s``,
``speedup``, ``trunk_gflops``, ``matmul_gflops``, ``trunk_fraction_of_peak``,
``trunk_share_of_map``, ``per_block`` (the interleaved timings) and ``settings``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from conceptebm.datasets import make_dataset
from conceptebm.evaluate import mean_absolute_error
from conceptebm.infer import concept_grid, energy_map
from conceptebm.infer.energy_map import image_features
from conceptebm.scenes import infer_concept

TEST_SEED = 700_001  # held-out renders (as paper/benchmarks/inference.py): no training run uses it


def load_model(spec: str | None):
    from conceptebm.cli.infer import CommandError
    from conceptebm.cli.infer import load_model as load

    try:
        return load(spec, "position")
    except CommandError as err:
        raise SystemExit(f"benchmarks/inference_speed.py: cannot load model {spec!r}: {err}") \
            from None


def cpu_seconds(fn):
    """``(result, process CPU seconds)`` of ``fn()``."""
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best float32 GFLOP/s of an ``n x n`` matmul on this thread (the measured peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(cpu_seconds(lambda: a @ b)[1] for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def conv_flops(model, x: torch.Tensor) -> float:
    """Multiply-add FLOPs (2 per MAC) of the convolutions ``image_features`` runs on ``x``."""
    total = [0.0]

    def hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total[0] += 2.0 * k * out.numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            image_features(model, x)
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="position_late",
                   help="position model (shipped name or checkpoint path; default: the "
                        "late-conditioned position_late)")
    p.add_argument("--reference", default="position_contrastive",
                   help="the model to compare with (default position_contrastive)")
    p.add_argument("--n", type=int, default=500, help="held-out default scenes")
    p.add_argument("--block", type=int, default=100, help="scenes per timed block")
    p.add_argument("--grid", type=int, default=17, help="MAP start grid per coordinate")
    p.add_argument("--steps", type=int, default=60, help="MAP Adam steps")
    p.add_argument("--map-points", type=int, default=48, help="energy map points per axis")
    p.add_argument("--repeats", type=int, default=5, help="energy map repeats (median)")
    p.add_argument("--quick", action="store_true", help="12 scenes, tiny grid (the test suite)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.block, args.grid, args.steps, args.repeats = 12, 6, 5, 5, 1
    torch.set_num_threads(1)
    model, ref = load_model(args.model), load_model(args.reference)
    x, labels = make_dataset("position", size=args.n, seed=TEST_SEED).batch(range(args.n))
    truth = labels["position"]  # (n, 2)

    def run(net, xb):
        return infer_concept(net, xb, grid=args.grid, steps=args.steps).value  # (b, 2)

    run(model, x[:args.block]), run(ref, x[:2])  # warm-up (oneDNN kernels for these shapes)
    preds = {"model": [], "reference": []}
    secs = {"model": 0.0, "reference": 0.0}
    blocks = []
    for k, s in enumerate(range(0, args.n, args.block)):
        xb = x[s:s + args.block]
        order = ("model", "reference") if k % 2 == 0 else ("reference", "model")
        row = {"images": xb.shape[0]}
        for who in order:
            net = model if who == "model" else ref
            value, t = cpu_seconds(lambda net=net, xb=xb: run(net, xb))
            preds[who].append(value)
            secs[who] += t
            row[who + "_s"] = round(t, 4)
        blocks.append(row)
        print(f"block {k}: {xb.shape[0]} scenes  model {row['model_s']:.3f} s  reference "
              f"{row['reference_s']:.3f} s", flush=True)
    mae = {w: mean_absolute_error(torch.cat(v), truth) for w, v in preds.items()}

    grid = concept_grid(model.concept, args.map_points)  # (P * P, 2)

    def map_seconds(net) -> float:
        energy_map(net, x[0], grid)  # warm-up
        return statistics.median(cpu_seconds(lambda: energy_map(net, x[0], grid))[1]
                                 for _ in range(args.repeats))

    em_model, em_ref = map_seconds(model), map_seconds(ref)

    with torch.no_grad():
        image_features(model, x)  # warm-up
        _, trunk_s = cpu_seconds(lambda: image_features(model, x))
    flops = conv_flops(model, x)
    peak = matmul_gflops()
    trunk_gflops = flops / trunk_s / 1e9 if trunk_s > 0 else float("nan")
    res = {
        "map_images_per_s": args.n / secs["model"],
        "map_mae": mae["model"].value,
        "map_mae_stderr": mae["model"].stderr,
        "energy_map_48_s": em_model,
        "reference_map_images_per_s": args.n / secs["reference"],
        "reference_map_mae": mae["reference"].value,
        "reference_map_mae_stderr": mae["reference"].stderr,
        "reference_energy_map_48_s": em_ref,
        "speedup": secs["reference"] / secs["model"],
        "trunk_gflops": trunk_gflops,
        "trunk_mflop_per_image": flops / args.n / 1e6,
        "matmul_gflops": peak,
        "trunk_fraction_of_peak": trunk_gflops / peak,
        "trunk_share_of_map": trunk_s / secs["model"],
        "per_block": blocks,
        "settings": {"model": args.model,
                     "model_net": model.config, "reference": args.reference, "n": args.n,
                     "block": args.block, "grid": args.grid, "steps": args.steps,
                     "map_points": args.map_points, "threads": 1, "clock": "process CPU time",
                     "quick": args.quick, "test_seed": TEST_SEED},
    }
    print(f"MAP ({args.grid}x{args.grid} grid + {args.steps} Adam steps), {args.n} scenes, one "
          f"thread, CPU time:\n"
          f"  model      {res['map_images_per_s']:8.1f} images/s   MAE {res['map_mae']:.4f} "
          f"± {res['map_mae_stderr']:.4f}   {args.map_points}x{args.map_points} map "
          f"{em_model * 1e3:.1f} ms\n"
          f"  reference  {res['reference_map_images_per_s']:8.1f} images/s   MAE "
          f"{res['reference_map_mae']:.4f} ± {res['reference_map_mae_stderr']:.4f}   "
          f"map {em_ref * 1e3:.1f} ms\n"
          f"  speed-up {res['speedup']:.1f}x; trunk {res['trunk_mflop_per_image']:.1f} MFLOP/"
          f"image at {trunk_gflops:.1f} GFLOP/s = {res['trunk_fraction_of_peak']:.0%} of the "
          f"{peak:.0f} GFLOP/s matmul peak; trunk is {res['trunk_share_of_map']:.0%} of MAP time")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

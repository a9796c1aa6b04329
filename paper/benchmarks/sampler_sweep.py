"""Is a shipped model's generation quality limited by its sampler? Sweep the test-time sampler.

    python -m paper.benchmarks.sampler_sweep --concept shape --n 200 \
        --json out/sampler_sweep_shape.json
    python -m paper.benchmarks.sampler_sweep --concept size --n 200 --quick

Generates one image per held-out target (the targets and judges of ``train_quality.py``) with
variants of the model's recommended sampler and prints the judged score of each:

* ``steps N``: the recommended sampler run for N Langevin steps;
* ``anneal``: a few phases of decreasing noise (simulated annealing: large noise first to leave
  shallow basins, then the recommended noise), each phase continuing the previous chains;
* ``best of K``: K independent chains per target, keeping the one with the lowest final
  energy (what an energy that ranked sample quality would make best).

A sampler that only needs tuning shows up as one row far above the ``recommended`` row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.datasets import make_dataset
from conceptebm.evaluate import generate, load_judges
from conceptebm.evaluate.metrics import object_present, score_predictions
from conceptebm.evaluate.selection import TEST_SEED, model_sampler


def variants(base, quick: bool) -> list[tuple[str, list[dict], int]]:
    """(name, sampler phases, best-of K) rows; each phase overrides ``base``."""
    steps = base["num_steps"]
    noise = base["noise_scale"]
    rows = [("recommended", [{}], 1)]
    rows += [(f"steps {k}", [{"num_steps": k}], 1) for k in ((2 * steps,) if quick else
                                                              (2 * steps, 4 * steps))]
    half = max(1, steps // 2)
    rows += [(f"anneal noise {n:g} -> {noise:g}",
              [{"num_steps": half, "noise_scale": n}, {"num_steps": half}], 1)
             for n in ((6 * noise,) if quick else (2 * noise, 6 * noise))]
    if not quick:
        rows.append((f"anneal noise {20 * noise:g} -> {4 * noise:g} -> {noise:g}",
                     [{"num_steps": half, "noise_scale": 20 * noise},
                      {"num_steps": half, "noise_scale": 4 * noise}, {"num_steps": half}], 1))
    rows += [(f"best of {k} by energy", [{}], k) for k in ((2,) if quick else (4, 8))]
    return rows


def run(concept: str, n: int, quick: bool, seed: int = TEST_SEED) -> list[dict]:
    judge = load_judges()
    net = pretrained.load(concept)
    base = model_sampler(net)  # its SamplerSettings (the default when it records none)
    ds = make_dataset(concept, size=n, seed=seed, image_size=net.image_size)
    _, labels = ds.batch(torch.arange(n))
    targets = labels[concept]
    c = net.concept.encode(targets)
    out = []
    for name, phases, best_of in variants(base, quick):
        gen = torch.Generator().manual_seed(seed)
        t0 = time.time()
        images, energies = [], []
        for _ in range(best_of):
            x = None
            for phase in phases:
                x = generate(net, c, base.replace(**phase), generator=gen, x0=x)
            with torch.no_grad():
                energies.append(net.energy(x, c))
            images.append(x)
        pick = torch.stack(energies).argmin(0)  # (n,) chain with the lowest final energy
        x = torch.stack(images)[pick, torch.arange(n)]
        with torch.no_grad():
            metrics = score_predictions(judge.predict(x), {concept: targets}, judge.concepts,
                                        present=object_present(x))
        key = f"{concept}_acc" if net.concept.is_categorical else f"{concept}_mae"
        value, stderr = metrics[key]
        out.append({"variant": name, "phases": phases, "best_of": best_of, key: value,
                    "stderr": stderr, "object_rate": metrics["object_rate"].value,
                    "seconds": time.time() - t0})
        print(f"{name:<34} {key} {value:.4f} +- {stderr:.4f}  objects "
              f"{metrics['object_rate'].value:.3f}  ({time.time() - t0:.0f} s)", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concept", default="shape", choices=pretrained.CONCEPTS)
    p.add_argument("--n", type=int, default=200, help="held-out targets (default 200)")
    p.add_argument("--quick", action="store_true", help="fewer variants")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.concept, args.n, args.quick)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"concept": args.concept, "n": args.n,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

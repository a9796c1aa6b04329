"""Implication through the colour classifier: Pos AND none of seven colours -> the eighth.

    python -m paper.benchmarks.implication --threads 1 --json out/implication.json
    python -m paper.benchmarks.implication --quick --json out/implication_quick.json

The paper's implication row (section 4.2) ANDs a position with NOT Col_k for the seven other
colours and asks for the eighth. With ``Not`` (``-alpha * E``) the seven negated energies
reward images unlike *every* colour and the sampler leaves the data (colour 0.16 in
``compose_table.py --extras --rows implication``). Here the seven enter as one
:class:`conceptebm.energies.NotAny`: ``-T * log p(colour not in S | x)`` through the classifier
``softmax(-E(x | v) / T)`` the shipped colour EBM defines, ``T`` fitted on 512 real scenes
(:func:`conceptebm.compose.calibrate.fit_temperature`), weighted by each of ``--weights``
against the shipped position EBM (raw). Generations (``--steps`` Langevin steps, the engine's
defaults otherwise) are read by the shipped judges: ``color`` is the share showing the one
colour left, ``position`` within 0.4 of the target.

JSON keys (flat): ``w<weight>.color``, ``w<weight>.position`` with ``.se``,
``temperature``, ``classifier_acc`` (the colour EBM's classifier on the real scenes), ``n``,
``steps``, ``command``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.compose.calibrate import fit_temperature
from conceptebm.compose.generate import generate
from conceptebm.compose.table import draw_targets
from conceptebm.datasets import make_dataset
from conceptebm.energies import NotAny, Scale
from conceptebm.evaluate import load_judges
from conceptebm.evaluate.metrics import PAPER_POSITION_TOL, binomial_metric, position_distance
from conceptebm.infer.optimize import map_categorical


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few targets and steps (seconds)")
    p.add_argument("--json", help="write the flat metrics here")
    p.add_argument("--n", type=int, default=None, help="targets (generations) per weight (200)")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps (100)")
    p.add_argument("--weights", default=None,
                   help="comma-separated weights of the NotAny term (default 0.3,1,3,10)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("n", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    try:
        weights = [float(w) for w in (args.weights if args.weights is not None
                                      else "0.3,1,3,10").split(",")]
    except ValueError:
        p.error(f"--weights must be comma-separated numbers, got {args.weights!r}")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        p.error(f"--weights must be finite numbers > 0, got {args.weights!r}")
    args.weights = weights
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.n or (4 if args.quick else 200)
    steps = args.steps or (2 if args.quick else 100)
    pos, col = (pretrained.load(name).requires_grad_(False) for name in ("position", "color"))
    k = len(col.concept.values)
    real, labels = make_dataset("color", size=512, seed=4242, image_size=32).batch(
        torch.arange(512))
    temperature = fit_temperature(col, real, labels["color"])
    classifier = float((map_categorical(col, real).index == labels["color"]).double().mean())
    gen = torch.Generator().manual_seed(args.seed)
    targets = draw_targets(n, k, gen)
    excluded = torch.ones(n, k, dtype=torch.bool)
    excluded[torch.arange(n), targets["col"]] = False  # each chain excludes all but its colour
    judge = load_judges()
    settings = pos.sampler.replace(num_steps=steps)
    command = " ".join(["python -m paper.benchmarks.implication", *(argv or sys.argv[1:])])
    metrics = {"temperature": temperature, "classifier_acc": classifier, "n": n,
               "steps": steps, "command": command}
    print(f"colour classifier: T = {temperature:.3g}, accuracy {classifier:.3f} on 512 real "
          f"scenes; {n} targets, {steps} steps")
    print("| NotAny weight | color (the one left) | position within 0.4 | seconds |")
    print("|---|---|---|---|")
    for w in args.weights:
        t0 = time.time()
        energy = pos.given(targets["pos"]) & Scale(NotAny(col, excluded, temperature), w)
        x = generate(energy, n, settings, generator=torch.Generator().manual_seed(args.seed + 1))
        with torch.no_grad():
            read = judge.predict(x)
        scores = {"color": binomial_metric(read["color"] == targets["col"]),
                  "position": binomial_metric(position_distance(read["position"], targets["pos"])
                                              <= PAPER_POSITION_TOL)}
        for name, m in scores.items():
            metrics[f"w{w:g}.{name}"] = float(m.value)
            metrics[f"w{w:g}.{name}.se"] = float(m.stderr)
        print(f"| {w:g} | {scores['color'].value:.3f} +- {scores['color'].stderr:.3f} | "
              f"{scores['position'].value:.3f} +- {scores['position'].stderr:.3f} | "
              f"{time.time() - t0:.0f} |", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

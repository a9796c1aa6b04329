"""Shape learnt on one colour, read on every colour: an RGB net against a hue-invariant one.

    python -m paper.benchmarks.hue_invariance --threads 1 --json out/hue_invariance.json
    python -m paper.benchmarks.hue_invariance --quick --json out/hue_quick.json --run-dir /tmp/h

Two shape EBMs with the same recipe (the concept-contrastive objective alone, pixels as
2x - 1, ``--iterations`` updates) are trained on continual-learning stage 2's scenes, purple
cubes and spheres only: one sees the colour (``rgb``), one each pixel's value and chroma
(``hue``, ``ConvEnergyNet(hue_invariant=True)``). Each then picks cube or sphere by energy on
``--n`` real scenes of purple objects and of every colour
(:func:`paper.experiments.continual.shape_transfer`); ``--models`` adds checkpoints to
read the same way (default: the committed stage-2 shape EBM, trained by contrastive
divergence inside the continual-learning sampler).

JSON keys (flat): ``<model>.purple``, ``<model>.every_color`` (accuracy) with ``.se``
(binomial standard error), ``<model>.minutes`` (trained ones), ``iterations``, ``n``,
``command``. Training runs are kept in ``--run-dir`` and reused by a re-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from conceptebm.checkpoints import load_checkpoint, load_energy
from conceptebm.datasets import make_dataset
from conceptebm.train import make_config, train
from paper.experiments.continual import SHAPES, STAGES, shape_transfer, write_json

COMMITTED = "paper/checkpoints/continual/stage2_shape.safetensors"


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny nets, a few steps (seconds)")
    p.add_argument("--json", help="write the flat metrics here")
    p.add_argument("--iterations", type=int, default=None, help="updates per net (2000)")
    p.add_argument("--n", type=int, default=None, help="scenes read per colour set (512)")
    p.add_argument("--run-dir", default="runs/hue_invariance", help="training runs")
    p.add_argument("--models", nargs="*", default=None,
                   help=f"more shape checkpoints to read (default: {COMMITTED})")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("iterations", "n", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    for path in args.models or ():
        if not Path(path).is_file():
            p.error(f"--models: no checkpoint {path!r}; give .safetensors files")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    iterations = args.iterations or (4 if quick else 2000)
    n = args.n or (16 if quick else 512)
    models = args.models if args.models is not None else ([] if quick else [COMMITTED])
    tiny = {"width": 4, "embed_dim": 8, "batch_size": 8, "dataset_size": 256,
            "checkpoint_every": 2, "log_every": 1} if quick else {}
    stage = STAGES[1]  # purple cubes and spheres
    data = make_dataset(stage.dataset, size=tiny.get("dataset_size", 100_000), seed=args.seed,
                        image_size=32, shapes=SHAPES)
    command = " ".join(["python -m paper.benchmarks.hue_invariance", *(argv or sys.argv[1:])])
    metrics: dict = {"iterations": iterations, "n": n, "command": command}
    readers = {}
    for name in ("rgb", "hue"):
        config = make_config(objective="contrastive", concept="shape", dataset=stage.dataset,
                             center_input=True, hue_invariant=name == "hue",
                             iterations=iterations, eval_every=0, seed=args.seed,
                             out_dir=os.path.join(args.run_dir, name), **tiny)
        last = Path(config.out_dir) / "last.safetensors"
        if not (Path(config.out_dir) / "config.json").exists():  # written when a run ends
            train(config, dataset=data, resume=last.exists(), progress=not quick)
        metrics[f"{name}.minutes"] = float(load_checkpoint(last).meta["elapsed_s"]) / 60
        readers[name] = load_energy(last)
    for path in models:
        readers[Path(path).stem] = load_energy(path)
    t0 = time.time()
    print(f"| shape EBM | purple scenes (n = {n}) | every colour (n = {n}) |")
    print("|---|---|---|")
    for name, reader in readers.items():
        m = shape_transfer(reader.requires_grad_(False).eval(), n=n)
        for key, metric in m.items():
            metrics[f"{name}.{key}"] = float(metric.value)
            metrics[f"{name}.{key}.se"] = float(metric.stderr)
        print(f"| {name} | {m['purple'].value:.3f} +- {m['purple'].stderr:.3f} | "
              f"{m['every_color'].value:.3f} +- {m['every_color'].stderr:.3f} |")
    print(f"read in {time.time() - t0:.1f} s; chance 0.5")
    if args.json:
        print(f"wrote {write_json(metrics, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How good are the trained concept EBMs? Judge their generations; infer positions with them.

    python benchmarks/train_quality.py                         # the shipped models, n = 500
    python benchmarks/train_quality.py --quick --json out/train_quality.json
    python benchmarks/train_quality.py --checkpoint position=runs/position/best.safetensors
    python benchmarks/train_quality.py --select runs/position --concepts position --export

For each concept EBM, ``n`` target values are the labels of held-out scenes
(``make_dataset(concept, seed=2000003)``, a seed no training or selection run uses); one image
is generated per target from fresh low-frequency noise with the model's recommended sampler,
and the shipped judges read the concept off it. Position inference runs MAP
(:func:`conceptebm.infer.map_estimate`: a 17x17 grid, then 60 projected Adam steps) on the
held-out real scenes themselves. Every number has its standard error.

JSON keys: ``position.acc04`` (Euclidean error < 0.4), ``position.acc015``, ``position.mae``
(mean absolute error over both coordinates), ``color.acc``, ``shape.acc``, ``size.mae``,
``size.mae_frac`` (size MAE as a fraction of the size range), ``inference_position_mae``,
each with ``<key>_stderr``; ``<concept>.object_rate`` (the share of generations that show an
object at all: a blank generation counts as wrong, whatever the judges read off it);
``targets`` and ``pass`` (the targets of the task), ``n``,
``seconds`` per model, ``load_average``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.datasets import make_dataset
from conceptebm.evaluate import load_judges
from conceptebm.train import export_weights, load_checkpoint, load_energy
from conceptebm.train.evaluation import DEFAULT_SAMPLER, generation_quality, inference_quality

TEST_SEED = 2_000_003
SELECT_SEED = 2_000_020  # snapshot and sampler selection: other scenes than the test
# (JSON key, metric name from the judges' scoring, target, "min" or "max")
KEYS = {
    "position": [("position.acc04", "position_acc", 0.95, "min"),
                 ("position.acc015", "position_acc_0.15", None, "min"),
                 ("position.mae", "position_mae", 0.10, "max")],
    "color": [("color.acc", "color_acc", 0.95, "min")],
    "shape": [("shape.acc", "shape_acc", 0.95, "min")],
    "size": [("size.mae", "size_mae", None, "max")],
}
INFERENCE_TARGET = 0.05  # position MAE of MAP inference on real scenes
SIZE_FRAC_TARGET = 0.05  # size MAE as a fraction of its range


def _trained_sampler(meta: dict) -> dict:
    """DEFAULT_SAMPLER with the step size, noise and init the checkpoint was trained with
    (a net trained with --step-size 1 must be sampled with step 1), then its own "sampler"."""
    train = meta.get("train", {})
    own = {k: train[k] for k in ("step_size", "noise_scale", "init") if k in train}
    return {**DEFAULT_SAMPLER, **own, **meta.get("sampler", {})}


def _model(name: str, overrides: dict):
    if name in overrides:
        path = overrides[name]
        net = load_energy(path)
        net.sampler = _trained_sampler(load_checkpoint(path).meta)
        return net
    return pretrained.load(name)


def _sampler(net) -> dict:
    s = dict(getattr(net, "sampler", DEFAULT_SAMPLER))
    s.pop("bounds", None)
    return s


def evaluate(name: str, net, judge, n: int, *, quick: bool, seed: int = TEST_SEED) -> dict:
    """Scores of one concept EBM as flat JSON entries (values and standard errors)."""
    ds = make_dataset(name, size=n, seed=seed, image_size=net.image_size)
    images, labels = ds.batch(torch.arange(n))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    metrics = generation_quality(net, judge, labels[name], sampler=_sampler(net), generator=gen)
    out = {}
    for key, metric, _, _ in KEYS[name]:
        out[key], out[key + "_stderr"] = metrics[metric]
    # share of generations that show an object at all (blank ones count as wrong above)
    out[f"{name}.object_rate"] = metrics["object_rate"].value
    if name == "size":
        rng = net.concept.high - net.concept.low
        out["size.mae_frac"], out["size.mae_frac_stderr"] = (out["size.mae"] / rng,
                                                             out["size.mae_stderr"] / rng)
    if name == "position":
        inf = inference_quality(net, images, labels[name], grid=5 if quick else 17,
                                steps=10 if quick else 60)
        out["inference_position_mae"], out["inference_position_mae_stderr"] = inf["position_mae"]
        out["inference_position_acc015"] = inf["position_acc_0.15"].value
    out[f"{name}.seconds"] = time.time() - t0
    return out


def passes(results: dict) -> dict:
    ok = {}
    for rows in KEYS.values():
        for key, _, target, kind in rows:
            if target is not None and key in results:
                ok[key] = results[key] >= target if kind == "min" else results[key] <= target
    if "size.mae_frac" in results:
        ok["size.mae_frac"] = results["size.mae_frac"] <= SIZE_FRAC_TARGET
    if "inference_position_mae" in results:
        ok["inference_position_mae"] = results["inference_position_mae"] <= INFERENCE_TARGET
    return ok


def _candidates(run_dir: Path, top: int) -> list[Path]:
    """The ``top`` snapshots with the best in-loop judge scores, plus the last snapshot."""
    snaps = {int(p.stem[2:]): p for p in (run_dir / "snapshots").glob("it*.safetensors")}
    if not snaps:
        raise SystemExit(f"{run_dir} has no snapshots (train with --snapshot-every)")
    scores = {}
    if (run_dir / "eval.csv").exists():
        with open(run_dir / "eval.csv", newline="") as f:
            scores = {int(float(r["iteration"])): float(r["score"]) for r in csv.DictReader(f)}
    ranked = sorted((it for it in snaps if it in scores), key=lambda it: -scores[it])[:top]
    return [snaps[it] for it in sorted({*ranked, max(snaps)})]


def select(run_dir: Path, concept: str, judge, n: int, steps_grid=(40, 100, 200),
           top: int = 3) -> tuple[Path, dict, list]:
    """Pick the (snapshot, sampler steps) with the best selection score on held-out scenes
    drawn with SELECT_SEED (not the test seed, so test numbers are not selection-biased)."""
    rows = []
    for path in _candidates(run_dir, top):
        for steps in steps_grid:
            net = _model(concept, {concept: path})
            net.sampler = {**net.sampler, "num_steps": steps}
            res = evaluate(concept, net, judge, n, quick=False, seed=SELECT_SEED)
            score = _score(concept, res)
            rows.append((score, path, steps, res))
            print(f"{path.name:<22} steps {steps:>4}  score {score:.4f}  " + "  ".join(
                f"{k} {v:.3f}" for k, v in res.items() if not k.endswith(("_stderr", "seconds"))),
                flush=True)
    best = max(rows, key=lambda r: r[0])
    return best[1], {**_model(concept, {concept: best[1]}).sampler, "num_steps": best[2]}, rows


def _score(concept: str, res: dict) -> float:
    """Higher is better; for position the mean of generation and inference (both targets)."""
    if concept in ("color", "shape"):
        return res[f"{concept}.acc"]
    if concept == "size":
        return 1.0 - res["size.mae_frac"]
    return 1.0 - 0.5 * (res["position.mae"] + res["inference_position_mae"]) / 2.0


def export(run_dir: Path, concept: str, snapshot: Path, sampler: dict, judge, n: int) -> Path:
    """Ship ``snapshot`` as ``conceptebm/pretrained/<concept>``, with its test metrics."""
    lines = (run_dir / "command.txt").read_text().strip().splitlines()
    meta = load_checkpoint(snapshot).meta
    dest = pretrained.DIR / f"{concept}.safetensors"
    info = {"command": lines[-1].replace(" --resume", ""), "commands": lines,
            "training_time_s": meta["elapsed_s"], "sampler": sampler,
            "source": f"{run_dir.name}/snapshots/{snapshot.name}"}
    export_weights(snapshot, dest, **info)
    res = evaluate(concept, pretrained.load(concept), judge, n, quick=False)
    export_weights(snapshot, dest, **info, metrics=res, metrics_n=n,
                   metrics_command=f"python benchmarks/train_quality.py --concepts {concept}")
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8 targets per model (the tests)")
    p.add_argument("--n", type=int, default=500, help="targets per model")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--concepts", nargs="*", default=list(KEYS))
    p.add_argument("--checkpoint", action="append", default=[],
                   help="NAME=PATH: score this checkpoint instead of the shipped model")
    p.add_argument("--select", help="a run folder: pick its best snapshot and sampler steps "
                   "(with --concepts NAME) on held-out scenes of another seed")
    p.add_argument("--select-n", type=int, default=200, help="targets per selection candidate")
    p.add_argument("--export", action="store_true",
                   help="with --select: ship the pick to conceptebm/pretrained with its metrics")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n = 8 if args.quick else args.n
    judge = load_judges()
    if args.select:
        concept = args.concepts[0]
        path, sampler, _ = select(Path(args.select), concept, judge, args.select_n)
        print(f"selected {path} with {sampler['num_steps']} sampler steps")
        if args.export:
            print(f"shipped {export(Path(args.select), concept, path, sampler, judge, n)}")
        return 0
    overrides = dict(kv.split("=", 1) for kv in args.checkpoint)
    results = {}
    for name in args.concepts:
        results.update(evaluate(name, _model(name, overrides), judge, n, quick=args.quick))
    ok = passes(results)
    print(f"{'metric':<26}{'value':>10}{'stderr':>10}  target")
    for key, v in results.items():
        if key.endswith("_stderr") or key.endswith("seconds"):
            continue
        se = results.get(key + "_stderr", float("nan"))
        flag = "" if key not in ok else ("pass" if ok[key] else "FAIL")
        print(f"{key:<26}{v:>10.4f}{se:>10.4f}  {flag}")
    if args.json:
        out = {**results, "pass": ok, "n": n, "quick": args.quick,
               "load_average": os.getloadavg()[0], "checkpoints": overrides}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

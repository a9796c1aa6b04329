"""Score a trained concept EBM on held-out scenes, pick a run's best snapshot, ship it.

What ``paper/benchmarks/train_quality.py`` prints and what ``pretrained/<name>.json`` records:

* :func:`score_model`: generation quality (one image per held-out target, judged) and,
  optionally, MAP inference on the held-out images themselves, as flat JSON entries whose keys
  follow the concept's declaration (:func:`result_keys`), each with its standard error;
* :func:`model_score`: the one "higher is better" number snapshot selection ranks by (the
  training loop's :func:`~conceptebm.evaluate.quality.selection_score`, averaged with the
  inference score when inference was scored);
* :func:`candidates`, :func:`select`: the best (snapshot, sampler steps) of a run folder on
  scenes of :data:`SELECT_SEED`, so that test numbers (:data:`TEST_SEED`) are not
  selection-biased;
* :func:`export`: write a snapshot as a shipped model with its record and test metrics;
* :func:`passes`: which results meet a table of targets.

Example:
    >>> from conceptebm.datasets import scene_concepts
    >>> result_keys(scene_concepts()["position"])
    [('position.acc04', 'position_acc'), ('position.acc015', 'position_acc_0.15'), \
('position.mae', 'position_mae')]
    >>> passes({"color.acc": 0.97, "size.mae_frac": 0.08},
    ...        {"color.acc": (0.95, "min"), "size.mae_frac": (0.05, "max")})
    {'color.acc': True, 'size.mae_frac': False}
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from conceptebm.compat import deprecated_keywords
from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.evaluate.metrics import Metric, metric_names
from conceptebm.evaluate.quality import (
    generation_quality,
    inference_quality,
    map_settings_for,
    sampler_settings,
    selection_score,
)
from conceptebm.infer.settings import DEFAULT, MAPSettings, SamplerSettings

__all__ = ["TEST_SEED", "SELECT_SEED", "result_keys", "score_model", "model_score", "passes",
           "candidates", "select", "export", "model_sampler"]

TEST_SEED = 2_000_003  # held-out test scenes: a seed no training or selection run uses
SELECT_SEED = 2_000_020  # snapshot and sampler selection: other scenes than the test


def result_keys(concept: Concept) -> list[tuple[str, str]]:
    """``(JSON key, metric name)`` of each generation metric of ``concept``: ``<name>.acc``
    (categorical), ``<name>.acc<tol without the dot>`` per accuracy tolerance (``acc04`` for
    0.4) and ``<name>.mae`` (continuous). The inference key of a JSON key ``a.b`` is
    ``inference_a_b``."""
    names = metric_names(concept)
    if concept.is_categorical:
        return [(f"{concept.name}.acc", names[0])]
    tols = [f"{t:g}".replace(".", "") for t in concept.accuracy_tolerances]
    keys = [f"{concept.name}.acc{t}" for t in tols] + [f"{concept.name}.mae"]
    return list(zip(keys, names, strict=True))


def _flat(out: dict, concept: Concept, metrics: Mapping[str, Metric], prefix: str = "") -> None:
    for key, metric in result_keys(concept):
        key = f"{prefix}{key.replace('.', '_')}" if prefix else key
        out[key], out[key + "_stderr"] = metrics[metric]


def model_sampler(net: ConditionalEnergy) -> SamplerSettings:
    """The settings ``net`` recommends (``net.sampler``), else :data:`DEFAULT`."""
    own = getattr(net, "sampler", None)
    return DEFAULT if own is None else sampler_settings(own)


def score_model(net: ConditionalEnergy, judge, dataset, n: int, *,
                sampler: Mapping | None = None, inference: bool = False,
                map_settings: MAPSettings | Mapping | None = None, seed: int = TEST_SEED,
                concept: Concept | None = None, grid: int | None = None,
                steps: int | None = None) -> dict:
    """Scores of one concept EBM on the first ``n`` items of ``dataset`` as flat JSON entries.

    One image per item's label is generated from fresh noise (``torch.Generator`` seeded with
    ``seed``; ``sampler`` defaults to :func:`model_sampler`) and judged; with ``inference``,
    MAP inference (``grid`` points per coordinate, then ``steps`` Adam steps) reads the concept
    off the items' images. ``concept``: the declaration the scores follow (default:
    ``dataset.concepts[net.concept.name]``).

    Returns keys :func:`result_keys` (each with ``_stderr``), ``<name>.object_rate`` (the
    share of generations that show an object: a blank one counts as wrong),
    ``<name>.mae_frac`` (MAE over the range, continuous concepts), ``inference_...`` keys and
    ``<name>.seconds``.
    """
    old = deprecated_keywords("conceptebm.evaluate.score_model",
                              {"grid": grid, "steps": steps},
                              "pass map_settings=MAPSettings(grid=..., steps=...)")
    map_settings = map_settings_for(net, map_settings, **old)
    name = net.concept.name
    concept = concept or getattr(dataset, "concepts", {}).get(name, net.concept)
    images, labels = dataset.batch(torch.arange(n))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    settings = model_sampler(net) if sampler is None else sampler_settings(sampler)
    metrics = generation_quality(net, judge, labels[name], sampler=settings, generator=gen,
                                 concept=concept)
    out: dict = {}
    _flat(out, concept, metrics)
    out[f"{name}.object_rate"] = metrics["object_rate"].value
    if not concept.is_categorical:
        rng = concept.high - concept.low
        out[f"{name}.mae_frac"] = out[f"{name}.mae"] / rng
        out[f"{name}.mae_frac_stderr"] = out[f"{name}.mae_stderr"] / rng
    if inference:
        inferred = inference_quality(net, images, labels[name], map_settings=map_settings,
                                     concept=concept)
        _flat(out, concept, inferred, prefix="inference_")
    out[f"{name}.seconds"] = time.time() - t0
    return out


def model_score(concept: Concept, results: Mapping) -> float:
    """Higher is better: :func:`~conceptebm.evaluate.quality.selection_score` of the
    generations, averaged with that of inference when ``results`` has it."""
    kind = "acc" if concept.is_categorical else "mae"
    metric = f"{concept.name}_{kind}"
    keys = [k for k in (f"{concept.name}.{kind}", f"inference_{concept.name}_{kind}")
            if k in results]
    if not keys:
        raise KeyError(f"results have no {concept.name}.{kind}: score the model first "
                       "(score_model)")
    scores = [selection_score({metric: Metric(results[k], 0.0)}, concept) for k in keys]
    return sum(scores) / len(scores)


def passes(results: Mapping, targets: Mapping[str, tuple[float, str]]) -> dict[str, bool]:
    """``{key: met}`` for each ``key: (target, "min" | "max")`` whose key is in ``results``."""
    ok = {}
    for key, (target, kind) in targets.items():
        if kind not in ("min", "max"):
            raise ValueError(f"target {key}: kind must be 'min' or 'max', got {kind!r}")
        if key in results:
            ok[key] = results[key] >= target if kind == "min" else results[key] <= target
    return ok


def candidates(run_dir: Path, top: int) -> list[Path]:
    """The ``top`` snapshots with the best in-loop judge scores (``eval.csv``), plus the last
    snapshot, in iteration order."""
    run_dir = Path(run_dir)
    snaps = {int(p.stem[2:]): p for p in (run_dir / "snapshots").glob("it*.safetensors")}
    if not snaps:
        raise FileNotFoundError(f"{run_dir} has no snapshots/it*.safetensors; train with "
                                "--snapshot-every N")
    scores = {}
    if (run_dir / "eval.csv").exists():
        with open(run_dir / "eval.csv", newline="") as f:
            scores = {int(float(r["iteration"])): float(r["score"]) for r in csv.DictReader(f)}
    ranked = sorted((it for it in snaps if it in scores), key=lambda it: -scores[it])[:top]
    return [snaps[it] for it in sorted({*ranked, max(snaps)})]


def select(run_dir: Path, load: Callable[[Path], ConditionalEnergy], judge,
           scenes: Callable[[ConditionalEnergy], object], n: int, *,
           steps_grid: Sequence[int] = (40, 100, 200), top: int = 3, inference: bool = False,
           log: Callable[[str], None] = print) -> tuple[Path, SamplerSettings, list]:
    """Pick the (snapshot, sampler steps) with the best :func:`model_score` on the held-out
    ``scenes(net)`` (drawn with another seed than the test: :data:`SELECT_SEED`).

    ``load(path)`` rebuilds a snapshot (with its recommended ``.sampler``). Returns the best
    snapshot, its sampler settings with the chosen steps, and every ``(score, path, steps,
    results)`` row.
    """
    rows = []
    for path in candidates(run_dir, top):
        net = load(path)
        dataset = scenes(net)
        for steps in steps_grid:
            settings = model_sampler(net).replace(num_steps=steps)
            res = score_model(net, judge, dataset, n, sampler=settings, inference=inference,
                              seed=SELECT_SEED)
            score = model_score(dataset.concepts[net.concept.name], res)
            rows.append((score, path, steps, res))
            log(f"{path.name:<22} steps {steps:>4}  score {score:.4f}  " + "  ".join(
                f"{k} {v:.3f}" for k, v in res.items() if not k.endswith(("_stderr", "seconds"))))
    best = max(rows, key=lambda r: r[0])
    return best[1], model_sampler(load(best[1])).replace(num_steps=best[2]), rows


def export(run_dir: Path, snapshot: Path, dest: Path, sampler: SamplerSettings,
           metrics: Callable[[Path], dict], metrics_n: int, metrics_command: str) -> Path:
    """Ship ``snapshot`` of ``run_dir`` as ``dest`` (weights, net and training config) with its
    record: the training command (``command.txt``), training time, ``sampler``, and the test
    ``metrics(dest)`` of the shipped file."""
    from conceptebm.checkpoints import export_weights, load_checkpoint

    run_dir = Path(run_dir)
    lines = (run_dir / "command.txt").read_text().strip().splitlines()
    meta = load_checkpoint(snapshot).meta
    info = {"command": lines[-1].replace(" --resume", ""), "commands": lines,
            "training_time_s": meta["elapsed_s"], "sampler": sampler.to_dict(),
            "source": f"{run_dir.name}/snapshots/{Path(snapshot).name}"}
    export_weights(snapshot, dest, **info)
    res = metrics(Path(dest))
    export_weights(snapshot, dest, **info, metrics=res, metrics_n=metrics_n,
                   metrics_command=metrics_command)
    return Path(dest)

"""Implication through the colour classifier: Pos AND none of seven colours -> the eighth.

    OMP_NUM_THREADS=1 python -m paper.benchmarks.implication --threads 1 \\
        --json paper/results/implication.json
    python -m paper.benchmarks.implication --quick --json /tmp/implication_quick.json

The paper's implication row (section 4.2) ANDs a position with NOT Col_k for the seven other
colours and asks for the eighth. With ``Not`` (``-alpha * E``) the seven negated energies
reward images unlike *every* colour and the sampler leaves the data (``compose_table.py
--extras --rows implication``). Here the seven enter as one
:class:`conceptebm.energies.NotAny`: ``-T * log p(colour not in S | x)`` through the classifier
``softmax(-E(x | v) / T)`` the shipped colour EBM defines, ``T`` fitted on 512 real scenes
(:func:`conceptebm.compose.calibrate.fit_temperature`), weighted by ``w`` against the shipped
position EBM (raw). Generations (``--steps`` Langevin steps, the engine's defaults otherwise)
are read by the shipped judges: ``color`` is the share showing the one colour left,
``position`` within 0.4 of the target; an image with no object counts as wrong in both.

Protocol: ``w`` is chosen among ``--weights`` on the validation targets (``--val-seed``, 0,
``--n-val`` of them) by the larger of min(color, position); then the noise-free steps
(``--denoise-steps``) by the lowest Fréchet distance to real renders of the same targets at
that weight (0 unless another lowers it); the test targets (``--test-seed``, 20261207, ``--n``
of them) are read once with the chosen weight, as the chains end and with the chosen
noise-free steps.

JSON keys (flat): ``val.w<weight>.color`` / ``.position`` (``_se``), ``val.w<weight>.
denoise<K>.fid``, ``choice.weight``, ``choice.denoise_steps``, ``test.color``,
``test.position``, ``test.object_rate`` (``_se``), ``test.fid``, ``test.fid_floor``,
``test.denoise<K>.*``, ``temperature``, ``classifier_acc`` (the colour EBM's classifier on
the real scenes), ``command``, ``protocol``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch

from conceptebm import pretrained
from conceptebm.compose.calibrate import fit_temperature
from conceptebm.compose.table import draw_targets, render_targets
from conceptebm.datasets import make_dataset
from conceptebm.energies import NotAny, Scale
from conceptebm.evaluate import load_judges
from conceptebm.evaluate.metrics import (
    PAPER_POSITION_TOL,
    binomial_metric,
    object_present,
    position_distance,
)
from conceptebm.evaluate.realism import realism
from conceptebm.infer import initial_samples, langevin
from conceptebm.infer.optimize import map_categorical

DENOISE = (0, 5, 10, 20)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few targets and steps (seconds)")
    p.add_argument("--json", help="write the flat metrics here")
    p.add_argument("--n", type=int, default=None, help="test targets (500)")
    p.add_argument("--n-val", type=int, default=None, help="validation targets per weight (200)")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps (100)")
    p.add_argument("--weights", default=None,
                   help="comma-separated weights of the NotAny term (default 0.3,1,3,10)")
    p.add_argument("--denoise-steps", default=None,
                   help="comma-separated noise-free step counts to choose from (default "
                        "0,5,10,20)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--val-seed", type=int, default=0)
    p.add_argument("--test-seed", type=int, default=20261207)
    args = p.parse_args(argv)
    for name in ("n", "n_val", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < (2 if name in ("n", "n_val") else 1):
            p.error(f"--{name.replace('_', '-')} must be >= "
                    f"{2 if name in ('n', 'n_val') else 1}, got {value}")
    for name in ("val_seed", "test_seed"):
        if not 0 <= getattr(args, name) < 2**31:
            p.error(f"--{name.replace('_', '-')} must lie in [0, 2**31), got "
                    f"{getattr(args, name)}")
    if args.val_seed == args.test_seed:
        p.error(f"--val-seed and --test-seed must differ, got {args.val_seed} for both")
    try:
        weights = [float(w) for w in (args.weights if args.weights is not None
                                      else "0.3,1,3,10").split(",")]
    except ValueError:
        p.error(f"--weights must be comma-separated numbers, got {args.weights!r}")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        p.error(f"--weights must be finite numbers > 0, got {args.weights!r}")
    try:
        denoise = sorted({int(k) for k in (args.denoise_steps if args.denoise_steps is not None
                                           else ",".join(map(str, DENOISE))).split(",")})
    except ValueError:
        p.error(f"--denoise-steps must be comma-separated integers, got {args.denoise_steps!r}")
    if denoise[0] < 0:
        p.error(f"--denoise-steps must be >= 0, got {args.denoise_steps!r}")
    args.weights, args.denoise = weights, sorted({0, *denoise})
    return args


def _chains(energy, n, settings, denoise, seed):
    """``{K: images}``: the chains as they end (K = 0) and continued by K noise-free steps."""
    gen = torch.Generator().manual_seed(seed)
    x = initial_samples((n, 3, 32, 32), init=settings.init, bounds=settings.bounds,
                        generator=gen)
    x = langevin(energy, x, num_steps=settings.num_steps, step_size=settings.step_size,
                 noise_scale=settings.noise_scale, bounds=settings.bounds, generator=gen)
    out, done = {}, 0
    for k in denoise:
        if k > done:
            x = langevin(energy, x, num_steps=0, step_size=settings.step_size,
                         noise_scale=settings.noise_scale, bounds=settings.bounds,
                         generator=gen, denoise_steps=k - done)
            done = k
        out[k] = x.detach()
    return out


def _read(judge, x, targets) -> dict:
    with torch.no_grad():
        read = judge.predict(x)
    ok = object_present(x)
    return {"color": binomial_metric((read["color"] == targets["col"]) & ok),
            "position": binomial_metric((position_distance(read["position"], targets["pos"])
                                         <= PAPER_POSITION_TOL) & ok),
            "object_rate": binomial_metric(ok)}


def _experiment(split_seed, n, w, pos, col, temperature, settings, judge, denoise, k):
    """Generate and judge ``n`` targets of ``split_seed`` at weight ``w``: ``{K: (scores,
    realism)}``."""
    targets = draw_targets(n, k, torch.Generator().manual_seed(split_seed))
    excluded = torch.ones(n, k, dtype=torch.bool)
    excluded[torch.arange(n), targets["col"]] = False  # each chain excludes all but its colour
    energy = pos.given(targets["pos"]) & Scale(NotAny(col, excluded, temperature), w)
    xs = _chains(energy, n, settings, denoise, split_seed + 1)
    fixed = {"position": targets["pos"], "color": targets["col"]}
    real = torch.cat([render_targets(fixed, n, seed=split_seed + off) for off in (101, 202)])
    return {kk: (_read(judge, x, targets), realism(x, real, judges=judge))
            for kk, x in xs.items()}


def _put(metrics: dict, prefix: str, scores: dict, real: dict | None = None) -> None:
    for name, m in scores.items():
        metrics[f"{prefix}.{name}"] = float(m.value)
        metrics[f"{prefix}.{name}_se"] = float(m.stderr)
    if real is not None:
        metrics[f"{prefix}.fid"], metrics[f"{prefix}.fid_floor"] = real["fid"], real["fid_floor"]


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.n or (4 if args.quick else 500)
    n_val = args.n_val or (4 if args.quick else 200)
    steps = args.steps or (2 if args.quick else 100)
    pos, col = (pretrained.load(name).requires_grad_(False) for name in ("position", "color"))
    k = len(col.concept.values)
    real, labels = make_dataset("color", size=512, seed=4242, image_size=32).batch(
        torch.arange(512))
    temperature = fit_temperature(col, real, labels["color"])
    classifier = float((map_categorical(col, real).index == labels["color"]).double().mean())
    judge = load_judges()
    settings = pos.sampler.replace(num_steps=steps)
    command = " ".join(["OMP_NUM_THREADS=1 python -m paper.benchmarks.implication",
                        *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])
    metrics = {"temperature": temperature, "classifier_acc": classifier, "n": n,
               "n_val": n_val, "steps": steps, "command": command,
               "protocol": {"selection": f"the NotAny weight among {args.weights} by the larger "
                                         "min(color, position), then the noise-free steps "
                                         f"among {args.denoise} by the lowest Frechet "
                                         f"distance, on {n_val} validation targets of seed "
                                         f"{args.val_seed}; the test targets read once",
                            "selection_seeds": [args.val_seed],
                            "test_seeds": [args.test_seed]}}
    print(f"colour classifier: T = {temperature:.3g}, accuracy {classifier:.3f} on 512 real "
          f"scenes; {n_val} validation / {n} test targets, {steps} steps")
    print(f"validation (seed {args.val_seed})")
    print("| NotAny weight | color (the one left) | position within 0.4 | FID (+K noise-free) "
          "| seconds |")
    print("|---|---|---|---|---|")
    val = {}
    for w in args.weights:
        t0 = time.time()
        val[w] = _experiment(args.val_seed, n_val, w, pos, col, temperature, settings, judge,
                             args.denoise, k)
        for kk, (scores, real_) in val[w].items():
            _put(metrics, f"val.w{w:g}" + ("" if kk == 0 else f".denoise{kk}"), scores, real_)
        s0 = val[w][0][0]
        fids = ", ".join(f"{kk}: {r['fid']:.1f}" for kk, (_, r) in val[w].items())
        print(f"| {w:g} | {s0['color'].format()} | {s0['position'].format()} | {fids} "
              f"(floor {val[w][0][1]['fid_floor']:.1f}) | {time.time() - t0:.0f} |", flush=True)
    crit = {w: min(v[0][0]["color"].value, v[0][0]["position"].value) for w, v in val.items()}
    w_best = max(args.weights, key=lambda w: crit[w])
    fid = {kk: val[w_best][kk][1]["fid"] for kk in args.denoise}
    k_best = min(args.denoise, key=lambda kk: (fid[kk], kk))
    metrics.update({"choice.weight": w_best, "choice.denoise_steps": k_best})
    print(f"chosen on validation: weight {w_best:g} (min(color, position) "
          f"{crit[w_best]:.3f}), denoise_steps {k_best} (FID {fid[k_best]:.1f} against "
          f"{fid[0]:.1f} at 0)")
    t0 = time.time()
    test = _experiment(args.test_seed, n, w_best, pos, col, temperature, settings, judge,
                       sorted({0, k_best}), k)
    print(f"test (seed {args.test_seed}, {n} targets, weight {w_best:g}):")
    for kk, (scores, real_) in test.items():
        _put(metrics, "test" + ("" if kk == 0 else f".denoise{kk}"), scores, real_)
        print(f"  +{kk} noise-free steps: color {scores['color'].format()}, position "
              f"{scores['position'].format()}, objects {scores['object_rate'].format()}, FID "
              f"{real_['fid']:.1f} (floor {real_['fid_floor']:.1f})  {time.time() - t0:.0f}s",
              flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

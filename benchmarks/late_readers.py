"""Late-conditioned shape / size / colour readers against the early-conditioned shipped EBMs.

    python benchmarks/late_readers.py --model shape=runs/shape_late --seed 600011 \\
        --split validation --concepts shape --json out/late_val.json             # to choose
    python benchmarks/late_readers.py --seed 20261210 --split test \\
        --json benchmarks/results/late_readers.json                              # read once
    python benchmarks/late_readers.py --quick --json /tmp/late_readers.json     # seconds

For each concept, ``--n`` renders of its own dataset (``make_dataset(concept, seed=--seed)``:
one object, every other property random) are read by the late reader (``--model C=SPEC``,
default the shipped ``<concept>_late``) and by the reference (``--reference C=SPEC``, default
the shipped early-conditioned ``<concept>``) as ``conceptebm infer --concept C`` reads them:
:func:`~conceptebm.scenes.infer_concept` at the model's own MAP settings (categories: every
category's energy; a size: grid, then Adam), then the "no object found" check
(:func:`~conceptebm.scenes.checks.check_estimates`). Both run on one thread; the MAP is timed
in process CPU time (the check is not: its cost depends on what the record holds), in
interleaved blocks of ``--block`` scenes (model, reference, reference, model...),
so a load change on a shared machine hits both alike.

Per concept and reader: accuracy (categorical) or MAE (continuous) with its standard error,
the paired difference late - reference on the same scenes (``diff``, with its standard error),
images/s per core, the share of real scenes refused as "no object found" and how many of five
object-free images (white, black, grey, noise, the empty ground:
:func:`~conceptebm.scenes.calibrate.empty_images`) are answered without that warning.
JSON: ``{"command", "seed", "split", "n", "concepts": {concept: {"model", "reference",
"metric", "diff", "rows": {"model": {...}, "reference": {...}}, "per_block"}}}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from conceptebm import load
from conceptebm.checkpoints import update_record
from conceptebm.datasets import make_dataset
from conceptebm.evaluate import binomial_metric, mean_metric
from conceptebm.evaluate.augment import add_pixel_noise
from conceptebm.models import resolve
from conceptebm.scenes import infer_concept
from conceptebm.scenes.calibrate import empty_images
from conceptebm.scenes.checks import check_estimates

CONCEPTS = ("shape", "size", "color")


def _pairs(items, flag):
    out = {}
    for item in items or ():
        concept, sep, spec = item.partition("=")
        if not sep or concept not in CONCEPTS or not spec:
            raise SystemExit(f"error: {flag} {item!r}: give CONCEPT=SPEC with CONCEPT one of "
                             f"{', '.join(CONCEPTS)}, e.g. {flag} shape=runs/shape_late")
        out[concept] = spec
    return out


def read(model, images):
    """What ``conceptebm infer --concept C`` computes for ``images (b, C, H, W)``: the MAP
    estimate, then the "no object found" check. Returns ``(values, object_found (b,), MAP
    CPU seconds)``: only the MAP is timed (the check's cost depends on what the record holds,
    e.g. a familiarity check, not on the net)."""
    sets = images[:, None]  # (b, 1, C, H, W): one view each
    t0 = time.process_time()
    est = infer_concept(model, sets, views=True)
    seconds = time.process_time() - t0
    checks = check_estimates(model, sets, est, model.record.get("energy_calibration"))
    found = torch.tensor([c.object_found is not False for c in checks])
    return est.value, found, seconds


def per_item_error(concept, value, truth):
    """(n,) per-scene error: 0/1 wrong for a category, |error| for a continuous value."""
    if concept.is_categorical:
        return (value.long() != truth.long()).double()
    return (value.reshape(truth.shape[0], -1) - truth.reshape(truth.shape[0], -1)
            ).abs().mean(1).double()


def metric(err, categorical: bool) -> dict:
    """Accuracy (categorical: ``err`` is 0 for a right answer) or MAE, with its stderr."""
    m = binomial_metric(err == 0) if categorical else mean_metric(err)
    return {"value": m.value, "stderr": m.stderr}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concepts", nargs="+", default=list(CONCEPTS), choices=CONCEPTS)
    p.add_argument("--model", action="append", metavar="C=SPEC",
                   help="the late reader of concept C (shipped name, checkpoint or run "
                        "folder); default the shipped <C>_late")
    p.add_argument("--reference", action="append", metavar="C=SPEC",
                   help="the reader to compare with; default the shipped early <C>")
    p.add_argument("--n", type=int, default=500, help="renders per concept")
    p.add_argument("--block", type=int, default=100, help="scenes per timed block")
    p.add_argument("--seed", type=int, default=600_011,
                   help="render seed (a validation seed to choose, a fresh test seed to report)")
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    p.add_argument("--noise", type=float, default=0.1,
                   help="also read the same renders under this pixel noise sigma (0: off)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="12 scenes (the test suite)")
    p.add_argument("--json", help="write the table here")
    p.add_argument("--write-records", action="store_true",
                   help="store each concept's flat metrics in its model's record (the "
                        "shipped file and its JSON twin), with this command")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.block = 12, 6
    torch.set_num_threads(args.threads)
    models, refs = _pairs(args.model, "--model"), _pairs(args.reference, "--reference")
    command = " ".join(["python benchmarks/late_readers.py",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    out = {"command": command, "seed": args.seed, "split": args.split, "n": args.n,
           "threads": args.threads, "clock": "process CPU time", "concepts": {}}
    for name in args.concepts:
        specs = {"model": models.get(name, f"{name}_late"), "reference": refs.get(name, name)}
        nets = {who: load(spec) for who, spec in specs.items()}
        concept = nets["model"].concept
        images, labels = make_dataset(name, size=args.n, seed=args.seed).batch(range(args.n))
        truth = torch.as_tensor(labels[name])
        for net in nets.values():  # warm-up (oneDNN kernels for these shapes)
            read(net, images[:2])
        values = {w: [] for w in nets}
        found = {w: [] for w in nets}
        secs = dict.fromkeys(nets, 0.0)
        blocks = []
        for k, s in enumerate(range(0, args.n, args.block)):
            xb = images[s:s + args.block]
            row = {"images": xb.shape[0]}
            for who in (("model", "reference") if k % 2 == 0 else ("reference", "model")):
                v, f, t = read(nets[who], xb)
                values[who].append(v)
                found[who].append(f)
                secs[who] += t
                row[who + "_s"] = round(t, 4)
            blocks.append(row)
        errors = {"clean": {w: per_item_error(concept, torch.cat(values[w]), truth)
                            for w in nets}}
        if args.noise:  # the same renders under pixel noise (not timed)
            gen = torch.Generator().manual_seed(args.seed + 1)
            noisy = add_pixel_noise(images, torch.full((args.n,), args.noise), generator=gen)
            errors[f"noise_{args.noise:g}"] = {
                w: per_item_error(concept, torch.cat([read(net, noisy[s:s + args.block])[0]
                                                      for s in range(0, args.n, args.block)]),
                                  truth) for w, net in nets.items()}
        key = "acc" if concept.is_categorical else "mae"
        sign = -1.0 if concept.is_categorical else 1.0  # error rate -> accuracy difference

        def col_key(col, key=key):
            return key if col == "clean" else f"{key}_{col}"

        rows = {}
        for who, net in nets.items():
            blanks = empty_images(images)
            _, blank_found, _ = read(net, torch.cat(list(blanks.values())))
            rows[who] = {
                "spec": specs[who], "net": net.config.get("type"),
                **{col_key(col): metric(err[who], concept.is_categorical)
                   for col, err in errors.items()},
                "images_per_s": args.n / secs[who], "cpu_s": round(secs[who], 3),
                "refused_real": binomial_metric(~torch.cat(found[who]))._asdict(),
                "blank_answered": {k: bool(f) for k, f in
                                   zip(blanks, blank_found.tolist(), strict=True)},
                "checks": sorted(k for k in ("energy_calibration", "familiarity")
                                 if net.record.get(k)),
            }
        diffs = {}
        for col, err in errors.items():
            d = mean_metric(err["model"] - err["reference"])
            diffs[col] = {"value": sign * d.value, "stderr": d.stderr}
        out["concepts"][name] = {
            "metric": key, "model": specs["model"], "reference": specs["reference"],
            "diff": {**diffs, "meaning": f"model {key} - reference {key}, paired on the same "
                                         "scenes"},
            "speedup": secs["reference"] / secs["model"], "rows": rows, "per_block": blocks}
        for who in ("model", "reference"):
            r = rows[who]
            cols = "  ".join(f"{col} {r[col_key(col)]['value']:.4f} ± "
                             f"{r[col_key(col)]['stderr']:.4f}" for col in errors)
            print(f"{name:<6} {who:<9} {specs[who]:<30} {key}: {cols}  "
                  f"{r['images_per_s']:8.1f} images/s  refused real "
                  f"{r['refused_real']['value']:.3f}  blanks answered "
                  f"{sum(r['blank_answered'].values())}/5", flush=True)
        print(f"{name:<6} diff {key} " + "  ".join(
            f"{col} {d['value']:+.4f} ± {d['stderr']:.4f}" for col, d in diffs.items())
            + f"   speed-up {out['concepts'][name]['speedup']:.1f}x", flush=True)
        if args.write_records:
            m, r = rows["model"], rows["reference"]
            flat = {"images_per_s": m["images_per_s"],
                    "reference.images_per_s": r["images_per_s"],
                    "refused_real": m["refused_real"]["value"],
                    "refused_real_stderr": m["refused_real"]["stderr"],
                    "blank_answered_of_5": sum(m["blank_answered"].values())}
            for col in errors:
                k = col_key(col)
                for prefix, src in (("", m[k]), ("reference.", r[k]), ("diff.", diffs[col])):
                    flat[f"{prefix}{name}.{k}"] = src["value"]
                    flat[f"{prefix}{name}.{k}_stderr"] = src["stderr"]
            update_record(resolve(specs["model"]), {
                "metrics": flat, "metrics_n": args.n, "metrics_command": command
                + (f" (reference {specs['reference']} on the same renders, seed {args.seed}, "
                   f"{args.split})")})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

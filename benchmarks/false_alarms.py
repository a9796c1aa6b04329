"""False alarms of position readers on images that hold no object, and what the rule refuses of
real scenes, judged as ``conceptebm infer`` judges one image
(:func:`conceptebm.scenes.checks.check_estimates`: best energy and energy contrast by
:func:`~conceptebm.evaluate.calibration.object_found` and, where the model's record has one,
the familiarity check; each image's energy contrast is computed once and reused for every
margin of the sweep).

    python benchmarks/false_alarms.py --split validation --seed 31337 --n 2000 \
        --models position_late_robust position_late position_multiview_late   # to choose
    python benchmarks/false_alarms.py --split test --seed 20261215 --n 4000 \
        --models position_late_robust position_late position_multiview_late   # read once
    python benchmarks/false_alarms.py --quick --json /tmp/fa.json                 # seconds
    python benchmarks/false_alarms.py --family multiview --split validation --seed 31337 \
        --n 600 --models position_multiview position_multiview_late \
        --json benchmarks/results/false_alarms_multiview_validation.json

``--family multiview`` reads the multi-view readers in their own domain instead: single views
of the "multiview" set (cameras all around) as the real scenes (``missed``) and the same views
with the object removed as ``no_object`` (``n`` each; a single view is the hardest case: a set
of views averages its energies).

Object-free images (:mod:`conceptebm.scenes.robustness`): ``no_object``, the robustness
table's column (the ``n`` "position" and ``n`` "cluttered" scenes with their labelled object
removed, and five blank images: ``2 n + 5``), the headline; beside it, from
:func:`~conceptebm.scenes.robustness.object_free_images`, the emptied clean scenes under each
nuisance of the table and two blank families (uniform noise, a constant colour), ``n`` each.
Real scenes: ``missed``, the fraction of each column of
:func:`~conceptebm.scenes.robustness.robustness_images` (clean ... camera) answered "no object
found". Each rate has its standard error and a one-sided 95 % Clopper-Pearson upper bound;
``table_rule`` is the rate without the familiarity check (the robustness table's rule before
it used the CLI's). Images are read ``--chunk`` at a time (memory stays bounded).

Every model is loaded before any image is read, and the JSON pins what was read: the
commit, any uncommitted change under ``conceptebm/``, and a fingerprint of each model's
``energy_calibration`` and ``familiarity`` records (a shared checkout can refit them while a
long read runs).

JSON: ``{"command", "split", "seed", "n", "state": {"commit", "dirty"}, "models": {name:
{"no_object": {...}, "object_free": {set: {...}}, "missed": {column: {...}}, "thresholds":
{...}, "records": {...}, "seconds"}}}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from conceptebm import load
from conceptebm.datasets import make_dataset
from conceptebm.evaluate import binomial_metric
from conceptebm.evaluate.calibration import (
    energy_contrast,
    min_contrast,
    no_object_threshold,
    object_found,
)
from conceptebm.evaluate.familiarity import familiarity
from conceptebm.evaluate.metrics import rate_upper_bound
from conceptebm.scenes.inference import infer_concept
from conceptebm.scenes.robustness import object_free_images, robustness_images

MARGINS = (1.0, 0.5, 0.25, 0.0, -0.25)  # energy margins swept (units of q99 - q50)
REAL = ("clean", "noise", "clutter", "light", "jpeg", "blur", "ground", "texture", "camera")


def judge(model, images: torch.Tensor, chunk: int) -> dict[str, torch.Tensor]:
    """Per image: its best energy, energy contrast and familiarity distance (NaN without a
    record), and the CLI's verdict on it (``found``: :func:`_found` at the model's own
    margin, the rule :func:`~conceptebm.scenes.checks.check_estimates` applies to one view),
    ``chunk`` images at a time."""
    cal = model.record.get("energy_calibration")
    fam = model.record.get("familiarity")
    parts = []
    for lo in range(0, len(images), chunk):
        x = images[lo:lo + chunk]
        sets = x[:, None]  # (S, 1, 3, H, W): one view each, as the CLI
        parts.append({
            "energy": infer_concept(model, sets, views=True).energy.detach().cpu().double(),
            "contrast": energy_contrast(model, sets, views=True).cpu().double(),
            "familiarity": (familiarity(fam, x.cpu()).double() if fam
                            else torch.full((len(x),), float("nan"), dtype=torch.float64))})
    scores = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    scores["found"] = _found(scores, cal)
    return scores


def rate(hits: torch.Tensor) -> dict:
    m, k, n = binomial_metric(hits), int(hits.sum()), hits.numel()
    return {"value": m.value, "stderr": m.stderr, "count": k, "n": n,
            "upper95": rate_upper_bound(k, n)}


def false_alarms(scores: dict, cal: dict) -> dict:
    """The answered fraction, with what each check would refuse on its own."""
    energy_ok = scores["energy"] <= no_object_threshold(cal)
    low = min_contrast(cal)
    contrast_ok = (scores["contrast"] >= low) if low is not None else torch.ones_like(energy_ok)
    return {"false_alarm": rate(scores["found"]),
            "table_rule": rate(object_found(cal, scores["energy"], contrast=scores["contrast"])),
            "passed": {"energy": int(energy_ok.sum()), "contrast": int(contrast_ok.sum()),
                       "familiarity": int(_familiar(scores).sum())},
            "lowest_energy": float(scores["energy"].min()),
            "highest_contrast": float(scores["contrast"].max())}


def _familiar(scores: dict) -> torch.Tensor:
    fam = scores["familiarity"]
    return fam.isnan() | (fam <= 1.0)


def _found(scores: dict, cal: dict, margin: float | None = None) -> torch.Tensor:
    """The CLI's verdict (:func:`~conceptebm.evaluate.calibration.object_found` with the
    energy contrast, and the familiarity check), at the model's own energy margin or
    ``margin``."""
    return object_found(cal, scores["energy"], contrast=scores["contrast"],
                        margin=margin) & _familiar(scores)


def fingerprint(record) -> str | None:
    """The first 12 hex digits of the SHA-256 of a record's JSON (keys sorted)."""
    if not record:
        return None
    text = json.dumps(record, sort_keys=True, default=str).encode()
    return hashlib.sha256(text).hexdigest()[:12]


def checkout_state() -> dict:
    """The commit and the uncommitted changes under ``conceptebm/`` (``None`` without git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=root, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "conceptebm"],
                               capture_output=True, text=True, cwd=root,
                               check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": [line[3:] for line in dirty if line.strip()]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["position_late_robust"],
                   help="shipped names or checkpoints (default position_late_robust)")
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    p.add_argument("--seed", type=int, default=31337,
                   help="render seed (a validation seed to choose, a fresh test seed once)")
    p.add_argument("--n", type=int, default=2000,
                   help="scenes a column (no_object holds 2 n + 5 images; default 2000)")
    p.add_argument("--chunk", type=int, default=500, help="images read at a time")
    p.add_argument("--quick", action="store_true", help="--n 8")
    p.add_argument("--family", default="position", choices=("position", "multiview"),
                   help="scenes to read: the default camera's (default) or the multi-view "
                        "set's single views")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="default benchmarks/results/false_alarms.json (test) or "
                                  "benchmarks/results/false_alarms_validation.json")
    args = p.parse_args(argv)
    for opt, v, eg in (("--n", args.n, 2000), ("--chunk", args.chunk, 500),
                       ("--threads", args.threads, 1)):
        if v < 1:
            print(f"error: {opt} {v}: must be a positive integer (e.g. {opt} {eg})",
                  file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    n = 8 if args.quick else args.n
    path = Path(args.json or ("benchmarks/results/false_alarms.json" if args.split == "test"
                              else "benchmarks/results/false_alarms_validation.json"))
    state = checkout_state()
    models = {name: load(name) for name in args.models}  # every record read now, once
    for name, model in models.items():
        if not model.record.get("energy_calibration"):
            print(f"error: --models {name}: its record has no energy_calibration (run "
                  f"conceptebm calibrate {name} --write)", file=sys.stderr)
            return 2
    if args.family == "multiview":  # the multi-view set's single views, emptied and not
        ds = make_dataset("multiview", size=n, seed=args.seed)
        views = ds.batch(range(n))[0]
        scene = ds.scenes(range(n))
        scene.active[:, 0] = False
        real = {"clean": (views, None), "no_object": (ds.render_scenes(scene), None)}
        free, columns = {}, ("clean",)
    else:
        real = robustness_images(n, args.seed)
        free, columns = object_free_images(n, args.seed), REAL
    out = {"command": "python " + shlex.join(["benchmarks/false_alarms.py",
                                              *(sys.argv[1:] if argv is None else argv)]),
           "split": args.split, "seed": args.seed, "n": n, "family": args.family,
           "state": state, "models": {}}
    for name, model in models.items():
        t0 = time.perf_counter()
        cal = model.record["energy_calibration"]
        thr, low = no_object_threshold(cal), min_contrast(cal)
        row = {"thresholds": {"energy": thr, "contrast": low, "margin": cal.get("margin"),
                              "familiarity": bool(model.record.get("familiarity"))},
               "records": {k: fingerprint(model.record.get(k))
                           for k in ("energy_calibration", "familiarity")}}
        empty_scores = judge(model, real["no_object"][0], args.chunk)
        row["no_object"] = false_alarms(empty_scores, cal)
        row["object_free"] = {k: false_alarms(judge(model, x, args.chunk), cal)
                              for k, x in free.items()}
        real_scores = {col: judge(model, real[col][0], args.chunk) for col in columns}
        row["missed"] = {col: rate(~v["found"]) for col, v in real_scores.items()}
        row["margin_sweep"] = {  # the CLI's rule at other energy margins: what a choice costs
            str(m): {"false_alarm": rate(_found(empty_scores, cal, m)),
                     "missed_clean": rate(~_found(real_scores["clean"], cal, m))}
            for m in MARGINS}
        row["seconds"] = time.perf_counter() - t0
        out["models"][name] = row
        fa = row["no_object"]["false_alarm"]
        print(f"{name}: no_object false alarms {fa['count']}/{fa['n']} = {fa['value']:.5f} ± "
              f"{fa['stderr']:.5f} (95% upper {fa['upper95']:.5f}; without familiarity "
              f"{row['no_object']['table_rule']['count']})", flush=True)
        for k, v in row["object_free"].items():
            f = v["false_alarm"]
            print(f"  {k:14s} answered {f['count']}/{f['n']} (95% upper {f['upper95']:.5f}; "
                  f"without familiarity {v['table_rule']['count']})")
        print("  missed: " + ", ".join(f"{c} {m['value']:.4f} ± {m['stderr']:.4f}"
                                       for c, m in row["missed"].items()))
        print("  energy margin -> false alarms / missed clean: " + ", ".join(
            f"{m} {v['false_alarm']['count']}/{v['missed_clean']['count']}"
            for m, v in row["margin_sweep"].items()))
        print(f"  {row['seconds']:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

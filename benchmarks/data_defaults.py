"""The recipe ``conceptebm train --data DIR --concept NAME`` trains with no recipe flag, chosen
on several image sources and measured on one it was not chosen on.

    python benchmarks/data_defaults.py write out/data_sources            # the three sources
    conceptebm train --data out/data_sources/foreign --concept position ... --out-dir RUN
    python benchmarks/data_defaults.py collect RUN... --json benchmarks/results/data_defaults.json

``write`` renders 1,700 labelled images (``x, y`` columns: the position) of each source:

* ``foreign``: the built-in foreign fixture (``conceptebm make-data foreign``: another renderer,
  :mod:`conceptebm.datasets.foreign`);
* ``camera_b``: this project's renderer from another camera (azimuth 25 deg, elevation 48 deg,
  distance 8.2, field of view 32 deg) and light (azimuth 30..120 deg, elevation 30..60 deg);
* ``camera_c`` (the first source the recipe was measured on, never used to choose it):
  another camera again (azimuth -50 deg, elevation 40 deg, distance 8.6, field of view 34
  deg), light from any direction, 0-2 grey clutter objects and a faint ground gradient. The
  first recipe did not learn there (the late net's readout start failed its fit and a local
  trunk cannot bridge a start that far off); the fix
  (:meth:`~conceptebm.energies.LateEnergyNet.start_readout` against each image's own
  background) was checked on ``camera_b``, where the fit had failed too, so camera_c is no
  longer untouched and a fourth source measures the fixed recipe:
* ``camera_d``: azimuth 60 deg, elevation 55 deg, distance 7.8, field of view 30 deg, light
  from any direction, 0-1 grey clutter object, a fainter ground gradient. The fixed recipe
  did not learn there either (held-out MAE 0.76 after 500 iterations): with a clutter object
  the readout fit still failed its acceptance (0.8 of the variance explained). The second fix
  (accept a fit that explains 0.3, refit on the half it explains best) was checked on a
  validation source with clutter and a rotated camera,
* ``camera_v`` (azimuth -120 deg, elevation 45 deg, 0-2 clutter objects), and measured on
* ``camera_e`` (azimuth 140 deg, elevation 50 deg, distance 8.4, field of view 31 deg, 0-2
  clutter objects, light from any direction), read once: 0.046, short of 0.03. Then 3,000
  iterations against 1,500 on the validation sources camera_v and camera_b (0.027 / 0.018
  against 0.040 / 0.030) made the preset 3,000 iterations, read once on
* ``camera_f`` (azimuth -150 deg, elevation 60 deg, distance 8.0, field of view 30 deg, 0-2
  clutter objects, light from any direction): 0.023 +- 0.001 on 300 test images in a
  10-minute run (two threads on the shared machine; stopped at iteration 1,340 of 3,000).

``collect`` reads each run folder's records (``command.txt``, ``eval.csv``: the held-out split
that chose ``best.safetensors``; ``test.json``: the test split, read once after training) into
one JSON: ``{"runs": {RUN: {"command", "best_iteration", "best_heldout_mae", "iterations",
"train_s", "test_mae", "test_mae_stderr"}}}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from conceptebm.datasets import SceneDataset
from conceptebm.datasets.foreign import write_foreign
from conceptebm.datasets.images import write_pngs
from conceptebm.datasets.sampling import SceneSpec

N = 1700
SOURCES = {
    "camera_b": replace(SceneSpec(), view=((25.0, 25.0), (48.0, 48.0), (8.2, 8.2), (32.0, 32.0)),
                        light=((30.0, 120.0), (30.0, 60.0), (0.55, 0.85), (0.25, 0.35))),
    "camera_c": replace(SceneSpec(), view=((-50.0, -50.0), (40.0, 40.0), (8.6, 8.6),
                                           (34.0, 34.0)),
                        light=((-180.0, 180.0), (30.0, 75.0), (0.5, 0.9), (0.2, 0.4)),
                        clutter=(0, 2), ground_tint=0.06),
    "camera_d": replace(SceneSpec(), view=((60.0, 60.0), (55.0, 55.0), (7.8, 7.8), (30.0, 30.0)),
                        light=((-180.0, 180.0), (25.0, 75.0), (0.5, 0.9), (0.2, 0.4)),
                        clutter=(0, 1), ground_tint=0.04),
    "camera_v": replace(SceneSpec(), view=((-120.0, -120.0), (45.0, 45.0), (8.0, 8.0),
                                           (32.0, 32.0)),
                        light=((-180.0, 180.0), (25.0, 75.0), (0.5, 0.9), (0.2, 0.4)),
                        clutter=(0, 2), ground_tint=0.05),
    "camera_f": replace(SceneSpec(), view=((-150.0, -150.0), (60.0, 60.0), (8.0, 8.0),
                                           (30.0, 30.0)),
                        light=((-180.0, 180.0), (25.0, 75.0), (0.5, 0.9), (0.2, 0.4)),
                        clutter=(0, 2), ground_tint=0.05),
    "camera_e": replace(SceneSpec(), view=((140.0, 140.0), (50.0, 50.0), (8.4, 8.4),
                                           (31.0, 31.0)),
                        light=((-180.0, 180.0), (25.0, 75.0), (0.5, 0.9), (0.2, 0.4)),
                        clutter=(0, 2), ground_tint=0.03),
}


def write_source(spec: SceneSpec, out: Path, n: int, seed: int, chunk: int = 256) -> Path:
    ds = SceneDataset(spec, size=n, seed=seed, name=out.name, concept="position")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "x", "y"])
        for s in range(0, n, chunk):
            idx = range(s, min(n, s + chunk))
            images, labels = ds.batch(idx)
            names = [f"img_{i:05d}.png" for i in idx]
            write_pngs(images, [out / name for name in names])
            for name, (x, y) in zip(names, labels["position"].tolist(), strict=True):
                w.writerow([name, f"{x:.5f}", f"{y:.5f}"])
    return out


def collect(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "eval.csv")))
    best = max(rows, key=lambda r: float(r["score"]))
    metrics = list(csv.DictReader(open(run / "metrics.csv")))
    mae_key = next(k for k in best if k.endswith("_mae"))
    out = {"command": (run / "command.txt").read_text().strip().splitlines()[-1],
           "best_iteration": int(best["iteration"]), "best_heldout_mae": float(best[mae_key]),
           "iterations": int(metrics[-1]["iteration"]),
           "train_s": float(metrics[-1]["time_s"])}
    if (run / "test.json").is_file():
        t = json.loads((run / "test.json").read_text())
        m = t["metrics"][mae_key.split("_", 1)[1]]
        out.update(test_mae=m["value"], test_mae_stderr=m["stderr"], test_size=t["size"],
                   test_source=t["source"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="render the sources")
    w.add_argument("out", type=Path)
    w.add_argument("-n", type=int, default=N)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--sources", nargs="+", default=["foreign", *SOURCES],
                   choices=["foreign", *SOURCES])
    c = sub.add_parser("collect", help="one JSON of run folders' records")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--json", required=True)
    c.add_argument("--note", default="", help="conditions of the runs, kept in the JSON")
    args = p.parse_args(argv)
    command = " ".join(["python benchmarks/data_defaults.py",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    if args.cmd == "write":
        for name in args.sources:
            if name == "foreign":
                write_foreign(args.out / "foreign", args.n, seed=args.seed)
            else:
                write_source(SOURCES[name], args.out / name, args.n, args.seed)
        print(f"wrote {', '.join(args.sources)} ({args.n} images each) in {args.out}")
        return 0
    out = {"command": command, "note": args.note, "runs": {}}
    for run in args.runs:
        out["runs"][str(run)] = r = collect(run)
        test = (f"  test {r['test_mae']:.4f} ± {r['test_mae_stderr']:.4f}"
                if "test_mae" in r else "")
        print(f"{str(run):40s} held-out MAE {r['best_heldout_mae']:.4f} at {r['best_iteration']}"
              f" of {r['iterations']} ({r['train_s']:.0f} s){test}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

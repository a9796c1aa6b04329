"""Photographs that hold no scene of the kind the models know: how many does each shipped
position reader answer without saying "no object found"?

    pip install scikit-image     # its sample photographs ship inside the package
    python benchmarks/photographs.py --json benchmarks/results/photographs.json

Every photograph and scientific image that ships in ``skimage/data`` (a portrait, a cat, a cup
of coffee, a rocket, a logo, textures, micrographs, ...; ``--photos DIR`` reads another folder)
is scaled to the reader's input size (bilinear, aspect ratio not kept: what ``conceptebm infer
PHOTO --resize`` does), read by MAP inference, and judged by the reader's stored energy
calibration and energy contrast (the same "no object found" rule as ``conceptebm infer``).
Nothing is fitted here: the photographs are a test set. The target set for the readers is at
most 1 in 20 answered.

JSON: ``{"command", "photos", "n", "models": {name: {"answered", "answered_stderr",
"answered_names"}}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import conceptebm
from conceptebm import pretrained
from conceptebm.datasets import read_image
from conceptebm.evaluate.calibration import energy_contrast, object_found
from conceptebm.evaluate.metrics import binomial_metric
from conceptebm.scenes import infer_concept

SUFFIXES = (".png", ".jpg", ".jpeg")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", default=None,
                   help="folder of photographs (default: scikit-image's sample data)")
    p.add_argument("--models", nargs="+", default=list(pretrained.INFERENCE),
                   help="position readers (default: every shipped one)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.photos is None:
        try:
            import skimage.data
        except ImportError:
            print("error: --photos: none given and scikit-image is not installed; "
                  "pip install scikit-image, or pass --photos DIR", file=sys.stderr)
            return 2
        args.photos = str(Path(skimage.data.__file__).parent)
    paths = sorted(q for q in Path(args.photos).iterdir() if q.suffix.lower() in SUFFIXES)
    if not paths:
        print(f"error: --photos: no .png/.jpg files in {args.photos}", file=sys.stderr)
        return 2
    out = {"command": "python benchmarks/photographs.py " + " ".join(argv or sys.argv[1:]),
           "photos": [q.name for q in paths], "n": len(paths), "target": 0.05, "models": {}}
    for name in args.models:
        model = conceptebm.load(name)
        size = model.image_size
        images = torch.stack([
            torch.nn.functional.interpolate(read_image(q)[None], size=(size, size),
                                            mode="bilinear", antialias=True,
                                            align_corners=False)[0].clamp(0, 1)
            for q in paths])  # (N, 3, size, size)
        est = infer_concept(model, images)
        cal = model.record["energy_calibration"]
        answered = object_found(cal, est.energy, contrast=energy_contrast(model, images))
        m = binomial_metric(answered)
        out["models"][name] = {"answered": m.value, "answered_stderr": m.stderr,
                               "answered_names": [q.name for q, a in zip(paths, answered.tolist(), strict=True) if a]}
        print(f"{name:24s} answered {int(answered.sum())} of {len(paths)} "
              f"({m.value:.3f} ± {m.stderr:.3f}; target <= 0.05)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Photographs that hold no scene of the kind the models know: how many does each shipped
reader answer without saying "no object found"?

    python benchmarks/get_photographs.py --out photos_test   # the test set: 177 real images
    python benchmarks/photographs.py --photos photos_test \
        --json benchmarks/results/photographs_fresh.json
    pip install scikit-image     # its sample photographs ship inside the package
    python benchmarks/photographs.py --json benchmarks/results/photographs_skimage_revalidation.json
    python benchmarks/photographs.py --validation \
        --json benchmarks/results/photographs_validation.json

Each image (``--photos DIR``: every .png/.jpg in a folder; default: the photographs and
scientific images that ship in ``skimage/data``) is scaled to the reader's input size (bilinear,
aspect ratio not kept: what ``conceptebm infer PHOTO --resize`` does), read by MAP inference,
and judged by the reader's stored energy calibration and energy contrast and by its
familiarity check (whether the image's coarse statistics are those of the scenes it knows, and
whether it has a patch of colour where they all do; ``conceptebm calibrate NAME
--familiarity``): the same "no object found" rule as ``conceptebm infer``. ``answered`` counts
what passes all of them, ``answered_energy`` what passes the energy checks alone (the rule
before the familiarity check). Nothing is fitted here. The target set for the readers is at
most 1 in 20 answered.

The sets and what they were used for: the fresh test set of ``get_photographs.py`` (wallpaper
photographs, textures, medical and scientific images from Debian and PyPI packages; read once,
after every choice); scikit-image's 26 images (the first test set, spent on the first version
of the familiarity check, since then a second validation set); ``--validation``, the validation
images the familiarity check was chosen on
(:func:`conceptebm.datasets.nonscenes.nonscene_images`: photographs, grey photographs,
patches, maps, drawings, procedural textures and digits made from files that ship with
matplotlib and scikit-learn; needs scikit-learn) and, as the other side of the trade, the share
of rendered validation scenes of each robustness column (seed 31337, 150 a column) that the
check refuses.

JSON: ``{"command", "photos", "n", "models": {name: {"answered", "answered_stderr",
"answered_names", "answered_energy", "answered_energy_stderr"}}}``, and with ``--validation``
``"refused_scenes": {name: {column: share}}``.
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
from conceptebm.datasets.images import resize_image
from conceptebm.evaluate.calibration import energy_contrast, object_found
from conceptebm.evaluate.familiarity import familiarity
from conceptebm.evaluate.metrics import binomial_metric
from conceptebm.scenes import infer_concept
from conceptebm.scenes.robustness import robustness_images

VALIDATION_SEED = 31_337

SUFFIXES = (".png", ".jpg", ".jpeg")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", default=None,
                   help="folder of photographs (default: scikit-image's sample data)")
    p.add_argument("--validation", action="store_true",
                   help="read the validation images instead (matplotlib's and scikit-learn's "
                        "pictures, drawings, digits) and the rendered scenes refused")
    p.add_argument("--models", nargs="+", default=list(pretrained.INFERENCE),
                   choices=pretrained.NAMES, metavar="NAME",
                   help="position readers (default: every shipped one)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {"command": "python benchmarks/photographs.py " + " ".join(argv or sys.argv[1:]),
           "target": 0.05, "models": {}}
    if args.validation:
        from conceptebm.datasets.nonscenes import nonscene_images

        sets = nonscene_images(32, seed=0)
        names = [f"{k}[{i}]" for k, v in sets.items() for i in range(v.shape[0])]
        photos = torch.cat(list(sets.values()))
        scenes = {k: v[0] for k, v in robustness_images(150, VALIDATION_SEED).items()}
        out["refused_scenes"] = {}
    else:
        if args.photos is None:
            try:
                import skimage.data
            except ImportError:
                print("error: --photos: none given and scikit-image is not installed; "
                      "pip install scikit-image, or pass --photos DIR", file=sys.stderr)
                return 2
            args.photos = str(Path(skimage.data.__file__).parent)
        if not Path(args.photos).is_dir():
            print(f"error: --photos: {args.photos} is not a folder; pass a folder of .png/.jpg "
                  "photographs", file=sys.stderr)
            return 2
        paths = sorted(q for q in Path(args.photos).iterdir() if q.suffix.lower() in SUFFIXES)
        if not paths:
            print(f"error: --photos: no .png/.jpg files in {args.photos}", file=sys.stderr)
            return 2
        names = [q.name for q in paths]
        photos = [read_image(q) for q in paths]
    out.update(photos=names, n=len(names))
    for name in args.models:
        model = conceptebm.load(name)
        size = model.image_size
        images = torch.stack([resize_image(im, size) for im in photos])  # (N, 3, size, size)
        est = infer_concept(model, images)
        cal, fam = model.record["energy_calibration"], model.record.get("familiarity")
        contrast = energy_contrast(model, images)
        by_energy = object_found(cal, est.energy, contrast=contrast)
        answered = object_found(cal, est.energy, contrast=contrast, familiarity=fam,
                                images=images)
        m, me = binomial_metric(answered), binomial_metric(by_energy)
        out["models"][name] = {
            "answered": m.value, "answered_stderr": m.stderr,
            "answered_names": [q for q, a in zip(names, answered.tolist(), strict=True) if a],
            "answered_energy": me.value, "answered_energy_stderr": me.stderr,
            "familiarity_check": fam is not None}
        print(f"{name:24s} answered {int(answered.sum())} of {len(names)} "
              f"({m.value:.3f} ± {m.stderr:.3f}; target <= 0.05); energy checks alone "
              f"{int(by_energy.sum())}")
        if args.validation and fam is not None:
            refused = {k: float((familiarity(fam, v) > 1.0).float().mean())
                       for k, v in scenes.items()}
            out["refused_scenes"][name] = refused
            print(f"{'':24s} rendered validation scenes refused by the familiarity check: " +
                  ", ".join(f"{k} {v:.3f}" for k, v in refused.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

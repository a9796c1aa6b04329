"""``conceptebm sample "EXPRESSION" -n 16 -o out.png``: generate images from a composition.

Example::

    conceptebm sample "position=(0.3,-0.2) & color=red & ~shape=cube" -n 16 -o out.png
    conceptebm sample "(position=(-0.6,-0.6) & color=red) | (position=(0.6,0.6) & color=blue)"

The expression language is documented in :mod:`conceptebm.compose.expr`. Composition is
calibrated by each model's energy gap unless ``--raw``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from conceptebm.compose import defaults
from conceptebm.compose.calibrate import composition_scales
from conceptebm.compose.expr import ExpressionError, _atom_names, build, parse
from conceptebm.plotting import save_grid


def _main(args: argparse.Namespace) -> int:
    from conceptebm.compose.generate import generate, load_concepts

    try:
        tree = parse(args.expression)
    except ExpressionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from conceptebm import pretrained

    known = set(pretrained.available()) & set(pretrained.CONCEPTS)
    names = _atom_names(tree)
    unknown = sorted(names - known)
    if unknown:
        print(f"error: unknown concept {unknown[0]!r}; known concepts: "
              f"{', '.join(sorted(known))}", file=sys.stderr)
        return 2
    if args.n < 1:
        print(f"error: -n must be >= 1, got {args.n}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cm = load_concepts(sorted(names), device=device)
    try:
        energy = build(tree, cm.models, alpha=args.alpha, temperature=args.temperature,
                       scales=None if args.raw else composition_scales(cm.scales),
                       text=args.expression)
    except (ExpressionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = cm.settings.replace(num_steps=args.steps or defaults.STEPS,
                                   step_size=args.step_size, noise_scale=args.noise_scale)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    x = generate(energy, args.n, settings, cm.image_shape, generator=gen, device=device,
                 progress=True)
    out = Path(args.output)
    save_grid(x, out, title=repr(energy))
    print(f"{energy!r}: wrote {args.n} samples to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate images from a concept expression",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("expression", help='e.g. "position=(0.3,-0.2) & color=red & ~shape=cube"')
    p.add_argument("-n", type=int, default=16, help="number of images")
    p.add_argument("-o", "--output", default="out/sample.png", help="PNG grid to write")
    p.add_argument("--alpha", type=float, default=defaults.ALPHA, help="negation weight")
    p.add_argument("--temperature", type=float, default=defaults.TEMPERATURE,
                   help="disjunction temperature (in energy-gap units unless --raw)")
    p.add_argument("--raw", action="store_true",
                   help="compose the raw energies (paper's equations, no calibration)")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps")
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--noise-scale", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_main)

"""``conceptebm sample "EXPRESSION" -n 16 -o out.png``: generate images from a composition.

Example::

    conceptebm sample "position=(0.3,-0.2) & color=red & ~shape=cube" -n 16 -o out.png
    conceptebm sample "(position=(-0.6,-0.6) & color=red) | (position=(0.6,0.6) & color=blue)"

The expression language is documented in :mod:`conceptebm.compose.expr`. Composition is
calibrated by each model's energy gap unless ``--raw``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from conceptebm.cli import validate
from conceptebm.cli.user_data import add_each_options
from conceptebm.cli.validate import CommandError
from conceptebm.compose import defaults
from conceptebm.compose.calibrate import composition_scales
from conceptebm.compose.expr import ExpressionError, Neg, atom_names, build, parse
from conceptebm.plotting import save_grid

# Sane ranges of the composition knobs (defaults.ALPHA = 0.05, defaults.TEMPERATURE = 0.1):
# a negation weight above 1 outweighs the concept it negates, and a disjunction temperature of
# 1 already makes OR act like AND (see conceptebm.compose.defaults).
MAX_ALPHA = 1.0
MAX_TEMPERATURE = 10.0
MAX_NEGATION_WEIGHT = 100.0

# a grid of more images than this is unreadable, and all chains run as one batch
MAX_GRID = 1024
CHUNK = 256  # chains per Langevin batch: memory stays bounded whatever -n is
MAX_N = 10_000  # samples kept for --each: 10,000 32x32 images are 120 MB


def _check(args: argparse.Namespace) -> None:
    """The expression parses and names shipped concepts, before any model is loaded."""
    from conceptebm import pretrained

    try:
        args.tree = parse(args.expression)
    except ExpressionError as err:
        raise CommandError(f"EXPRESSION: {err}") from None
    known = set(pretrained.available()) & set(pretrained.CONCEPTS)
    unknown = sorted(atom_names(args.tree) - known)
    if unknown:
        raise CommandError(f"unknown concept {unknown[0]!r}; known concepts: "
                           f"{', '.join(sorted(known))}")
    if args.n > MAX_GRID and not getattr(args, "each", None):
        raise CommandError(f"-n {args.n}: a grid holds at most {MAX_GRID} images; pass "
                           "--each DIR to write each image to a file instead")
    from conceptebm.cli.render import each_folder

    each_folder(args)  # nothing of the user's is overwritten (checked before any model loads)


def _negated_names(node) -> set[str]:
    """Concepts that appear negated (``~name=value``) in a parsed expression."""
    if isinstance(node, Neg):
        return atom_names(node.term)
    return set().union(*(_negated_names(t) for t in getattr(node, "terms", ())),
                       _negated_names(node.term) if hasattr(node, "term") else set())


def _main(args: argparse.Namespace) -> int:
    from conceptebm.compose.generate import (
        composition_settings,
        generate_images,
        load_concepts,
        serving_models,
    )

    if not hasattr(args, "tree"):  # called without cli.parse
        _check(args)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cm = load_concepts(sorted(atom_names(args.tree)), device=device,
                       serve=serving_models(args.tree),  # several objects: position_cd
                       temperatures=(args.negation != "energy"
                                     and _negated_names(args.tree)))
    temperatures = None
    if args.negation != "energy":
        temperatures = cm.temperatures
        missing = sorted(n for n in _negated_names(args.tree) if n not in temperatures)
        if missing:
            raise CommandError(f"--negation {args.negation}: the {missing[0]} model has no "
                               "classifier to negate through (no better than chance on real "
                               "scenes, or a continuous concept without a tolerance); use "
                               "--negation energy")
    energy = build(args.tree, cm.models, alpha=args.alpha, temperature=args.or_temperature,
                   scales=None if args.raw else composition_scales(cm.scales),
                   text=args.expression, temperatures=temperatures,
                   negation_weight=args.negation_weight,
                   closed_world=args.negation == "complement")
    settings = composition_settings(cm, args.tree, steps=args.langevin_steps,
                                    step_size=args.step_size, noise_scale=args.noise_scale)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    if getattr(args, "each", None):  # one PNG per image + labels.csv, each chunk as it ends
        return _sample_each(args, energy, settings, cm, gen, device)
    chunks = []
    out = Path(args.output)
    try:
        for start in range(0, args.n, CHUNK):  # (n, C, H, W) built CHUNK chains at a time
            chunks.append(generate_images(energy, min(CHUNK, args.n - start), settings,
                                   cm.image_shape, generator=gen, device=device,
                                   progress=not args.quiet).cpu())
    except KeyboardInterrupt as err:  # Ctrl-C: the finished chunks still make a grid
        from conceptebm.cli import Interrupted

        done = sum(len(c) for c in chunks)
        if done:
            save_grid(torch.cat(chunks), out, title=repr(energy))
        raise Interrupted(getattr(err, "signum", 2),
                          f"wrote {done} of {args.n} samples to {out}" if done
                          else "no sample was finished; nothing was written") from None
    x = torch.cat(chunks)
    save_grid(x, out, title=repr(energy))
    print(f"{energy!r}: wrote {args.n} samples to {out}")
    return 0


def _sample_each(args, energy, settings, cm, gen, device) -> int:
    """``--each DIR``: each chunk of chains written as it finishes (Ctrl-C keeps them)."""
    from conceptebm.cli import Interrupted
    from conceptebm.cli.render import each_folder
    from conceptebm.cli.user_data import sample_labels
    from conceptebm.compose.generate import generate_images

    each = each_folder(args)
    try:
        for start in range(0, args.n, CHUNK):
            x = generate_images(energy, min(CHUNK, args.n - start), settings, cm.image_shape,
                         generator=gen, device=device, progress=not args.quiet).cpu()
            each.write(x, *sample_labels(args.tree, cm.models, x.shape[0]))
            if start == 0:
                each.add_text("expression.txt", args.expression)
    except KeyboardInterrupt as err:  # the finished chunks stay, listed in labels.csv
        each.finish()
        raise Interrupted(getattr(err, "signum", 2),
                          f"wrote {len(each.written)} of {args.n} samples to {args.each}; "
                          "its labels.csv lists them") from None
    each.finish()
    print(f"{energy!r}: wrote {args.n} PNGs and labels.csv to {args.each}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate images from a concept expression",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("expression", help='e.g. "position=(0.3,-0.2) & color=red & ~shape=cube"')
    p.add_argument("-n", type=validate.integer(1, MAX_N), default=16,
                   help=f"number of images (at most {MAX_GRID} in a grid, {MAX_N} with --each)")
    p.add_argument("-o", "--output", type=validate.output_file(), default="out/sample.png",
                   help="image grid to write (.png, .jpg, .pdf, .svg)")
    p.add_argument("--each", type=validate.output_dir(), default=None, metavar="DIR",
                   help="write one PNG per sample plus labels.csv (the values of a plain "
                        "conjunction) to DIR instead of a grid; a folder holding images or "
                        "labels this tool did not write is refused unless --append or --force")
    add_each_options(p)
    p.add_argument("--alpha", type=validate.real(0, MAX_ALPHA), default=defaults.ALPHA,
                   help=f"negation weight, 0-{MAX_ALPHA:g} (default {defaults.ALPHA})")
    p.add_argument("--or-temperature", type=validate.real(0, MAX_TEMPERATURE, low_open=True),
                   default=defaults.TEMPERATURE,
                   help="temperature of a disjunction (|) (in energy-gap units unless --raw), in "
                        f"(0, {MAX_TEMPERATURE:g}] (default {defaults.TEMPERATURE})")
    p.add_argument("--negation", choices=("energy", "classifier", "complement"),
                   default="energy",
                   help="energy: ~a is -alpha * E_a (the paper's eq. 9); classifier: a negated "
                        "concept through the classifier its EBM defines, the negated values "
                        "of one concept together (conceptebm.energies.NotAny, NotNear for a "
                        "position: not within its tolerance; bounded, so leaving the data "
                        "earns nothing); complement: the same read in a closed world, one of "
                        "the values left (their disjunction: ~color=red is another colour)")
    p.add_argument("--negation-weight", type=validate.real(0, MAX_NEGATION_WEIGHT, low_open=True),
                   default=defaults.NEGATION_WEIGHT,
                   help="weight of a classifier or complement negation, in (0, "
                        f"{MAX_NEGATION_WEIGHT:g}] (default {defaults.NEGATION_WEIGHT})")
    p.add_argument("--raw", action="store_true",
                   help="compose the raw energies (paper's equations, no calibration)")
    p.add_argument("--langevin-steps", type=validate.integer(1, 100_000), default=None,
                   help="Langevin steps, 1-100000 (default: the models' own)")
    p.add_argument("--step-size", type=validate.real(0, 1e6, low_open=True), default=None,
                   help="Langevin step on the raw gradient, in (0, 1e6]")
    p.add_argument("--noise-scale", type=validate.real(0, 1), default=None,
                   help="noise std per Langevin step, in [0, 1]")
    p.add_argument("--seed", type=validate.SEED, default=0)
    p.add_argument("--device", type=validate.device(), default="cpu",
                   help="torch device, e.g. cuda")
    validate.add_threads(p)
    validate.add_quiet(p)
    validate.add_deprecated(p, "--steps", "--langevin-steps", command="sample")
    validate.add_deprecated(p, "--temperature", "--or-temperature", command="sample")
    p.set_defaults(func=_main, check=_check)

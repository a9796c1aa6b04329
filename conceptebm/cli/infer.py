"""``conceptebm infer`` and ``conceptebm energy-map``: concept inference on image files.

    conceptebm infer scene.png --concept position
    conceptebm infer view1.png view2.png view3.png --posterior     # one object, three views
    conceptebm infer a.png b.png --separate --concept color
    conceptebm energy-map two_cubes.png -o map.png --objects 2

Several images given to ``infer`` are views of one object (paper eq. 11: their energies add)
unless ``--separate``. ``--posterior`` adds a 90% credible interval from 4 chains started around
the MAP (the engine's MALA, batched; ``--sampler nuts`` for Pyro's NUTS), at the model's fitted
posterior temperature, with ArviZ's R-hat, bulk / tail ESS and MCSE and a warning for any
coordinate that has not converged; ``--save post.nc`` writes the draws as ArviZ netCDF
(continuous concepts), or the posterior of every category (categorical ones).
``--model`` takes a shipped model name (``conceptebm.pretrained``) or a checkpoint path; by
default the shipped inference model of ``--concept`` (``pretrained.INFER_DEFAULT``:
``position_late_robust``, ``shape_late``, ``size_late``, ``color_late``, each one trunk pass per
image), which knows the default camera only. For views taken from other
sides use ``--model position_multiview_late`` (trained on views from any camera; more accurate
and faster than ``position_multiview``: ``benchmarks/results/late_multiview.json``):

    conceptebm infer view*.png --model position_multiview_late --posterior
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from conceptebm.cli import validate
from conceptebm.cli.infer_folder import IMAGE_OR_FOLDER, OUTPUT, expand_images, write_jsonl
from conceptebm.cli.infer_folder import check as check_output
from conceptebm.cli.models import (
    KNOWN_CONCEPTS,
    load_images,
    load_model,
    looks_like_path,
    read_image,
)
from conceptebm.cli.objects import OBJECTS, objects_rows, objects_text, run_objects
from conceptebm.cli.validate import CommandError
from conceptebm.plotting import save_figure

__all__ = ["register", "load_model", "read_image", "CommandError",
           "KNOWN_CONCEPTS"]


# Refused below these. MAP starts: the shipped position_contrastive model on 200 position
# scenes (seed 77) left 17 / 9 estimates more than 0.3 from the truth from 6 / 7 points per
# coordinate, none from 8 or more (grid points 0.29 apart: about one basin's width; a
# --grid 2 answer was a corner). An energy map of 4x4 points shows no basin.
MIN_GRID, MAX_GRID = 8, 201
MIN_POINTS, MAX_POINTS = 5, 2000
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 1e3


def _posterior_text(post, concept) -> str:
    lo, hi = post.interval
    coords = post.coords
    parts = [f"{coords[i]} [{lo[i]:+.3f}, {hi[i]:+.3f}]" for i in range(concept.dim)]
    rep = post.report()
    d = post.diagnostics
    text = (f"  {round(100 * post.level)}% interval ({post.sampler.upper()}, {rep['chains']} "
            f"chains x {rep['samples']} samples, T {post.temperature:.4g}, "
            f"ESS {float(post.ess.min()):.0f}): " + "  ".join(parts))
    diag = "; ".join(f"{c} R-hat {d['rhat'][i]:.3f} ESS bulk {d['ess_bulk'][i]:.0f} tail "
                     f"{d['ess_tail'][i]:.0f} MCSE {d['mcse_mean'][i]:.2g}"
                     for i, c in enumerate(coords))
    extra = f", {d['divergences']} divergences" if "divergences" in d else ""
    return text + f"\n  diagnostics ({d['source']}{extra}): {diag}"


def _save_posterior(post, path: str, k: int, n: int) -> str:
    """Write ``post`` as netCDF; several sets: ``NAME-<k>.nc`` for the k-th (from 1)."""
    out = Path(path)
    if n > 1:
        out = out.with_name(f"{out.stem}-{k + 1}{out.suffix}")
    post.to_arviz().to_netcdf(str(out))
    return str(out)


CHUNK = 256  # images read and inferred at a time with --separate: memory stays bounded


def _infer(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    torch.set_num_threads(args.threads)
    if args.save:  # before any work: ArviZ writes the file
        from conceptebm.evaluate.posterior import ArvizMissing, require_arviz
        try:
            require_arviz()
        except ArvizMissing as err:
            raise CommandError(f"--save: {err}") from None
    model = load_model(args.model, args.concept)
    if args.objects is not None:  # each image on its own: its objects, counted or K
        return run_objects(model, args)
    if args.save and model.concept.is_categorical:
        raise CommandError(f"--save writes posterior draws of a continuous concept; "
                           f"{model.concept.name!r} is categorical (its posterior is exact: "
                           "see --posterior --json)")
    calibration = model.record.get("energy_calibration")
    if calibration is None:
        _warn("this model has no energy_calibration in its record, so whether an image holds "
              "an object at all is not checked (retrain, or see conceptebm.scenes.calibrate)")
    paths = expand_images(args.images)  # a folder: its image files, sorted
    if args.output is not None:  # streamed to JSON Lines, resumable, sharded under torchrun
        return write_jsonl(model, paths, calibration, args, _infer_sets, load_images)
    report = []
    if args.separate or len(paths) == 1:  # each image a set of one view, CHUNK at a time
        with tqdm(total=len(paths), desc="infer", unit="img", file=sys.stderr,
                  disable=len(paths) <= CHUNK or args.quiet) as bar:
            for lo in range(0, len(paths), CHUNK):
                chunk = paths[lo:lo + CHUNK]
                images = load_images(chunk, model, args.resize)  # (n, 3, H, W)
                report += _infer_sets(model, images[:, None], [[p] for p in chunk], chunk,
                                      calibration, args, first=lo, total=len(paths))
                bar.update(len(chunk))
    else:  # one object seen in every image: the energies add (eq. 11)
        images = load_images(paths, model, args.resize)  # (V, 3, H, W)
        report = _infer_sets(model, images[None], [paths], [f"{len(paths)} views"],
                             calibration, args)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def _infer_sets(model, sets: torch.Tensor, set_paths: list[list[str]], names: list[str],
                calibration: dict | None, args: argparse.Namespace, first: int = 0,
                total: int = 1) -> list[dict]:
    """Infer, check and report sets ``(S, V, 3, H, W)``: one JSON row each (a text line each
    printed unless ``--json``); ``first`` / ``total``: where these sets stand among all of
    them (``--save`` numbers its files when there are several)."""
    from conceptebm.scenes.checks import check_estimates
    from conceptebm.scenes.inference import infer_concept
    from conceptebm.scenes.multiview import multiview_posteriors, posterior_temperature

    concept = model.concept
    est = infer_concept(model, sets, views=True, grid=args.grid, steps=args.steps)
    checks = check_estimates(model, sets, est, calibration, grid=args.grid, steps=args.steps)
    temperature = (args.temperature if args.temperature is not None
                   else posterior_temperature(model, views=sets.shape[1]))
    posts = None
    if args.posterior and not concept.is_categorical:  # every set's chains in one tensor
        posts = multiview_posteriors(
            model, sets, num_samples=args.samples, warmup_steps=args.warmup,
            chains=args.chains, level=args.level, init=est.value, seed=args.seed,
            temperature=temperature, sampler=args.sampler, observed=set_paths,
            progress=not args.quiet and sys.stderr.isatty())
    rows = []
    for i, name in enumerate(names):
        row = {"images": set_paths[i], "concept": concept.name,
               "energy": float(est.energy[i]), "object_found": checks[i].object_found}
        line = f"{name}: {est.describe(i)}   (energy {float(est.energy[i]):.4g})"
        if checks[i].familiarity is not None:
            row["familiarity"] = round(checks[i].familiarity, 4)
            row["colourless"] = checks[i].colourless
        if checks[i].colourless:  # grey or empty: nothing of the objects' colour
            line = (f"{name}: no object found: the image has no patch of colour like the "
                    f"objects the model knows ({est.describe(i)} would be a guess)")
            _warn(f"no object found in {name}: no part of it stands out in colour from the "
                  "rest as the objects do in every image the model was trained on (a grey, "
                  "empty or one-colour image, a texture?); the estimate means nothing")
        elif checks[i].familiarity is not None and checks[i].familiarity > 1.0:
            line = (f"{name}: no object found: the image is unlike the scenes the model was "
                    f"trained on ({checks[i].familiarity:.3g} times the distance real images "
                    f"reach; {est.describe(i)} would be a guess)")
            _warn(f"{name} is unlike the images the model was trained on (a photograph, a "
                  "drawing, another renderer?); the estimate means nothing: train a model on "
                  "such images (conceptebm train --data DIR)")
        elif checks[i].object_found is False:
            line = (f"{name}: no object found ({est.describe(i)} would be a guess; best "
                    f"energy {float(est.energy[i]) / sets.shape[1]:.4g} per view, real images "
                    f"reach {checks[i].threshold:.4g} or less)")
            _warn(f"no object found in {name}: its energy is far above, or flatter in "
                  f"{concept.name} than, what real images of the model's training data get; "
                  "the estimate means nothing")
        if checks[i].views_agree is not None:
            row["views_agree"] = checks[i].views_agree
            row["separate"] = checks[i].separate
        if checks[i].views_agree is False:
            each = ", ".join(f"{p} {_show_value(v)}" for p, v in
                             zip(set_paths[i], checks[i].separate, strict=True))
            _warn(f"the {len(set_paths[i])} views disagree beyond the model's own spread "
                  f"(separately: {each}); they may show different scenes: pass --separate "
                  "to infer each image on its own")
        if concept.is_categorical:
            row["value"] = est.names[i]
            if args.posterior:  # exact: p(k | x) ∝ exp(-E(x | k) / T) over the K categories
                probs = torch.softmax(-est.energies[i].double() / temperature, dim=0)
                row["probabilities"] = dict(zip(concept.values, probs.tolist(), strict=True))
                top = probs.argsort(descending=True)[:3].tolist()
                line += "\n  posterior: " + ", ".join(
                    f"{concept.values[k]} {probs[k]:.3f}" for k in top)
        else:
            row["value"] = est.value[i].tolist()
            if posts is not None:
                post = posts[i]
                row["posterior"] = post.report()
                line += "\n" + _posterior_text(post, concept)
                for w in post.warnings:
                    _warn(f"{name}: {w}")
                if args.save:
                    row["posterior"]["saved"] = _save_posterior(post, args.save, first + i,
                                                                total)
                    line += f"\n  wrote {row['posterior']['saved']}"
        rows.append(row)
        if not args.json:
            print(line, flush=True)
    return rows


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _show_value(v) -> str:
    if isinstance(v, str):
        return v
    return "(" + ", ".join(f"{x:+.2f}" for x in v) + ")"


def _energy_map(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conceptebm.evaluate.calibration import object_found
    from conceptebm.infer.energy_map import concept_grid, energy_map
    from conceptebm.scenes.inference import (
        energy_basins,
        infer_concept,
        refine_basins,
        scene_energy_maps,
    )
    from conceptebm.scenes.plots import plot_energy_curve, plot_energy_map, show_image

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.concept)
    image = load_images([args.image], model, args.resize)  # (1, 3, H, W)
    concept = model.concept
    out = Path(args.output)
    fig, (ax_img, ax_map) = plt.subplots(1, 2, figsize=(8.5, 3.8),
                                         gridspec_kw={"width_ratios": [1, 1.3]})
    show_image(ax_img, image[0], Path(args.image).name)
    if not concept.is_categorical and concept.dim == 2:
        maps, grid = scene_energy_maps(model, image, args.points,
                                       progress=args.points > 64 and not args.quiet)
        if args.objects == "auto":  # counted by the rule fitted on validation scenes
            row = objects_rows(model, image, [args.image], "auto")[0]
            marks = torch.tensor([o["value"] for o in row["objects"]]).reshape(-1, 2)
            print(objects_text(row))
        else:
            found = refine_basins(model, image, energy_basins(
                maps, grid, args.objects, min_separation=args.separation))
            marks = found.points[0, : int(found.found[0])]
        plot_energy_map(ax_map, maps[0], concept, marks=marks,
                        title=f"E(x | {concept.name}) over {args.points}x{args.points} grid")
        for k, p in enumerate(marks.tolist() if args.objects != "auto" else []):
            print(f"basin {k + 1}: {concept.name} = ({p[0]:+.3f}, {p[1]:+.3f})   "
                  f"(energy {float(found.energy[0, k]):.4g})")
        calibration = model.record.get("energy_calibration")
        if args.objects != "auto" and calibration and not bool(object_found(
                calibration, found.energy[:1, 0], contrast=maps[0].max() - maps[0].min())[0]):
            _warn(f"no object found in {args.image}: its energy is far above, or flatter in "
                  f"{concept.name} than, what real images of the model's training data get; "
                  "the basins mean nothing")
    elif not concept.is_categorical and concept.dim == 1:
        grid = concept_grid(concept, args.points)
        e = energy_map(model, image[0], grid)  # (G,)
        est = infer_concept(model, image)
        plot_energy_curve(ax_map, e, concept, grid, mark=float(est.value[0, 0]),
                          title=f"E(x | {concept.name})")
        print(est.describe(0))
    elif concept.is_categorical:
        est = infer_concept(model, image)
        plot_energy_curve(ax_map, est.energies[0], concept, title=f"E(x | {concept.name})")
        print(est.describe(0))
    else:
        raise CommandError(f"energy-map draws concepts of dim 1 or 2 and categorical ones; "
                           f"{concept.name!r} has dim {concept.dim}")
    save_figure(fig, out, dpi=110)
    print(f"wrote {out}")
    return 0


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CommandError as err:
            print(f"error: conceptebm {args.command}: {err}", file=sys.stderr)
            return 2
    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concept", type=validate.text("a concept name"), default=None,
                   help=f"concept to infer: {', '.join(KNOWN_CONCEPTS)} (default: the model's, "
                        "or position)")
    p.add_argument("--model", type=validate.text("a model name or checkpoint path"),
                   default=None,
                   help="shipped model name or checkpoint path (default: the shipped "
                        "inference model of --concept: position_late_robust for position)")
    p.add_argument("--resize", action="store_true",
                   help="rescale images to the model's input size instead of refusing them")
    validate.add_threads(p)


def _check(args: argparse.Namespace) -> None:
    """What can be refused before a model is loaded or an image read."""
    if args.model is None and args.concept is not None and args.concept not in KNOWN_CONCEPTS:
        raise CommandError(f"--concept: unknown concept {args.concept!r}; known concepts: "
                           f"{', '.join(KNOWN_CONCEPTS)} (or pass --model PATH of a checkpoint)")
    if args.model is not None and looks_like_path(args.model) and not Path(args.model).exists():
        raise CommandError(f"--model {args.model}: model checkpoint not found")
    if getattr(args, "output", None) is not None:
        check_output(args)
    if getattr(args, "save", None):
        if not args.posterior:
            raise CommandError("--save writes the posterior draws: add --posterior")


IMAGE = validate.existing_file(what="image file")


def register(sub) -> None:
    p = sub.add_parser("infer", help="infer a concept (position, color, ...) from image files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", type=IMAGE_OR_FOLDER, metavar="IMAGE",
                   help="PNG/JPEG files, or folders of them (their files in sorted order)")
    p.add_argument("-o", "--output", type=OUTPUT, default=None, metavar="OUT.jsonl",
                   help="with --separate: write one JSON line per image as it goes (path, "
                        "value, energy, object_found, flags); a rerun skips images already "
                        "there; under torchrun --nproc-per-node N each process takes every "
                        "N-th image and rank 0 merges one sorted file")
    _common(p)
    p.add_argument("--separate", action="store_true",
                   help="infer each image on its own (default: several images are views of "
                        "one object and their energies add, eq. 11)")
    p.add_argument("--posterior", action="store_true",
                   help="add a credible interval (NUTS) or the category probabilities")
    p.add_argument("--level", type=validate.real(0, 1, low_open=True, high_open=True),
                   default=0.9, help="interval probability, in (0, 1) (0.9)")
    p.add_argument("--samples", type=validate.integer(1, 100_000), default=1000,
                   help="posterior draws per chain after warm-up (1000)")
    p.add_argument("--warmup", type=validate.integer(0, 100_000), default=500,
                   help="warm-up steps per chain, step sizes adapted then dropped (500)")
    p.add_argument("--chains", type=validate.integer(1, 64), default=4,
                   help="chains, started apart so that R-hat can compare them (4)")
    p.add_argument("--sampler", choices=("mala", "nuts"), default="mala",
                   help="mala: the engine's MALA, every chain in one batch, per-chain step "
                        "sizes (default); nuts: Pyro's NUTS, one chain after the other, with "
                        "divergences and tree depths")
    p.add_argument("--save", type=validate.output_file((".nc",), what="netCDF"), default=None,
                   metavar="PATH.nc",
                   help="write the posterior as ArviZ netCDF (arviz.from_netcdf; needs "
                        "pip install 'conceptebm[posterior]'); several sets: PATH-1.nc, ...")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (shown on a terminal only)")
    p.add_argument("--seed", type=validate.SEED, default=0, help="sampler seed (0)")
    p.add_argument("--posterior-temperature", dest="temperature",
                   type=validate.real(MIN_TEMPERATURE, MAX_TEMPERATURE), default=None,
                   help="posterior ∝ exp(-E / T), T in [1e-6, 1e3] (default: the model's "
                        "record's posterior_temperature, fitted on its validation images by "
                        "scenes.fit_temperature; 1 where it has none)")
    p.add_argument("--grid", type=validate.integer(MIN_GRID, MAX_GRID), default=None,
                   help=f"MAP start grid, points per coordinate, {MIN_GRID}-{MAX_GRID} (default: "
                        "the model's, chosen on validation images and stored in its record "
                        "by `conceptebm calibrate --map-grid`; else 17 for a position; from "
                        f"fewer than {MIN_GRID} Adam starts outside the object's basin)")
    p.add_argument("--map-steps", dest="steps", type=validate.integer(0, 10_000), default=None,
                   help="Adam refinement steps of the MAP estimate, 0-10000 (default: the "
                        "model's stored MAP settings, else 60)")
    p.add_argument("--objects", type=OBJECTS, default=None,
                   help="find several objects in each image: 'auto' counts them (the rule "
                        "fitted on validation scenes; 'no object found' for none), K takes "
                        "the K lowest basins of its energy map")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    validate.add_deprecated(p, "--steps", "--map-steps", command="infer")
    validate.add_deprecated(p, "--temperature", "--posterior-temperature", command="infer")
    p.set_defaults(func=_guarded(_infer), check=_check)

    m = sub.add_parser("energy-map", help="plot E(x | concept) over the concept for one image",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("image", type=IMAGE, metavar="IMAGE", help="a PNG/JPEG file")
    m.add_argument("-o", "--output", type=validate.output_file(), default="energy_map.png",
                   help="image to write (.png, .jpg, .pdf, .svg)")
    _common(m)
    m.add_argument("--points", type=validate.integer(MIN_POINTS, MAX_POINTS), default=48,
                   help=f"grid points per coordinate, {MIN_POINTS}-{MAX_POINTS} (48)")
    m.add_argument("--objects", type=OBJECTS, default=1,
                   help="mark this many separated basins (2 for a two-object scene), or "
                        "'auto': count the objects (the rule fitted on validation scenes)")
    m.add_argument("--separation", type=validate.real(0, 2), default=0.3,
                   help="minimum distance between marked basins, in [0, 2] (0.3)")
    validate.add_quiet(m)
    m.set_defaults(func=_guarded(_energy_map), check=_check)

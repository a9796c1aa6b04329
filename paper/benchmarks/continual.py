"""Continual learning (paper section 4.3, Table 2, Figure 8): EBMs stage by stage against a GAN.

    OMP_NUM_THREADS=1 python -m paper.benchmarks.continual --threads 1 --train-only
    OMP_NUM_THREADS=1 python -m paper.benchmarks.continual --threads 1 --eval-only \
        --test-seed 20261207 --json paper/results/continual.json
    python -m paper.benchmarks.continual --quick --json out/continual_quick.json --out-dir /tmp/c

Stage 1 trains a position EBM on purple cubes; stage 2 a shape EBM (cube / sphere) inside a
sampler that also sums the frozen stage-1 EBM; stage 3 a colour EBM with both frozen. After
each stage, 500 generations from the conjunction of the EBMs so far, at random held-out
targets, are read by the shipped judges. A conditional GAN trained on the same three
datasets in sequence is judged on the same targets: ``gan.`` is conditioned on every concept
seen so far (the labels the EBMs read), ``gan_paper.`` on the stage's own concept only (the
paper's baseline). See :mod:`paper.experiments.continual` for the protocol.

Resumable: stage checkpoints in ``--out-dir`` are reused, an interrupted EBM stage resumes
from ``--run-dir``. JSON keys (flat): ``ebm.stage1.position``, ``ebm.stage2.position``,
``ebm.stage2.shape``, ``ebm.stage3.{position,shape,color}``, the same for
``ebm_calibrated.`` (the conjunction weighted as ``conceptebm sample`` weights it),
``ebm_selected.`` (the calibration power, chain length and start chosen on validation targets,
judged on the test targets; ``.power``, ``.steps``, ``.from_previous`` (1: the chains continue
the stage before's generations), and every tried one's validation scores under
``ebm_selected.stageK.valid.p<power>.s<steps>[.previous].``), ``gan.`` and ``gan_paper.``,
each with a ``.se`` twin (binomial standard error), ``<model>.stageK.all`` (every judged concept
right in the same image; EBM rows), ``<model>.stageK.shape_reader2`` (shape as a second reader, the
shipped shape EBM, reads it), ``real.stageK.*`` (the readers on the targets' real scenes),
``<model>.stageK.minutes``
(training minutes of that stage), ``<model>.stageK.object_rate``, ``paper.*`` (Table 2),
``command``, ``n``, ``protocol`` (what was chosen on which seeds; the test seed).
Realism: ``<model>.stageK.fid`` (Fréchet distance to the targets' own renders in the judges'
features) and ``real.stageK.fid_floor`` (real vs real, same n). ``ebm_denoised.`` is
``ebm_selected`` ended with the noise-free steps chosen on validation by FID
(``.denoise_steps``; every candidate's validation scores under ``.valid.d<steps>.``).
GAN stages: ``.budget_minutes``, ``.ebm_minutes``, ``.trained_minutes`` (process CPU minutes),
``.ratio_to_ebm``, ``.steps``, ``.selected_step`` (the snapshot kept on validation) and its
``.valid.*`` scores. ``<model>.stageK.reads.<asked>.<read>``: how the judges read the shape
of the generations asked for each shape.

The GAN trains each stage for the EBM stage's training minutes in CPU time (``--gan-ratio``),
so ``--train-only`` takes about 13 + 2 x (11.4 + 32.8) CPU minutes for both variants.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from paper.experiments.continual import (
    EVAL_SEED,
    GAN_VARIANTS,
    JUDGED,
    ContinualSettings,
    plot_accuracy,
    plot_figure8,
    run_continual,
    train_ebm_stage,
    train_gan_stage,
    write_json,
)

#: Table 2 of the paper: (model, stage, concept) -> accuracy
PAPER = {"ebm.stage1.position": 0.901, "ebm.stage2.position": 0.813, "ebm.stage2.shape": 0.743,
         "ebm.stage3.position": 0.781, "ebm.stage3.shape": 0.703, "ebm.stage3.color": 0.521,
         "gan.stage1.position": 0.941, "gan.stage2.position": 0.111, "gan.stage2.shape": 0.977,
         "gan.stage3.position": 0.117, "gan.stage3.shape": 0.476, "gan.stage3.color": 0.984}


def protocol(settings: ContinualSettings) -> dict:
    """The JSON's ``protocol``: what was chosen on which seeds, and the test seed read once."""
    return {"selection": "the EBMs' checkpoints (in-loop judge score on held-out training "
                         "scenes), each stage's composition (calibration power, chain start) "
                         "and each GAN stage's snapshot are chosen by the share of generations "
                         f"right on every judged concept at once on {settings.n_select} "
                         "validation targets (scene seed selection_seeds[0]; calibration gaps "
                         "on real scenes of selection_seeds[1]); the test targets are read "
                         "once, after every choice",
            "selection_seeds": settings.selection_seeds(),
            "test_seeds": [settings.test_scene_seed()]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny nets, a few steps (seconds)")
    p.add_argument("--json", help="write the flat metrics here")
    p.add_argument("--out-dir", default=None,
                   help="stage checkpoints (default paper/checkpoints/continual)")
    p.add_argument("--run-dir", default=None, help="full training runs (default runs/continual)")
    p.add_argument("--figure", default=None,
                   help="Figure 8 PNG (default paper/figures/continual.png; "
                        "--quick: OUT_DIR/continual_quick.png); Table 2 as bars goes beside it "
                        "as <name>_accuracy.png")
    p.add_argument("--n", type=int, default=None, help="generations judged per stage (500)")
    p.add_argument("--minutes-per-stage", type=float, default=None,
                   help="time limit of each EBM stage (13)")
    p.add_argument("--gan-minutes", type=float, default=None,
                   help="GAN CPU minutes per stage (default: each EBM stage's training minutes "
                        "times --gan-ratio)")
    p.add_argument("--gan-ratio", type=float, default=None,
                   help="GAN budget / EBM training time, per stage (1.0)")
    p.add_argument("--gan-variants", default=None,
                   help="comma-separated GAN variants to train and judge, in this order "
                        f"(default {','.join(GAN_VARIANTS)})")
    p.add_argument("--test-seed", type=int, default=None,
                   help=f"scene seed of the test targets (default {EVAL_SEED} + --seed); "
                        "must not be a validation seed")
    p.add_argument("--train-only", action="store_true",
                   help="train the missing stages (EBM, then the GAN variants) and stop")
    p.add_argument("--eval-only", action="store_true",
                   help="judge the committed stages only: train nothing (a GAN variant stops "
                        "at its first stage without a checkpoint)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.test_seed is not None:
        valid = ContinualSettings(seed=args.seed).selection_seeds()
        if args.test_seed < 0 or args.test_seed in valid:
            p.error(f"--test-seed must be >= 0 and differ from the selection seeds {valid}, "
                    f"got {args.test_seed}")
    if args.gan_ratio is not None and not (math.isfinite(args.gan_ratio) and args.gan_ratio > 0):
        p.error(f"--gan-ratio must be a number > 0, got {args.gan_ratio}")
    variants = None
    if args.gan_variants is not None:
        variants = tuple(v.strip() for v in args.gan_variants.split(",") if v.strip())
        bad = [v for v in variants if v not in GAN_VARIANTS]
        if bad or not variants or len(set(variants)) != len(variants):
            p.error(f"--gan-variants must be distinct names among {GAN_VARIANTS}, got "
                    f"{args.gan_variants!r}")
    if args.n is not None and args.n < 2:
        p.error(f"--n must be >= 2 (standard errors), got {args.n}")
    for name in ("minutes_per_stage", "gan_minutes"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            p.error(f"--{name.replace('_', '-')} must be a number > 0, got {value}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    make = ContinualSettings.quick_settings if args.quick else ContinualSettings
    settings = make(seed=args.seed)
    if args.out_dir:
        settings.out_dir = args.out_dir
    settings.run_dir = args.run_dir or (os.path.join(settings.out_dir, "runs") if args.quick
                                        and args.out_dir else settings.run_dir)
    if args.n:
        settings.n_eval = args.n
    if args.minutes_per_stage:
        settings.common = {**settings.common, "time_limit_min": args.minutes_per_stage}
    if args.gan_minutes:
        settings.gan_minutes = args.gan_minutes
    if args.gan_ratio:
        settings.gan_budget_ratio = args.gan_ratio
    if variants:
        settings.gan_variants = variants
    settings.test_seed = args.test_seed
    if args.eval_only and args.train_only:
        p.error("--eval-only and --train-only exclude each other")
    settings.train_missing = not args.eval_only
    command = " ".join(["OMP_NUM_THREADS=1 python -m paper.benchmarks.continual",
                        *(sys.argv[1:] if argv is None else argv)])
    t0 = time.time()
    if args.train_only:
        for k in (1, 2, 3):
            train_ebm_stage(k, settings, command=command)
        for variant in settings.gan_variants:
            for k in (1, 2, 3):
                _, rec = train_gan_stage(k, variant, settings, command=command,
                                         log=lambda s: print(s, flush=True))
                b = rec.get("budget", {})
                print(f"gan {variant} stage {k}: {'reused' if rec['reused'] else 'trained'}, "
                      f"{b.get('trained_minutes', float('nan')):.1f} {b.get('clock', '')} "
                      f"minutes (EBM {b.get('ebm_minutes') or float('nan'):.1f}), "
                      f"{rec['steps']} steps; kept step "
                      f"{rec.get('selection', {}).get('chosen', {}).get('step')}", flush=True)
        print(f"{(time.time() - t0) / 60:.1f} min in all")
        return 0
    result = run_continual(settings, command=command, log=lambda s: print(s, flush=True))
    m = result.metrics

    models = [k for k in ("ebm", "ebm_calibrated", "ebm_selected", "gan", "gan_paper")
              if f"{k}.stage1.position" in m]
    header = "| model | stage 1: position | stage 2: position, shape | stage 3: position, " \
             "shape, color | minutes per stage |"
    print(header)
    print("|---|---|---|---|---|")
    for model in [*models, "paper ebm", "paper gan"]:
        cells = []
        for k in (1, 2, 3):
            if model.startswith("paper"):
                key = model.split()[1]
                cells.append(", ".join(f"{PAPER[f'{key}.stage{k}.{c}']:.3f}" for c in JUDGED[k]))
            else:
                cells.append(", ".join(f"{m[f'{model}.stage{k}.{c}']:.3f} +- "
                                       f"{m[f'{model}.stage{k}.{c}.se']:.3f}"
                                       if f"{model}.stage{k}.{c}" in m else "not trained"
                                       for c in JUDGED[k]))
        minutes = ("" if f"{model}.stage1.minutes" not in m else
                   " / ".join(f"{m[f'{model}.stage{k}.minutes']:.1f}" for k in (1, 2, 3)
                              if f"{model}.stage{k}.minutes" in m))
        print(f"| {model} | " + " | ".join(cells) + f" | {minutes} |")
    if "ebm_selected.stage1.position" in m:
        print("chosen on validation: " + "; ".join(
            f"stage {k}: power {m[f'ebm_selected.stage{k}.power']:g}, "
            f"{m[f'ebm_selected.stage{k}.steps']} steps"
            + (" from the stage before's images" if m.get(f"ebm_selected.stage{k}.from_previous")
               else " from noise") for k in (1, 2, 3)))
        print("every concept right in one image (all): " + "; ".join(
            f"{model} " + " / ".join(f"{m[f'{model}.stage{k}.all']:.3f}" for k in (1, 2, 3))
            for model in ("ebm", "ebm_calibrated", "ebm_selected")
            if f"{model}.stage3.all" in m))
    print("shape as the second reader (the shipped shape EBM) reads it, stage 2 / 3: " + "; ".join(
        f"{model} " + " / ".join(f"{m[f'{model}.stage{k}.shape_reader2']:.3f}" for k in (2, 3)
        if f"{model}.stage{k}.shape_reader2" in m)
        for model in (*models, "real") if f"{model}.stage2.shape_reader2" in m)
        + "; the judges on the real scenes: " + " / ".join(
            f"{m[f'real.stage{k}.shape']:.3f}" for k in (2, 3) if f"real.stage{k}.shape" in m))

    figure = args.figure or (os.path.join(settings.out_dir, "continual_quick.png") if args.quick
                             else "paper/figures/continual.png")
    plot_figure8(result, figure)
    accuracy = Path(figure).with_name(Path(figure).stem + "_accuracy.png")  # Table 2 as bars
    plot_accuracy(m, accuracy, paper=PAPER)
    print(f"figures: {figure}, {accuracy}; {(time.time() - t0) / 60:.1f} min in all")
    for model in ("gan", "gan_paper"):
        if f"{model}.stage2.ratio_to_ebm" in m:
            print(f"{model} budget ({settings.gan_clock} minutes, GAN / EBM): " + "; ".join(
                f"stage {k} {m[f'{model}.stage{k}.trained_minutes']:.1f} / "
                f"{m[f'{model}.stage{k}.ebm_minutes']:.1f} = "
                f"{m[f'{model}.stage{k}.ratio_to_ebm']:.2f}" for k in (1, 2, 3)
                if f"{model}.stage{k}.ratio_to_ebm" in m))
    if args.json:
        write_json(m, args.json, command=command, n=settings.n_eval,
                   protocol=protocol(settings),
                   settings=settings.to_dict(), paths=result.paths,
                   **{f"paper.{k}": v for k, v in PAPER.items()})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

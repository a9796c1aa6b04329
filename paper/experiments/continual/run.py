"""The whole continual protocol, its Figure 8 and its JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import Tensor

from conceptebm.checkpoints import atomic_write_text
from conceptebm.evaluate import load_judges
from conceptebm.evaluate.metrics import score_generations
from conceptebm.evaluate.realism import realism
from conceptebm.plotting import save_figure
from paper.experiments.continual.readers import _flat, _second_reading
from paper.experiments.continual.selection import (
    evaluate_ebm,
    select_denoise,
    stage_images,
    stage_selection,
)
from paper.experiments.continual.settings import (
    JUDGED,
    STAGES,
    ContinualResult,
    ContinualSettings,
    _ebm_path,
    _gan_path,
    _stage_dataset,
    eval_targets,
    gan_given,
)
from paper.experiments.continual.training import evaluate_gan, train_ebm_stage, train_gan_stage

__all__ = ["run_continual", "plot_figure8", "plot_accuracy", "ACCURACY_MODELS",
           "write_json"]


def run_continual(settings: ContinualSettings, *, command: str = "", progress: bool = False,
                  log=None) -> ContinualResult:
    """The whole protocol: three EBM stages, the GAN variants' stages, all judged.
    ``log`` (e.g. ``print``) receives a line per finished stage."""
    say = log or (lambda *_: None)
    judge = load_judges()
    metrics, samples, paths, fids = {}, {}, {}, {}
    ebm_paths = []
    for k in (1, 2, 3):
        t0 = time.time()
        if not settings.train_missing and not _ebm_path(settings, k).exists():
            raise FileNotFoundError(f"EBM stage {k}'s checkpoint {_ebm_path(settings, k)} is "
                                    "missing and train_missing is off; train it first")
        rec = train_ebm_stage(k, settings, command=command, progress=progress)
        ebm_paths.append(rec["path"])
        paths[f"ebm.stage{k}"] = rec["path"]
        targets = eval_targets(k, settings.n_eval, scene_seed=settings.test_scene_seed())
        # the readers on the real scenes the targets come from: what a perfect generator gets
        real, _ = _stage_dataset(STAGES[k - 1], settings.n_eval, settings.test_scene_seed(),
                                 32).batch(torch.arange(settings.n_eval))
        with torch.no_grad():
            metrics.update(_flat(f"real.stage{k}", score_generations(judge, real, targets,
                                                                    joint=True), JUDGED[k]))
        metrics.update(_second_reading(f"real.stage{k}", real, targets))
        # realism: generated vs the targets' own renders (judges' features), floor real vs real
        real2 = _stage_dataset(STAGES[k - 1], 2 * settings.n_eval, settings.test_scene_seed(),
                               32).batch(torch.arange(2 * settings.n_eval))[0]

        def fid(prefix: str, images: Tensor, k: int = k, real2: Tensor = real2) -> None:
            r = realism(images, real2, judges=judge)
            metrics[f"{prefix}.stage{k}.fid"] = r["fid"]
            metrics[f"real.stage{k}.fid_floor"] = r["fid_floor"]

        fids[k] = fid
        m, images = evaluate_ebm(ebm_paths, targets, judge, seed=settings.seed)
        metrics.update(_flat(f"ebm.stage{k}", m, JUDGED[k]))
        metrics.update(_second_reading(f"ebm.stage{k}", images, targets))
        fid("ebm", images)
        metrics[f"ebm.stage{k}.minutes"] = rec["minutes"]
        metrics[f"ebm.stage{k}.eval_minutes"] = (time.time() - t0) / 60 - (
            0 if rec["reused"] else rec["minutes"])  # generation + judging (+ loading)
        samples[("ebm", k)] = (images[:32], {c: v[:32] for c, v in targets.items()})
        say(f"ebm stage {k}: " + ", ".join(f"{c} {metrics[f'ebm.stage{k}.{c}']:.3f}"
                                           for c in JUDGED[k]) + f" ({rec['minutes']:.1f} min)")
        if settings.calibration_power is not None:
            if k == 1:  # one model: its weight is 1, the raw numbers are the calibrated ones
                metrics.update({key.replace("ebm.", "ebm_calibrated.", 1): v
                                for key, v in metrics.items()
                                if key.startswith("ebm.stage1.") and "minutes" not in key})
            else:
                m, images = evaluate_ebm(ebm_paths, targets, judge, seed=settings.seed,
                                    calibration_power=settings.calibration_power)
                metrics.update(_flat(f"ebm_calibrated.stage{k}", m, JUDGED[k]))
                metrics.update(_second_reading(f"ebm_calibrated.stage{k}", images, targets))
                fid("ebm_calibrated", images)
            say(f"ebm calibrated stage {k}: " + ", ".join(
                f"{c} {metrics[f'ebm_calibrated.stage{k}.{c}']:.3f}" for c in JUDGED[k]))
        if settings.select_powers is not None:
            t1 = time.time()
            chosen = stage_selection(k, settings, judge)
            for key, accs in chosen["valid"].items():
                metrics.update({f"ebm_selected.stage{k}.valid.{key}.{n.removesuffix('_acc')}": v
                                for n, v in accs.items() if n.endswith("_acc")})
            images = stage_images(k, settings, targets, judge)
            with torch.no_grad():
                m = score_generations(judge, images, targets, joint=True)
            metrics.update(_flat(f"ebm_selected.stage{k}", m, JUDGED[k]))
            metrics.update(_second_reading(f"ebm_selected.stage{k}", images, targets))
            fid("ebm_selected", images)
            metrics.update(_shape_reads(f"ebm_selected.stage{k}", images, targets, judge))
            metrics[f"ebm_selected.stage{k}.power"] = chosen["power"]
            metrics[f"ebm_selected.stage{k}.steps"] = chosen["steps"]
            start = chosen["start"]
            metrics[f"ebm_selected.stage{k}.from_previous"] = float(start == "previous")
            metrics[f"ebm_selected.stage{k}.select_minutes"] = (time.time() - t1) / 60
            samples[("ebm_selected", k)] = (images[:32], {c: v[:32] for c, v in targets.items()})
            if settings.denoise_candidates:  # noise-free steps, chosen on validation by FID
                den = select_denoise(k, settings, judge, candidates=settings.denoise_candidates)
                d = den["denoise_steps"]
                metrics[f"ebm_denoised.stage{k}.denoise_steps"] = d
                metrics[f"ebm_denoised.valid.stage{k}.fid_floor"] = den["fid_floor"]
                for cand, scores in den["valid"].items():
                    metrics.update({f"ebm_denoised.stage{k}.valid.d{cand}.{n}": v
                                    for n, v in scores.items()})
                if d:
                    images = stage_images(k, settings, targets, judge, denoise_steps=d)
                    with torch.no_grad():
                        m = score_generations(judge, images, targets, joint=True)
                else:  # no noise-free steps chosen: the selected row itself
                    m = score_generations(judge, images, targets, joint=True)
                metrics.update(_flat(f"ebm_denoised.stage{k}", m, JUDGED[k]))
                metrics.update(_second_reading(f"ebm_denoised.stage{k}", images, targets))
                fid("ebm_denoised", images)
                say(f"ebm denoised stage {k} ({d} noise-free steps, chosen on validation FID "
                    + ", ".join(f"d{c} {v['fid']:.2f}" for c, v in den["valid"].items())
                    + f"): fid {metrics[f'ebm_denoised.stage{k}.fid']:.2f}")
            say(f"ebm selected stage {k} (power {chosen['power']:g}, {chosen['steps']} steps, "
                f"from {start}): "
                + ", ".join(f"{c} {metrics[f'ebm_selected.stage{k}.{c}']:.3f}"
                            for c in JUDGED[k]))
    for variant in settings.gan_variants:
        prefix = "gan" if variant == "all" else f"gan_{variant}"
        for k in (1, 2, 3):
            if k == 1 and variant != settings.gan_variants[0]:
                first = "gan" if settings.gan_variants[0] == "all" else \
                    f"gan_{settings.gan_variants[0]}"
                metrics.update({key.replace(first, prefix, 1): v for key, v in metrics.items()
                                if key.startswith(f"{first}.stage1.")})
                samples[(prefix, 1)] = samples[(first, 1)]  # the same stage-1 GAN
                paths[f"{prefix}.stage1"] = paths[f"{first}.stage1"]
                continue
            if not settings.train_missing and not _gan_path(settings, k, variant).exists():
                say(f"{prefix} stage {k}: no checkpoint, not trained (train_missing off); "
                    "its later stages are skipped too")
                break
            gan, rec = train_gan_stage(k, variant, settings, command=command, judge=judge)
            paths[f"{prefix}.stage{k}"] = rec["path"]
            targets = eval_targets(k, settings.n_eval, scene_seed=settings.test_scene_seed())
            m, images = evaluate_gan(gan, gan_given(k, variant), targets, judge,
                                     seed=settings.seed)
            metrics.update(_flat(f"{prefix}.stage{k}", m, JUDGED[k]))
            metrics.update(_second_reading(f"{prefix}.stage{k}", images, targets))
            fids[k](prefix, images)
            metrics.update(_shape_reads(f"{prefix}.stage{k}", images, targets, judge))
            metrics[f"{prefix}.stage{k}.minutes"] = rec["minutes"]
            metrics[f"{prefix}.stage{k}.steps"] = rec["steps"]
            budget, chosen = rec.get("budget", {}), rec.get("selection", {}).get("chosen", {})
            for key in ("budget_minutes", "ebm_minutes", "trained_minutes", "ratio_to_ebm",
                        "cpu_minutes"):
                if budget.get(key) is not None:
                    metrics[f"{prefix}.stage{k}.{key}"] = budget[key]
            if chosen:  # the snapshot kept, and its validation scores
                metrics[f"{prefix}.stage{k}.selected_step"] = chosen["step"]
                metrics.update({f"{prefix}.stage{k}.valid.{c}": chosen[c]
                                for c in (*JUDGED[k], "all") if c in chosen})
            samples[(prefix, k)] = (images[:32], {c: v[:32] for c, v in targets.items()})
            say(f"{prefix} stage {k}: " + ", ".join(
                f"{c} {metrics[f'{prefix}.stage{k}.{c}']:.3f}" for c in JUDGED[k])
                + f" ({rec['minutes']:.1f} min, {rec['steps']} steps)")
    metrics = {k: v for k, v in metrics.items() if v is not None}
    return ContinualResult(metrics=metrics, samples=samples, paths=paths)


def _shape_reads(prefix: str, images: Tensor, targets: dict, judge) -> dict:
    """How the judges read the shape of generations asked for each shape:
    ``{prefix}.reads.<asked>.<read>`` (fractions over the generations asked for ``asked``;
    ``read`` is any of the judges' shapes, or ``none`` when no object was found): whether a
    generator follows the shape it is given, or draws one shape whatever it is asked."""
    from conceptebm.datasets import scene_concepts
    from conceptebm.evaluate.metrics import object_present

    if "shape" not in targets:
        return {}
    values = scene_concepts()["shape"].values
    with torch.no_grad():
        read = judge.predict(images)["shape"]
    present = object_present(images)
    out = {}
    for asked in sorted(set(targets["shape"].tolist())):
        mask = targets["shape"] == asked
        for i, name in enumerate(values):
            out[f"{prefix}.reads.{values[asked]}.{name}"] = float(
                ((read == i) & present)[mask].float().mean())
        out[f"{prefix}.reads.{values[asked]}.none"] = float((~present[mask]).float().mean())
    return out


def _target_text(targets: dict, i: int) -> str:
    from conceptebm.datasets import scene_concepts

    concepts = scene_concepts()
    parts = []
    for c, v in targets.items():
        if c == "position":
            parts.append(f"({v[i, 0]:.1f},{v[i, 1]:.1f})")
        else:
            parts.append(concepts[c].values[int(v[i])])
    return "\n".join(parts)


def _show(targets: dict, m: int) -> Tensor:
    """Indices of ``m`` samples to show: shapes alternating where the stage has them (the
    first targets are otherwise often all cubes), else the first ``m``."""
    n = len(next(iter(targets.values())))
    if "shape" not in targets:
        return torch.arange(min(m, n))
    by = [torch.nonzero(targets["shape"] == v).flatten().tolist()
          for v in sorted(set(targets["shape"].tolist()))]
    order = [i for group in zip(*by, strict=False) for i in group]
    order += [i for i in range(n) if i not in order]
    return torch.tensor(order[:m])


def plot_figure8(result: ContinualResult, path, *, per_row: int = 4,
                 models: tuple[str, ...] = ("ebm", "ebm_selected", "gan", "gan_paper")
                 ) -> Path:
    """Figure 8: a row per stage, ``per_row`` samples of each model side by side, each
    titled with its target (position, shape, colour as far as the stage knows them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = tuple(m for m in models if (m, 1) in result.samples)
    cols = per_row * len(models)
    fig, axes = plt.subplots(3, cols, figsize=(1.15 * cols, 3 * 1.7), squeeze=False)
    for r, k in enumerate((1, 2, 3)):
        for mi, model in enumerate(models):
            if (model, k) not in result.samples:  # a stage not trained
                for j in range(per_row):
                    ax = axes[r, mi * per_row + j]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.axis("off") if j else ax.set_ylabel(f"stage {k}\n{model.upper()}\n"
                                                           "(not trained)", fontsize=7)
                continue
            images, targets = result.samples[(model, k)]
            picks = _show(targets, per_row)
            images, targets = images[picks], {c: v[picks] for c, v in targets.items()}
            for j in range(per_row):
                ax = axes[r, mi * per_row + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(images):
                    ax.imshow(images[j].permute(1, 2, 0).clamp(0, 1).numpy(),
                              interpolation="nearest")
                    ax.set_title(_target_text(targets, j), fontsize=6)
                if j == 0:
                    ax.set_ylabel(f"stage {k}\n{model.upper()}", fontsize=7)
    names = {"ebm": "EBM (conjunction of the stages' EBMs)",
             "ebm_selected": "the same, composed as chosen on validation",
             "gan": "GAN given all labels so far",
             "gan_paper": "GAN given the stage's concept (paper)"}
    fig.suptitle("Continual learning (Figure 8): stage 1 position, stage 2 + shape, "
                 "stage 3 + colour; titles are the targets\n"
                 + " | ".join(names.get(m, m) for m in models), fontsize=8)
    return save_figure(fig, path, dpi=110)


#: the rows :func:`plot_accuracy` draws by default, and their legend names
ACCURACY_MODELS = {"ebm_selected": "EBM (composed as chosen on validation)",
                   "gan": "GAN given all labels so far",
                   "gan_paper": "GAN given the stage's concept (paper)"}


def plot_accuracy(metrics: dict, path, *, paper: dict | None = None,
                  models: dict | None = None) -> Path:
    """Table 2 as a figure: a panel per stage, a group of bars per judged concept, one bar per
    model (accuracy +- its standard error), with the paper's numbers drawn as targets over each
    group (``paper``: flat keys like ``"ebm.stage3.position"``; its ``ebm.*`` values as black
    ticks over the first EBM row, the target; its ``gan.*`` values as crosses over
    ``gan_paper``, the paper's baseline).

    Example:
        >>> import tempfile
        >>> m = {f"ebm_selected.stage{k}.{c}{s}": 0.8 if not s else 0.02
        ...      for k in (1, 2, 3) for c in JUDGED[k] for s in ("", ".se")}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     out = plot_accuracy(m, f"{d}/t2.png", paper={"ebm.stage1.position": 0.9},
        ...                         models={"ebm_selected": "EBM"})
        ...     out.stat().st_size > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {k: v for k, v in (models or ACCURACY_MODELS).items()
              if f"{k}.stage1.position" in metrics}
    paper = paper or {}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 2, 3]},
                             sharey=True)
    width = 0.8 / max(len(models), 1)
    slot = {m: j for j, m in enumerate(models)}
    # each paper row is drawn over the bar it is compared with: the EBM's over the first EBM
    # row, the paper's GAN over ours given the stage's concept alone (the paper's baseline)
    over = {"ebm": next((m for m in models if m.startswith("ebm")), None),
            "gan": "gan_paper" if "gan_paper" in models else
            next((m for m in models if m.startswith("gan")), None)}
    for ax, k in zip(axes, (1, 2, 3), strict=True):
        for i, c in enumerate(JUDGED[k]):
            for j, (model, name) in enumerate(models.items()):
                x = i - 0.4 + width * (j + 0.5)
                if f"{model}.stage{k}.{c}" not in metrics:  # a stage not trained
                    continue
                ax.bar(x, metrics[f"{model}.stage{k}.{c}"], width,
                       yerr=metrics.get(f"{model}.stage{k}.{c}.se"), capsize=2,
                       color=f"C{j}", label=name if (k, i) == (3, 0) else None)
            for kind, name, style in (
                    ("ebm", "paper EBM (the target)",
                     dict(color="black", marker="_", markersize=22, mew=2.5)),
                    ("gan", "paper GAN", dict(color="black", marker="x", markersize=7, mew=2))):
                if f"{kind}.stage{k}.{c}" in paper:
                    x = i if over[kind] is None else i - 0.4 + width * (slot[over[kind]] + 0.5)
                    ax.plot([x], [paper[f"{kind}.stage{k}.{c}"]], linestyle="none", **style,
                            label=name if (k, i) == (3, 0) else None)
        ax.set_xticks(range(len(JUDGED[k])), JUDGED[k])
        ax.set_ylim(0, 1.05)
        ax.set_title(f"stage {k}", fontsize=10)
    axes[0].set_ylabel("accuracy (judges)")
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Continual learning (Table 2): accuracy after each stage, the paper's numbers "
                 "as targets", fontsize=9)
    return save_figure(fig, path)


def write_json(metrics: dict, path, **extra) -> Path:
    """Write the flat metrics (and ``extra``, e.g. the command) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**metrics, **extra}, indent=2, sort_keys=True))
    return path

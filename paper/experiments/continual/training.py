"""Training one stage: an EBM beside the frozen earlier ones, or the GAN baseline carried
from the stage before."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from conceptebm.checkpoints import export_weights, load_checkpoint
from conceptebm.evaluate.metrics import score_generations
from conceptebm.train import train
from paper.baselines.gan import ConditionalGAN, fit, load_gan, save_gan
from paper.experiments.continual.selection import frozen_weights
from paper.experiments.continual.settings import (
    EVAL_SEED,
    SELECT_SEED,
    STAGES,
    ContinualSettings,
    _ebm_path,
    _gan_path,
    _stage_dataset,
    eval_targets,
    gan_given,
    stage_config,
    start_config,
)

__all__ = ["train_ebm_stage", "train_gan_stage", "evaluate_gan", "gan_budget_minutes"]


def train_ebm_stage(k: int, settings: ContinualSettings, *, command: str = "",
                    progress: bool = False) -> dict:
    """Train EBM stage ``k`` (or reuse its exported checkpoint) and return its record:
    ``{"path", "minutes", "iteration", "best_iteration", "reused"}``."""
    dest = _ebm_path(settings, k)
    if dest.exists():
        meta = load_checkpoint(dest).meta
        return {"path": str(dest), "minutes": meta["minutes"], "iteration": meta["iteration"],
                "best_iteration": meta["best_iteration"], "reused": True}
    frozen = [str(_ebm_path(settings, j)) for j in range(1, k)]
    missing = [f for f in frozen if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"stage {k} needs the earlier stages' checkpoints {missing}; "
                                "train the stages in order (run_continual does)")
    weights = frozen_weights(k, settings) if settings.train_as_selected else None
    config = stage_config(k, settings, frozen, weights)
    stage = STAGES[k - 1]
    data = _stage_dataset(stage, config.dataset_size, settings.seed, settings.image_size)
    held = _stage_dataset(stage, config.eval_samples, settings.seed + 1_000_003,
                          settings.image_size)
    start_minutes = 0.0
    start = settings.starts[k - 1] if settings.starts else None
    if start is not None:  # a discriminative start: the contrastive objective, no sampler
        sconf = start_config(k, settings, config)
        srun = Path(sconf.out_dir)
        if not (srun / "config.json").exists():  # written when the run ends
            train(sconf, dataset=data, eval_dataset=held, progress=progress,
                  resume=(srun / "last.safetensors").exists())
        start_minutes = float(load_checkpoint(srun / "last.safetensors").meta["elapsed_s"]) / 60
        config = config.replace(init_weights=str(srun / "best.safetensors"))
    run = Path(config.out_dir)
    result = train(config, dataset=data, eval_dataset=held, progress=progress,
                   resume=(run / "last.safetensors").exists())
    last = load_checkpoint(run / "last.safetensors").meta
    best = load_checkpoint(run / "best.safetensors").meta
    minutes = float(last["elapsed_s"]) / 60 + start_minutes
    dest.parent.mkdir(parents=True, exist_ok=True)
    export_weights(run / "best.safetensors", dest, sampler=best["sampler"],
                   minutes=minutes, start_minutes=start_minutes,
                   best_iteration=int(best["iteration"]),
                   trained_iterations=int(last["iteration"]), stopped=result.stopped,
                   metrics=best.get("metrics", {}), command=command,
                   frozen_weights=list(config.frozen_weights),
                   stage=k, dataset=stage.dataset, dataset_options=stage.options)
    return {"path": str(dest), "minutes": minutes, "iteration": int(best["iteration"]),
            "best_iteration": int(best["iteration"]), "reused": False}



def gan_budget_minutes(k: int, settings: ContinualSettings) -> tuple[float, float | None]:
    """``(budget, ebm_minutes)``: GAN stage ``k``'s budget in minutes of
    ``settings.gan_clock``, and the EBM stage's training minutes it was matched to (None when
    ``settings.gan_minutes`` fixes it)."""
    if settings.gan_minutes is not None:
        return float(settings.gan_minutes), None
    path = _ebm_path(settings, k)
    if not path.exists():
        raise FileNotFoundError(f"GAN stage {k} takes EBM stage {k}'s training time as its "
                                f"budget, and {path} is missing; train the EBM stages first "
                                "(run_continual does) or set ContinualSettings.gan_minutes")
    ebm = float(load_checkpoint(path).meta["minutes"])
    return ebm * settings.gan_budget_ratio, ebm


def _gan_state_path(settings: ContinualSettings, k: int, variant: str) -> Path:
    """Where stage ``k``'s selected GAN is kept with its Adam states (the run dir, not
    committed): the next stage goes on from it."""
    return Path(settings.run_dir) / (_gan_path(settings, k, variant).stem + "_state.safetensors")


def _gan_judge(gan: ConditionalGAN, given, targets, judge, seed: int) -> dict:
    metrics, _ = evaluate_gan(gan, given, targets, judge, seed=seed)
    return {name.removesuffix("_acc"): float(m.value) for name, m in metrics.items()
            if name.endswith("_acc") or name == "object_rate"}


def train_gan_stage(k: int, variant: str, settings: ContinualSettings, *,
                    command: str = "", judge=None, log=None) -> tuple[ConditionalGAN, dict]:
    """Fit the GAN of ``variant`` on stage ``k``, going on from its selected stage ``k - 1``
    weights and Adam states (or reuse the stage's checkpoint); returns the GAN and
    ``{"path", "minutes", "steps", "reused", ...}``.

    The stage trains for its budget (:func:`gan_budget_minutes`, of ``settings.gan_clock``);
    every ``settings.gan_check_minutes`` and at the end, a snapshot (weights and Adam states)
    is judged on ``settings.n_select`` validation targets (:data:`SELECT_SEED`, the targets
    the EBMs' composition is chosen on), and the one with the most generations right on every
    judged concept at once is kept: exported to ``out_dir`` (weights) and, with its Adam
    states, to ``run_dir`` (what stage ``k + 1`` starts from)."""
    dest = _gan_path(settings, k, variant)
    if dest.exists():
        gan = load_gan(dest)
        last = gan.stages[-1]
        meta = load_checkpoint(dest).meta
        return gan, {"path": str(dest), "minutes": last["seconds"] / 60,
                     "steps": last["steps"], "reused": True,
                     "budget": meta.get("budget", {}), "selection": meta.get("selection", {})}
    if k == 1:
        gan = ConditionalGAN(seed=settings.seed, **settings.gan_options)
    else:
        prev = _gan_state_path(settings, k - 1, variant)
        if not prev.exists():
            if _gan_path(settings, k - 1, variant).exists():
                raise FileNotFoundError(
                    f"GAN stage {k} goes on from stage {k - 1}'s weights and Adam states "
                    f"({prev}), which are missing (only the weights of "
                    f"{_gan_path(settings, k - 1, variant)} are there); remove that checkpoint "
                    f"to retrain stage {k - 1}, or train in the run dir that holds them")
            train_gan_stage(k - 1, variant, settings, command=command, judge=judge, log=log)
        gan = load_gan(prev)
        if not len(gan.opt_g.state_dict()["state"]):
            raise ValueError(f"{prev} holds no Adam state; GAN stages carry it over")
    if judge is None:
        from conceptebm.evaluate import load_judges

        judge = load_judges()
    budget, ebm_minutes = gan_budget_minutes(k, settings)
    given = gan_given(k, variant)
    valid = eval_targets(k, settings.n_select, seed=SELECT_SEED + settings.seed)
    curve, best = [], {"score": -1.0}

    def on_check(step: int) -> None:  # judge a snapshot on the validation targets
        scores = _gan_judge(gan, given, valid, judge, settings.seed)
        point = {"step": step, "cpu_seconds": time.process_time() - c0, **scores}
        curve.append(point)
        if log is not None:
            log(f"gan {variant} stage {k} step {step} ({point['cpu_seconds'] / 60:.1f} cpu min): "
                + ", ".join(f"{c} {v:.3f}" for c, v in scores.items()))
        if scores["all"] > best["score"]:
            best.update(score=scores["all"], point=point, state=gan.snapshot())

    stage = STAGES[k - 1]
    data = _stage_dataset(stage, 100_000 if not settings.quick else 256, settings.seed,
                          settings.image_size)
    c0 = time.process_time()
    log = fit(gan, data, given=given, steps=settings.gan_steps,
              batch_size=settings.gan_batch, seed=settings.seed * 31 + k,
              time_limit_s=60 * budget, clock=settings.gan_clock,
              check_every_s=60 * settings.gan_check_minutes, on_check=on_check)
    gan.restore(best["state"])
    chosen = best["point"]
    gan.stages[-1]["selected_step"] = chosen["step"]
    spent = log["train_seconds"] / 60
    record = {
        "budget": {"clock": settings.gan_clock, "budget_minutes": budget,
                   "ebm_minutes": ebm_minutes, "trained_minutes": spent,
                   "ratio_to_ebm": None if ebm_minutes is None else spent / ebm_minutes,
                   "cpu_minutes": log["cpu_seconds"] / 60, "wall_minutes": log["seconds"] / 60,
                   "steps": log["steps"]},
        "selection": {"criterion": "generations right on every judged concept at once",
                      "targets": "validation", "scene_seed": EVAL_SEED + SELECT_SEED
                      + settings.seed, "n": settings.n_select, "chosen": chosen,
                      "curve": curve}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_gan(gan, dest, command=command, variant=variant, stage=k, **record,
             d_loss_last=log["d_loss"][-50:], g_loss_last=log["g_loss"][-50:])
    state = _gan_state_path(settings, k, variant)
    state.parent.mkdir(parents=True, exist_ok=True)
    save_gan(gan, state, optimizer=True, variant=variant, stage=k)
    return gan, {"path": str(dest), "minutes": log["seconds"] / 60, "steps": log["steps"],
                 "reused": False, **record}


def evaluate_gan(gan: ConditionalGAN, given, targets: dict[str, Tensor], judge, *,
                 seed: int = 0) -> tuple[dict, Tensor]:
    """One GAN sample per target, conditioned on the ``given`` concepts only, judged on every
    target concept (those not given are scored against the same random targets)."""
    gen = torch.Generator().manual_seed(EVAL_SEED + seed)
    n = len(next(iter(targets.values())))
    images = gan.sample(targets, given, n=n, generator=gen)
    with torch.no_grad():
        metrics = score_generations(judge, images, targets, joint=True)
    return metrics, images

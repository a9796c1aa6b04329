"""Training one stage: an EBM beside the frozen earlier ones, or the GAN baseline carried
from the stage before."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from paper.baselines.gan import ConditionalGAN, fit, load_gan, save_gan
from conceptebm.checkpoints import export_weights, load_checkpoint
from conceptebm.evaluate.metrics import score_generations
from paper.experiments.continual.selection import frozen_weights
from paper.experiments.continual.settings import (
    EVAL_SEED,
    STAGES,
    ContinualSettings,
    _ebm_path,
    _gan_path,
    _stage_dataset,
    gan_given,
    stage_config,
    start_config,
)
from conceptebm.train import train

__all__ = ["train_ebm_stage", "train_gan_stage", "evaluate_gan"]


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



def train_gan_stage(k: int, variant: str, settings: ContinualSettings, *,
                    command: str = "") -> tuple[ConditionalGAN, dict]:
    """Fit the GAN of ``variant`` on stage ``k`` starting from its stage ``k - 1`` weights
    (or reuse the stage's checkpoint); returns the GAN and ``{"path", "minutes", "steps"}``."""
    dest = _gan_path(settings, k, variant)
    if dest.exists():
        gan = load_gan(dest)
        last = gan.stages[-1]
        return gan, {"path": str(dest), "minutes": last["seconds"] / 60,
                     "steps": last["steps"], "reused": True}
    if k == 1:
        gan = ConditionalGAN(seed=settings.seed, **settings.gan_options)
    else:
        prev = _gan_path(settings, k - 1, variant)
        if not prev.exists():
            train_gan_stage(k - 1, variant, settings, command=command)
        gan = load_gan(prev)
    stage = STAGES[k - 1]
    data = _stage_dataset(stage, 100_000 if not settings.quick else 256, settings.seed,
                          settings.image_size)
    log = fit(gan, data, given=gan_given(k, variant), steps=settings.gan_steps,
              batch_size=settings.gan_batch, seed=settings.seed * 31 + k,
              time_limit_s=60 * settings.gan_minutes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_gan(gan, dest, command=command, variant=variant, stage=k,
             d_loss_last=log["d_loss"][-50:], g_loss_last=log["g_loss"][-50:])
    return gan, {"path": str(dest), "minutes": log["seconds"] / 60, "steps": log["steps"],
                 "reused": False}



def evaluate_gan(gan: ConditionalGAN, given, targets: dict[str, Tensor], judge, *,
                 seed: int = 0) -> tuple[dict, Tensor]:
    """One GAN sample per target, conditioned on the ``given`` concepts only, judged on every
    target concept (those not given are scored against the same random targets)."""
    gen = torch.Generator().manual_seed(EVAL_SEED + seed)
    n = len(next(iter(targets.values())))
    images = gan.sample(targets, given, n=n, generator=gen)
    with torch.no_grad():
        metrics = score_generations(judge, images, targets)
    return metrics, images

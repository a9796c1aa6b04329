"""Train the judges on rendered scenes: ``conceptebm train-judges``.

Supervised training of one :class:`~conceptebm.evaluate.judge.JudgeNet` on "general" scenes
(every concept random), fresh renders every step, with the augmentations of
:mod:`conceptebm.evaluate.augment`. Continuous concepts are regressed (smooth L1 on the value
rescaled to [-1, 1]); categorical ones are classified (cross-entropy). Adam with a linear
warm-up and a cosine decay to 0. After training, the judge is scored on held-out renders (a
different seed), clean and with sigma = 0.1 pixel noise, and saved with those metrics, the
exact command and the training time.

Rebuild the shipped judges (a few minutes on one CPU core; a quarter of their training
renders carry grey clutter, so they read the coloured object and ignore the rest)::

    conceptebm train-judges --clutter-frac 0.25 -o conceptebm/pretrained/judges.safetensors

``--smoke`` runs a few steps only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from conceptebm.evaluate.augment import augment
from conceptebm.evaluate.heldout import heldout_metrics, metrics_to_json
from conceptebm.evaluate.judge import Judge, JudgeConfig, JudgeNet, to_unit
from conceptebm.schedules import warmup_cosine

__all__ = ["JudgeTrainConfig", "train_judges"]


@dataclass
class JudgeTrainConfig:
    """Settings of one training run; every field is also a command-line flag."""

    dataset: str = "general"  # make_dataset name; its labels say which concepts are judged
    image_size: int = 32  # render (and judge) resolution
    iterations: int = 2000  # optimizer steps, each on a batch of fresh renders
    batch_size: int = 128
    lr: float = 2e-3  # Adam peak learning rate
    warmup: int = 50  # linear warm-up steps, then cosine decay to 0
    reg_weight: float = 4.0  # weight of the regression losses against the cross-entropies
    noise_frac: float = 0.5  # fraction of each batch given Gaussian pixel noise ...
    noise_max: float = 0.15  # ... with sigma ~ U(0, noise_max): 0.1, the benchmark's, inside
    blur_frac: float = 0.25  # fraction of each batch blurred ...
    blur_max: float = 0.8  # ... with a 3x3 Gaussian of sigma ~ U(0, blur_max) pixels
    clutter_frac: float = 0.0  # fraction of training renders taken from "cluttered" instead
    width: int = 32  # trunk widths are (w, 2w, 2w, 4w)
    hidden: int = 128  # shared fully connected layer
    seed: int = 0  # training renders use this seed; weights and augmentation seed + 1
    eval_size: int = 2000  # held-out renders scored after training
    eval_seed: int = 900_001  # their dataset seed: keep it apart from training seeds
    threads: int = 1  # torch threads (the CPU budget assumes one core)

    def __post_init__(self) -> None:
        for name in ("image_size", "iterations", "batch_size", "width", "hidden", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.clutter_frac <= 1.0:
            raise ValueError(f"clutter_frac must lie in [0, 1], got {self.clutter_frac}")
        if self.warmup < 0 or self.eval_size < 0:
            raise ValueError(f"warmup and eval_size must be >= 0, got {self.warmup}, "
                             f"{self.eval_size}")

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.width, 2 * self.width, 2 * self.width, 4 * self.width)


def _loss(net: JudgeNet, images, labels, reg_weight: float) -> tuple[torch.Tensor, dict]:
    raw = net(images)  # {name: (B, dim)}
    parts = {}
    for c in net.config.concepts:
        y = labels[c.name].to(images.device)
        if c.is_categorical:
            parts[c.name] = F.cross_entropy(raw[c.name], y.long())
        else:
            target = to_unit(c, y.float().reshape(-1, c.dim))  # (B, dim) in [-1, 1]
            parts[c.name] = F.smooth_l1_loss(raw[c.name], target, beta=0.05)
    weights = {c.name: (1.0 if c.is_categorical else reg_weight) for c in net.config.concepts}
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: v.item() for k, v in parts.items()}


class MixedScenes:
    """Two datasets of equal length as one: item ``i`` comes from ``other`` for a fixed
    fraction ``frac`` of indices (a golden-ratio sequence, so a pure function of ``i``)."""

    def __init__(self, base, other, frac: float):
        if len(base) != len(other):
            raise ValueError(f"datasets of different lengths {len(base)} and {len(other)}")
        self.base, self.other, self.frac = base, other, float(frac)
        self.concepts = base.concepts
        self.palette = getattr(base, "palette", None)

    def __len__(self) -> int:
        return len(self.base)

    def batch(self, indices):
        idx = torch.as_tensor(indices).long().reshape(-1)  # (B,)
        pick = (idx.double() * 0.6180339887498949) % 1.0 < self.frac  # (B,) from `other`
        images, labels = None, {}
        for ds, mask in ((self.base, ~pick), (self.other, pick)):
            if not mask.any():
                continue
            x, lab = ds.batch(idx[mask])
            if images is None:
                images = x.new_empty((len(idx), *x.shape[1:]))
            elif labels.keys() != lab.keys():
                raise ValueError(f"label sets differ: {sorted(labels)} vs {sorted(lab)}")
            images[mask] = x
            for k, v in lab.items():
                labels.setdefault(k, v.new_empty((len(idx), *v.shape[1:])))[mask] = v
        return images, labels


def _make(name: str, size: int, seed: int, image_size: int):
    from conceptebm.datasets import make_dataset  # late: the renderer is optional for I/O

    return make_dataset(name, size=size, seed=seed, image_size=image_size)


def train_judges(cfg: JudgeTrainConfig, *, dataset=None, eval_dataset=None, device=None,
                 command: str | None = None, progress: bool = True) -> tuple[Judge, dict]:
    """Train a judge; return it and a report (held-out metrics, time, command).

    ``dataset`` / ``eval_dataset`` default to ``make_dataset(cfg.dataset, ...)`` with
    ``cfg.seed`` / ``cfg.eval_seed``; any object with ``len``, ``.concepts`` and
    ``.batch(indices) -> (images (B,3,H,W), labels)`` works (tests pass a tiny stand-in).
    Concepts judged: those of ``dataset.concepts`` that appear in its labels.
    """
    torch.set_num_threads(cfg.threads)
    n_train = cfg.iterations * cfg.batch_size
    if dataset is None:
        dataset = _make(cfg.dataset, n_train, cfg.seed, cfg.image_size)
        if cfg.clutter_frac > 0:  # grey clutter teaches the judge which object to read
            cluttered = _make("cluttered", n_train, cfg.seed, cfg.image_size)
            dataset = MixedScenes(dataset, cluttered, cfg.clutter_frac)
    elif cfg.clutter_frac > 0:
        raise ValueError("clutter_frac mixes in rendered 'cluttered' scenes; it needs "
                         "dataset=None (mix your own data into the dataset you pass instead)")
    if len(dataset) < cfg.batch_size:
        raise ValueError(f"the training set has {len(dataset)} items, fewer than one batch "
                         f"({cfg.batch_size})")
    _, probe = dataset.batch(torch.arange(1))
    concepts = tuple(c for name, c in dataset.concepts.items() if name in probe)
    extra = {"dataset": cfg.dataset}
    palette = getattr(dataset, "palette", None)
    if isinstance(palette, Mapping):  # the RGB table the colour names refer to
        extra["palette"] = {str(k): [float(c) for c in v] for k, v in palette.items()}
    elif palette is not None:
        extra["palette"] = torch.as_tensor(palette).tolist()
    net_cfg = JudgeConfig(concepts=concepts, image_size=cfg.image_size, widths=cfg.widths,
                          hidden=cfg.hidden, extra=extra)
    torch.manual_seed(cfg.seed + 1)  # weight init only; data and augmentation use generators
    # channels_last: ~15% faster convolutions on CPU (measured on this machine)
    net = JudgeNet(net_cfg).to(device, memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine to 0
        opt, lambda s: warmup_cosine(s, peak=1.0, warmup=cfg.warmup,
                                     decay_steps=cfg.iterations - cfg.warmup))

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    order = torch.randperm(len(dataset), generator=gen)  # fresh renders when len = n_train
    bar = tqdm(range(cfg.iterations), desc="train judges", disable=not progress)
    net.train()
    for step in bar:
        idx = order[(torch.arange(cfg.batch_size) + step * cfg.batch_size) % len(dataset)]
        images, labels = dataset.batch(idx)  # (B, 3, H, W), {name: (B, ...)}
        images = augment(images.float().cpu(), generator=gen, noise_frac=cfg.noise_frac,
                         noise_max=cfg.noise_max, blur_frac=cfg.blur_frac,
                         blur_max=cfg.blur_max).to(device, memory_format=torch.channels_last)
        loss, parts = _loss(net, images, labels, cfg.reg_weight)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"judge training diverged at step {step} (loss {loss.item()}); "
                               f"lower --lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", **{k: f"{v:.3g}" for k, v in parts.items()})
    train_seconds = time.perf_counter() - t0
    judge = Judge(net.eval())

    report = {"training": {
        "command": command, "seconds": round(train_seconds, 1), "config": asdict(cfg),
        "torch": torch.__version__, "threads": cfg.threads,
        # the machine's 1-minute load average before and after: times taken on a busy machine
        # are pessimistic, and this says how busy it was
        "load_average": [load_before, os.getloadavg()[0] if load_before is not None else None],
    }}
    if cfg.eval_size:
        eval_seed = getattr(eval_dataset, "seed", None)
        if eval_dataset is None:
            eval_dataset = _make(cfg.dataset, cfg.eval_size, cfg.eval_seed, cfg.image_size)
            eval_seed = cfg.eval_seed
        report["heldout"] = {
            "n": len(eval_dataset), "dataset_seed": eval_seed,
            "clean": metrics_to_json(heldout_metrics(judge, eval_dataset)),
            "noise_0.1": metrics_to_json(heldout_metrics(judge, eval_dataset, noise_sigma=0.1)),
        }
        if cfg.clutter_frac > 0:
            cluttered = _make("cluttered", cfg.eval_size, cfg.eval_seed, cfg.image_size)
            report["heldout"]["cluttered"] = metrics_to_json(heldout_metrics(judge, cluttered))
    judge.metadata.update(report)
    return judge, report

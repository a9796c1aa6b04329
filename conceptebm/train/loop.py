"""The one training loop of concept EBMs, one readable function: :func:`train`.

Per iteration: draw a batch of real scenes and their concept labels (optionally augmented);
under ``objective="cd"`` (paper eq. 2) start chains from the replay buffer (or fresh
low-frequency noise), run K Langevin steps on E(x|c) (plus frozen earlier EBMs in continual
mode) with the inference engine and push the negatives back into the buffer; draw wrong
concept values for the contrastive term; take one Adam step on the objective (a sum of loss
terms, :mod:`~conceptebm.train.objective`: CD + L2 with optional KL and contrastive terms, or
under ``objective="contrastive"`` the concept-contrastive term + L2 alone, no sampler);
update the EMA weights. Every so often: log a metrics row, score the model (generations read
by the judges and/or MAP inference on held-out images), keep the best checkpoint by that
score, and write a resumable checkpoint.

A divergence guard stops the run with :class:`TrainingDiverged` when energies blow up or
turn non-finite, before the bad update is applied or saved, so the last good checkpoint stays.

Ctrl-C (SIGINT) or SIGTERM during the loop finishes the current iteration, writes the
resumable checkpoint and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt`` that
says where the checkpoint is); a second Ctrl-C stops at once. The run folder is marked as one
(:mod:`~conceptebm.train.rundir`) and a new run never writes into a folder holding files a run
did not write. Under DDP every process leaves the process group before it returns or raises,
and a process that fails makes the others stop with :class:`~conceptebm.train.distributed.
RankFailed` naming it.

Example (a smoke run: a tiny net for 6 iterations, about 2 s on one core):
    >>> import tempfile
    >>> from conceptebm.train import smoke_config, train
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = train(smoke_config(concept="position", out_dir=run), progress=False)
    >>> result.iteration, result.stopped, result.best_iteration > 0
    (6, 'done', True)
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.checkpoints import (
    atomic_write_text,
    load_checkpoint,
    load_energy,
    load_state,
    save_checkpoint,
)
from conceptebm.energies import ScaledConditional
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.evaluate.calibration import checkpoint_calibration
from conceptebm.evaluate.heldout_map import judge_free
from conceptebm.evaluate.quality import (
    generation_quality,
    inference_quality,
    selection_score,
)
from conceptebm.schedules import warmup_cosine
from conceptebm.train import distributed as D
from conceptebm.train.augment import augment_real
from conceptebm.train.buffer import ReplayBuffer
from conceptebm.train.config import TrainConfig
from conceptebm.train.continual import load_frozen, match_steps
from conceptebm.train.logs import CsvLog, plot_training
from conceptebm.train.loss import wrong_concept_values
from conceptebm.train.objective import make_objective
from conceptebm.train.rundir import check_out_dir, mark_run
from conceptebm.train.sampling import (
    eval_settings,
    fresh_noise,
    sample_images,
    split_labels,
    training_settings,
)
from conceptebm.train.state import check_resumable, load_optimizer, optimizer_tensors

__all__ = ["train", "TrainResult", "TrainingDiverged", "TrainingInterrupted", "lr_at",
           "training_seed", "EVAL_SEED_OFFSET"]

EVAL_SEED_OFFSET = 1_000_003  # held-out evaluation scenes: another seed than the training data
RANK_STRIDE = 7919  # training_seed: seed * RANK_STRIDE + rank (one stream per DDP rank)
RESUME_STRIDE = 104729  # training_seed: a resumed rank > 0 starts a stream of its own


class TrainingDiverged(RuntimeError):
    """Energies blew up or turned non-finite; the last good checkpoint was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after iteration ``iteration``; the resumable
    checkpoint ``checkpoint`` (``None`` when no process of this run writes one) holds it."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None):
        self.signum, self.iteration, self.checkpoint = int(signum), iteration, checkpoint
        where = (f"the checkpoint {checkpoint} holds iteration {iteration}; continue with "
                 f"resume=True (conceptebm train --resume --out-dir {checkpoint.parent})"
                 if checkpoint else f"stopped after iteration {iteration}")
        super().__init__(f"training stopped by {signal.Signals(self.signum).name}: {where}")


class _StopSignals:
    """While the loop runs: SIGINT / SIGTERM set ``signum`` (the loop stops after the
    iteration in progress and saves); a second SIGINT raises ``KeyboardInterrupt`` at once.
    Outside the main thread nothing is installed (signals go to the main thread only)."""

    def __init__(self):
        self.signum, self._previous, self._at = 0, {}, 0.0

    def _handle(self, signum, frame):  # noqa: ARG002 - the signal module's signature
        # a second Ctrl-C stops at once; one within a second of the first is the same Ctrl-C
        # delivered twice (the terminal's, and torchrun's forwarding of it)
        if self.signum == signal.SIGINT == signum and time.monotonic() - self._at > 1.0:
            raise KeyboardInterrupt
        if not self.signum:
            self.signum, self._at = signum, time.monotonic()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


@dataclass
class TrainResult:
    net: ConvEnergyNet  # trained weights (last iteration)
    eval_net: ConvEnergyNet  # the EMA weights when enabled, else ``net``
    iteration: int
    best_score: float  # -inf if never evaluated
    best_iteration: int
    out_dir: Path
    stopped: str  # "done" or "time limit"
    evals: list[dict] = field(default_factory=list)  # rows of eval.csv made in this session


def lr_at(config: TrainConfig, it: int) -> float:
    """Learning rate at iteration ``it`` (1-based): constant, or a cosine from ``lr`` at the
    first iteration to ``lr * lr_min_ratio`` at the last
    (:func:`conceptebm.schedules.warmup_cosine`,
    the schedule the judges' trainer uses too)."""
    if config.lr_schedule == "constant":
        return config.lr
    return warmup_cosine(it - 1, peak=config.lr, floor=config.lr * config.lr_min_ratio,
                         decay_steps=config.iterations - 1)


def training_seed(seed: int, rank: int = 0, iteration: int = 0) -> int:
    """Seed of the training generator (batch indices, chain inits, sampler noise, buffer,
    negatives) of process ``rank`` starting at ``iteration``.

    Every (seed, rank, iteration) gets its own stream: ``seed * RANK_STRIDE + rank`` keeps
    seeds of different ranks apart for up to ``RANK_STRIDE`` ranks, and a rank > 0 restarting
    at a resumed ``iteration`` (only rank 0's generator is stored) is shifted by
    ``RESUME_STRIDE * iteration`` so it does not replay the numbers of its first iterations.
    The strides are primes only by habit; any values that keep these sums distinct would do,
    and these are the ones every earlier run used, so seeded runs reproduce.
    """
    return seed * RANK_STRIDE + rank + RESUME_STRIDE * iteration


def _batch(dataset, idx: Tensor):
    if hasattr(dataset, "batch"):
        return dataset.batch(idx)
    items = [dataset[int(i)] for i in idx]
    images = torch.stack([im for im, _ in items])
    labels = {k: torch.stack([torch.as_tensor(lb[k]) for _, lb in items]) for k in items[0][1]}
    return images, labels


def _encode(labels: dict, energies, device) -> Tensor:
    """Concatenated encodings ``(B, sum of dims)`` of each energy's concept from the labels."""
    out = []
    for e in energies:
        name = e.concept.name
        if name not in labels:
            raise ValueError(f"the dataset's labels have no {name!r} (it has {sorted(labels)})")
        c = e.concept.encode(torch.as_tensor(labels[name]), device=device)
        out.append(c[None] if c.dim() == 1 else c)
    return torch.cat(out, dim=1)


def _dataset_options(config: TrainConfig) -> dict:
    """Options of ``make_dataset`` that the config sets (``n_views`` for "multiview")."""
    return {"n_views": config.n_views} if config.n_views else {}


def _dataset_concept(dataset, name: str):
    concepts = getattr(dataset, "concepts", None)
    if not concepts or name not in concepts:
        raise ValueError(f"concept {name!r} is not a label of this dataset (it has "
                         f"{sorted(concepts or {})}); pick --concept from those or another dataset")
    return concepts[name]


def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float, step: int) -> None:
    # Warm-up as TF's ExponentialMovingAverage(num_updates): early averages are not dominated
    # by the random initial weights.
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
            pe.lerp_(p, 1 - d)
        for be, b in zip(ema.buffers(), net.buffers(), strict=True):
            be.copy_(b)


def _start_from(net, path: str, device) -> None:
    """Copy the weights of checkpoint ``path`` into ``net`` (``init_weights``): its EMA
    weights when it has them (the ones it was evaluated with), else its model weights."""
    start = load_energy(path, device=device)
    if start.config != net.config:
        diff = {k: (start.config.get(k), net.config.get(k))
                for k in sorted(set(start.config) | set(net.config))
                if start.config.get(k) != net.config.get(k)}
        raise ValueError(f"init_weights {path}: its net differs from this run's "
                         f"(setting: (checkpoint, run)): {diff}; train with matching "
                         "--width/--blocks/--center-input... or another checkpoint")
    net.load_state_dict(start.state_dict())


def train(config: TrainConfig, *, dataset=None, eval_dataset=None, judge=None,
          resume: bool | str = False, progress: bool = True,
          callback: Callable[[int, dict], None] | None = None,
          on_start: Callable[[], None] | None = None) -> TrainResult:
    """Train a concept EBM; see the module docstring and :class:`TrainConfig`.

    Args:
        dataset: the training scenes (default ``make_dataset(config.dataset_name, ...)``):
            ``dataset.concepts`` and ``dataset.batch(indices) -> (images, labels)``.
        eval_dataset: held-out scenes whose labels are the evaluation targets (default: the
            same dataset factory with another seed).
        judge: reads concepts off images (default ``conceptebm.evaluate.load_judges()``);
            only needed when ``config.eval_every > 0``.
        resume: ``True`` continues ``out_dir/last.safetensors`` if present; a path continues
            that checkpoint; ``False`` refuses an out_dir that already holds a run.
        callback: called as ``callback(iteration, stats)`` after every update.
        on_start: called once by the process that writes (rank 0) when everything was
            accepted (the folder, the data, a resumed checkpoint) and before the first
            write of the run, to write its own records (the CLI's ``data.json``).

    Raises:
        RunFolderError: (a ``FileExistsError``) ``out_dir`` holds a run and ``resume`` is
            off, or files a run did not write.
        TrainingInterrupted: SIGINT / SIGTERM, after the checkpoint was written.
        TrainingDiverged: see the module docstring.
    """
    owned, clean = not D.initialized(), False
    ctx = D.setup(config.device)
    try:
        with _StopSignals() as stop:
            result = _train(config, ctx, stop, dataset=dataset, eval_dataset=eval_dataset,
                            judge=judge, resume=resume, progress=progress, callback=callback,
                            on_start=on_start)
        clean = True
        return result
    except TrainingInterrupted:
        clean = True  # every process stopped at the same iteration
        raise
    except Exception as err:
        stop_too = D.failure(ctx, err) if ctx.enabled else err  # named for the others
        if stop_too is err:
            raise
        raise stop_too from None
    finally:
        if owned:
            D.teardown(ctx, clean=clean)


def _train(config: TrainConfig, ctx, stop: _StopSignals, *, dataset, eval_dataset, judge,
           resume, progress, callback, on_start) -> TrainResult:
    device = torch.device(config.device)
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    out = Path(config.out_dir)
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    check_out_dir(out, resume=bool(resume))  # nothing of the user's is overwritten
    gen = torch.Generator(device=device).manual_seed(training_seed(config.seed, ctx.rank))

    # ---- data and model -------------------------------------------------------------
    if dataset is None:
        from conceptebm.datasets import make_dataset

        dataset = make_dataset(config.dataset_name, size=config.dataset_size, seed=config.seed,
                               image_size=config.image_size, **_dataset_options(config))
    concept = _dataset_concept(dataset, config.concept)
    easy = None  # the curriculum's dataset: the first config.curriculum iterations draw from it
    if config.curriculum:
        from conceptebm.datasets import make_dataset

        easy = make_dataset(config.curriculum_dataset, size=config.dataset_size,
                            seed=config.seed, image_size=config.image_size)
        _dataset_concept(easy, config.concept)
    # frozen earlier EBMs, each scaled to move in this chain's step as in its own sampler
    frozen = match_steps(load_frozen(config.frozen, device=device), config.step_size)
    if config.frozen_weights:  # then weighted as the composition they enter asks
        frozen = [f if w == 1 else ScaledConditional(f, w).eval()
                  for f, w in zip(frozen, config.frozen_weights, strict=True)]
    for f in frozen:
        _dataset_concept(dataset, f.concept.name)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(config.seed)
        net = config.build_net(concept).to(device)  # the family of config.net
    if config.channels_last:  # 4-D conv weights NHWC: convolutions then run in that order
        net = net.to(memory_format=torch.channels_last)
    if hasattr(net, "start_readout") and not config.init_weights:
        # a late net reads each value where the camera puts it (LateEnergyNet.start_readout)
        x0, l0 = _batch(dataset, torch.arange(min(len(dataset), 1000)))
        net.start_readout(x0.to(device), torch.as_tensor(l0[concept.name]).to(device))
    if config.init_weights and not (resume and last_path.exists()):
        _start_from(net, config.init_weights, device)
    objective = make_objective(config, net)  # a list of loss terms (train/objective.py)
    model = objective
    if ctx.enabled:  # DDP broadcasts rank 0's initial weights to every replica
        model = torch.nn.parallel.DistributedDataParallel(objective, forward_sync_buffers=False)
    ema = copy.deepcopy(net).requires_grad_(False) if config.ema else None
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas)
    sampling = config.objective == "cd"  # Langevin negatives (and their buffer) or none
    buffer = (ReplayBuffer(config.buffer_size, reinit_prob=config.reinit_prob,
                           label_policy=config.label_policy)
              if config.buffer_size and sampling else None)
    start, elapsed, best, best_it = 0, 0.0, -math.inf, 0

    # ---- resume ---------------------------------------------------------------------
    resume_path = Path(resume) if isinstance(resume, (str, Path)) else last_path
    if resume and (resume_path.exists() or isinstance(resume, (str, Path))):
        ckpt = load_checkpoint(resume_path, device=device)
        changed = check_resumable(ckpt, config, net)
        if changed and ctx.is_main:
            print(f"[train] resuming with changed settings: {changed}")
        if ema is not None:
            load_state(ema, ckpt.groups.get("ema", ckpt.groups["model"]), "EMA weights")
        if "optim" in ckpt.groups:
            load_optimizer(opt, ckpt.groups["optim"], ckpt.meta["optim_groups"])
        if buffer is not None and "buffer" in ckpt.groups:
            buffer.load_state(ckpt.groups["buffer"], ckpt.meta["buffer"], device=device)
        if "rng" in ckpt.groups and ctx.rank == 0:
            gen.set_state(ckpt.groups["rng"]["train"].cpu())
        elif ctx.rank:
            gen.manual_seed(training_seed(config.seed, ctx.rank, ckpt.meta["iteration"]))
        start, elapsed = int(ckpt.meta["iteration"]), float(ckpt.meta["elapsed_s"])
        best, best_it = float(ckpt.meta["best_score"]), int(ckpt.meta["best_iteration"])
    resumed_from = start if start else None

    # ---- evaluation set (rank 0) ----------------------------------------------------
    evaluating = config.eval_every > 0 and ctx.is_main
    # judges read generations; a contrastive-only model's samples are not images, so it is
    # scored (and its best checkpoint chosen) by MAP inference on held-out images alone
    # a user's images (load_images) have no judge: MAP on all their held-out images scores them
    user_data = judge_free(eval_dataset if eval_dataset is not None else dataset)
    judging = sampling and not user_data
    if evaluating:
        if judge is None and judging:
            from conceptebm.evaluate import load_judges

            judge = load_judges()
        if eval_dataset is None:
            from conceptebm.datasets import make_dataset

            eval_dataset = make_dataset(config.dataset_name, size=config.eval_samples,
                                        seed=config.seed + EVAL_SEED_OFFSET,
                                        image_size=config.image_size, **_dataset_options(config))
        # at most eval_samples held-out images per evaluation (MAP on all 300 of a user's
        # held-out split cost ~100 s an evaluation on a shared CPU; benchmarks score them all)
        n_eval = min(config.eval_samples, len(eval_dataset))
        eval_images, eval_labels = _batch(eval_dataset, torch.arange(n_eval))
        eval_images = eval_images.to(device)
        eval_targets = torch.as_tensor(eval_labels[concept.name])
        eval_frozen_c = _encode(eval_labels, frozen, device) if frozen else None
    eval_sampler = eval_settings(config)  # SamplerSettings: scored here, recorded in checkpoints
    train_sampler = training_settings(config)  # the K-step sampler of the negatives

    if ctx.is_main:  # accepted: from here on the run writes (its manifest first)
        mark_run(out)
        if on_start is not None:
            on_start()
    metrics_log = CsvLog(out / "metrics.csv", resume_after=resumed_from) if ctx.is_main else None
    eval_log = CsvLog(out / "eval.csv", resume_after=resumed_from) if ctx.is_main else None
    meta_base = {"net": net.config, "train": config.to_dict(),
                 "frozen": [f.concept.name for f in frozen], "sampler": eval_sampler.to_dict()}

    def save_last(it: int, now_elapsed: float) -> None:
        optim_t, optim_groups = optimizer_tensors(opt)
        buf_t, buf_info = buffer.state() if buffer is not None else ({}, {})
        groups = {"model": net.state_dict(), "optim": optim_t, "buffer": buf_t,
                  "rng": {"train": gen.get_state()}}
        if ema is not None:
            groups["ema"] = ema.state_dict()
        save_checkpoint(last_path, {k: v for k, v in groups.items() if v},
                        {**meta_base, "iteration": it, "elapsed_s": now_elapsed,
                         "best_score": best, "best_iteration": best_it,
                         "optim_groups": optim_groups, "buffer": buf_info})

    def diverged(it: int, why: str) -> TrainingDiverged:
        where = (f"the last good checkpoint is {last_path} (iteration "
                 f"{load_checkpoint(last_path).meta['iteration']})" if last_path.exists()
                 else "no checkpoint was written yet")
        return TrainingDiverged(
            f"training diverged at iteration {it}: {why}. Nothing from this iteration was "
            f"applied or saved; {where}. Resume from it with a lower lr, a larger l2 or "
            "grad_clip (--resume after changing them).")

    # ---- the loop ---------------------------------------------------------------------
    session_t0, stopped, evals = time.time(), "done", []
    bar = tqdm(range(start + 1, config.iterations + 1), initial=start, total=config.iterations,
               desc=f"train {concept.name}", disable=not (progress and ctx.is_main))
    it = start
    for it in bar:
        lr = lr_at(config, it)
        for group in opt.param_groups:
            group["lr"] = lr
        net.train()
        idx = torch.randint(len(dataset), (config.batch_size,), generator=gen, device=device)
        source = easy if easy is not None and it <= config.curriculum else dataset
        x_pos, labels = _batch(source, idx.cpu())
        x_pos = augment_real(x_pos.to(device), noise=config.augment_noise,  # (B, C, H, W)
                             blur=config.augment_blur, jitter=config.augment_jitter,
                             generator=gen)
        c = _encode(labels, [net, *frozen], device)  # (B, L_all)
        # c holds this EBM's label, then each frozen EBM's (the sampler sums them); the loss
        # scores this EBM only, so it gets its own part
        c_own = split_labels(c, [net, *frozen])[0]  # (B, L)
        x_neg = c_run = c_run_own = None
        sampler_ok = True
        if sampling:  # K Langevin steps on E_new(x|c) + sum_j E_j(x|c_j), chains from the buffer
            fresh = fresh_noise(x_pos.shape, config.init, generator=gen, device=device)
            x0, c_run = buffer.sample(fresh, c, generator=gen) if buffer is not None else (fresh, c)
            try:
                x_neg = sample_images(net, c_run, **train_sampler, x0=x0, frozen=frozen,
                                      generator=gen)  # (B, C, H, W)
            except FloatingPointError:
                x_neg, sampler_ok = x0, False
            c_run_own = split_labels(c_run, [net, *frozen])[0]  # (B, L)
        c_wrong = (wrong_concept_values(concept, c_own, config.contrastive_negatives,
                                        near=config.contrastive_near_negatives,
                                        near_scale=config.contrastive_near_scale,
                                        generator=gen)
                   if config.contrastive_weight else None)  # (B, M, L)
        if sampler_ok:
            loss, stats = model(x_pos, c_own, x_neg, c_run_own, c_wrong)
            e_max = torch.stack([v.abs() for k, v in stats.items() if k.startswith("e_")]).max()
            bad = torch.stack([(~torch.isfinite(loss)).float(), torch.nan_to_num(e_max, nan=1e30)])
        else:
            bad = torch.tensor([1.0, 1e30], device=device)
        bad = D.all_max(bad.to(device), ctx)
        if not sampler_ok or bad[0] > 0 or bad[1] > config.max_abs_energy:
            why = ("the Langevin sampler met a non-finite energy or gradient" if not sampler_ok
                   else f"mean |energy| {bad[1].item():.3g} (limit {config.max_abs_energy:g}) or"
                   f" a non-finite loss")
            raise diverged(it, why)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip or math.inf)
        if not torch.isfinite(gnorm):
            raise diverged(it, f"non-finite parameter gradient (norm {gnorm.item()})")
        opt.step()
        if ema is not None:
            _ema_update(ema, net, config.ema, it)
        if buffer is not None:
            buffer.push(x_neg, c_run)

        now = elapsed + time.time() - session_t0
        row = {"iteration": it, "time_s": now, "lr": lr, "grad_norm": gnorm.item(),
               **{k: v.item() for k, v in stats.items()}}
        if ctx.is_main and (it % config.log_every == 0 or it == config.iterations):
            metrics_log.write(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}", e_pos=f"{row['e_pos']:.3g}",
                            best=f"{best:.3f}", **{k: f"{row[k]:.3g}" for k in
                                                   ("e_neg", "contrastive_acc") if k in row})
        if evaluating and (it % config.eval_every == 0 or it == config.iterations):
            eval_net = (ema if ema is not None else net).eval()
            eval_gen = torch.Generator(device=device).manual_seed(config.seed + EVAL_SEED_OFFSET)
            metrics, scores = {}, []
            if judging:
                metrics = generation_quality(eval_net, judge, eval_targets, sampler=eval_sampler,
                                             generator=eval_gen, frozen=frozen,
                                             frozen_c=eval_frozen_c)
                scores.append(selection_score(metrics, concept))
            if config.eval_inference or not judging:
                inferred = inference_quality(eval_net, eval_images, eval_targets,
                                             grid=config.eval_grid,
                                             steps=config.eval_map_steps)
                metrics.update({f"inference_{k}": m for k, m in inferred.items()})
                scores.append(selection_score(inferred, concept))
            score = sum(scores) / len(scores)  # the mean of both when both are scored
            erow = {"iteration": it, "time_s": now, "score": score,
                    **{k: m.value for k, m in metrics.items()}}
            eval_log.write(erow)
            evals.append(erow)
            if score > best:
                best, best_it = score, it
                save_checkpoint(best_path, {"model": eval_net.state_dict()},
                                {**meta_base, "iteration": it, "elapsed_s": now, "score": score,
                                 "metrics": {k: list(m) for k, m in metrics.items()},
                                 # best energies of held-out real images: "no object found"
                                 "energy_calibration": checkpoint_calibration(
                                     eval_net, eval_images, eval_targets)})
        if ctx.is_main and config.snapshot_every and it % config.snapshot_every == 0:
            snap = (ema if ema is not None else net).state_dict()
            save_checkpoint(out / "snapshots" / f"it{it:06d}.safetensors", {"model": snap},
                            {**meta_base, "iteration": it, "elapsed_s": now}, json_twin=False)
        # rank 0's time limit, and a signal received by any process, stop every process
        timeout = ctx.is_main and config.time_limit_min is not None and \
            now > 60 * config.time_limit_min
        flags = D.all_max(torch.tensor([float(timeout), float(stop.signum)], device=device), ctx)
        timeout, signum = bool(flags[0] > 0), int(flags[1].item())
        if ctx.is_main and (config.checkpoint_every or signum) and (
                it % (config.checkpoint_every or it) == 0 or it == config.iterations
                or timeout or signum):
            save_last(it, now)
        if callback is not None:
            callback(it, row)
        if signum:
            stopped = signal.Signals(signum).name
            break
        if timeout:
            stopped = "time limit"
            break
    bar.close()
    if config.channels_last:  # hand back weights in the default order
        for m in (net, ema):
            if m is not None:
                m.to(memory_format=torch.contiguous_format)
    if ctx.is_main:
        if config.checkpoint_every == 0 and not stopped.startswith("SIG"):
            save_last(it, elapsed + time.time() - session_t0)
        plot_training(out, title=f"{concept.name} EBM, {out.name}")
        atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=2))
    if stopped in ("SIGINT", "SIGTERM"):
        raise TrainingInterrupted(getattr(signal, stopped), it,
                                  last_path if ctx.is_main else None)
    return TrainResult(net=net, eval_net=ema if ema is not None else net, iteration=it,
                       best_score=best, best_iteration=best_it, out_dir=out, stopped=stopped,
                       evals=evals)

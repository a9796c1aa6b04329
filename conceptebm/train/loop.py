"""The one training loop of concept EBMs: :func:`train`.

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

The loop reads in pieces: ``_setup`` (folder, data, net, optimizer, resume, evaluation set,
into one ``_Run``), ``_step`` (one update), ``_evaluate`` (score, best checkpoint),
``_save_last`` / ``_save_snapshot`` (checkpoints) and ``_finish``.

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
from conceptebm.infer.settings import MAPSettings, SamplerSettings
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
EMPTY_SEED_OFFSET = 2_000_003  # the empty-ground renders of empty_negatives
RANK_STRIDE = 7919  # training_seed: seed * RANK_STRIDE + rank (one stream per DDP rank)
RESUME_STRIDE = 104729  # training_seed: a resumed rank > 0 starts a stream of its own
FAMILIARITY_IMAGES = 2000  # training images a run on a user's images fits its familiarity check on


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


@dataclass(eq=False)
class _Run:
    """Everything a run holds between iterations: built by :func:`_setup`, advanced by
    :func:`_step`, scored by :func:`_evaluate`, saved by :func:`_save_last`."""

    config: TrainConfig
    ctx: D.DistContext
    device: torch.device
    out: Path
    gen: torch.Generator  # the training stream (training_seed): every random draw of a step
    dataset: object
    easy: object | None  # the curriculum's dataset (the first config.curriculum iterations)
    concept: object  # the Concept this EBM is conditioned on
    frozen: list  # earlier EBMs summed into the chain (continual mode), step-matched
    net: ConvEnergyNet
    model: torch.nn.Module  # the objective (a list of loss terms), DDP-wrapped under DDP
    ema: ConvEnergyNet | None
    opt: torch.optim.Optimizer
    buffer: ReplayBuffer | None
    sampling: bool  # Langevin negatives (objective "cd") or none
    train_sampler: SamplerSettings  # the K-step sampler of the negatives
    eval_sampler: SamplerSettings  # scored here, recorded in checkpoints
    eval_map: MAPSettings  # the MAP inference an evaluation scores (eval_grid, eval_map_steps)
    empties: object = None  # renders of the empty ground (config.empty_negatives > 0)
    start: int = 0  # the iteration a resumed run continues after
    elapsed: float = 0.0  # seconds of earlier sessions
    best: float = -math.inf
    best_it: int = 0
    # ---- evaluation (rank 0, config.eval_every > 0) ----
    evaluating: bool = False
    judging: bool = False  # judges read generations (else MAP inference alone scores)
    judge: object = None
    eval_images: Tensor | None = None
    eval_targets: Tensor | None = None
    eval_frozen_c: Tensor | None = None
    # ---- records (rank 0) ----
    metrics_log: CsvLog | None = None
    eval_log: CsvLog | None = None
    meta_base: dict = field(default_factory=dict)

    @property
    def last_path(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"

    @property
    def eval_net(self) -> ConvEnergyNet:
        return self.ema if self.ema is not None else self.net


def _train(config: TrainConfig, ctx, stop: _StopSignals, *, dataset, eval_dataset, judge,
           resume, progress, callback, on_start) -> TrainResult:
    """The loop: :func:`_setup`, then per iteration :func:`_step`, a metrics row, and when
    due :func:`_evaluate`, a snapshot and :func:`_save_last`; then :func:`_finish`."""
    run = _setup(config, ctx, dataset=dataset, eval_dataset=eval_dataset, judge=judge,
                 resume=resume, on_start=on_start)
    session_t0, stopped, evals = time.time(), "done", []
    bar = tqdm(range(run.start + 1, config.iterations + 1), initial=run.start,
               total=config.iterations, desc=f"train {run.concept.name}",
               disable=not (progress and ctx.is_main))
    it = run.start
    for it in bar:
        lr, gnorm, stats = _step(run, it)
        now = run.elapsed + time.time() - session_t0
        row = {"iteration": it, "time_s": now, "lr": lr, "grad_norm": gnorm.item(),
               **{k: v.item() for k, v in stats.items()}}
        if ctx.is_main and _due(it, config.log_every, config):
            run.metrics_log.write(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}", e_pos=f"{row['e_pos']:.3g}",
                            best=f"{run.best:.3f}", **{k: f"{row[k]:.3g}" for k in
                                                       ("e_neg", "contrastive_acc") if k in row})
        if run.evaluating and _due(it, config.eval_every, config):
            evals.append(_evaluate(run, it, now))
        if ctx.is_main and config.snapshot_every and it % config.snapshot_every == 0:
            _save_snapshot(run, it, now)
        timeout, signum = _stop_requested(run, now, stop)
        if ctx.is_main and (config.checkpoint_every or signum) and (
                it % (config.checkpoint_every or it) == 0 or it == config.iterations
                or timeout or signum):
            _save_last(run, it, now)
        if callback is not None:
            callback(it, row)
        if signum:
            stopped = signal.Signals(signum).name
            break
        if timeout:
            stopped = "time limit"
            break
    bar.close()
    _finish(run, it, stopped, run.elapsed + time.time() - session_t0)
    if stopped in ("SIGINT", "SIGTERM"):
        raise TrainingInterrupted(getattr(signal, stopped), it,
                                  run.last_path if ctx.is_main else None)
    return TrainResult(net=run.net, eval_net=run.eval_net, iteration=it, best_score=run.best,
                       best_iteration=run.best_it, out_dir=run.out, stopped=stopped,
                       evals=evals)


def _due(it: int, every: int, config: TrainConfig) -> bool:
    """Every ``every`` iterations, and at the last one."""
    return it % every == 0 or it == config.iterations


# ---- setup -------------------------------------------------------------------------------
def _setup(config: TrainConfig, ctx, *, dataset, eval_dataset, judge, resume,
           on_start) -> _Run:
    """Check the folder, build the data, the net and its optimizer, continue a resumed
    checkpoint, draw the held-out evaluation set, then mark the folder as this run's."""
    device = torch.device(config.device)
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    out = Path(config.out_dir)
    check_out_dir(out, resume=bool(resume))  # nothing of the user's is overwritten
    gen = torch.Generator(device=device).manual_seed(training_seed(config.seed, ctx.rank))
    dataset, easy, concept, frozen = _data(config, dataset, device)
    resuming_last = bool(resume) and (out / "last.safetensors").exists()
    net = _build_net(config, dataset, concept, device, resuming_last)
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
    run = _Run(config=config, ctx=ctx, device=device, out=out, gen=gen, dataset=dataset,
               easy=easy, concept=concept, frozen=frozen, net=net, model=model, ema=ema,
               opt=opt, buffer=buffer, sampling=sampling,
               train_sampler=training_settings(config), eval_sampler=eval_settings(config),
               eval_map=MAPSettings(grid=int(config.eval_grid),
                                    steps=int(config.eval_map_steps)))
    if config.empty_negatives:
        from conceptebm.datasets import make_dataset

        run.empties = make_dataset("objects", size=config.dataset_size, n_objects=0,
                                   seed=config.seed + EMPTY_SEED_OFFSET,
                                   image_size=config.image_size)
    _resume(run, resume)
    _evaluation_set(run, eval_dataset, judge)
    if ctx.is_main:  # accepted: from here on the run writes (its manifest first)
        mark_run(out)
        if on_start is not None:
            on_start()
        resumed_from = run.start if run.start else None
        run.metrics_log = CsvLog(out / "metrics.csv", resume_after=resumed_from)
        run.eval_log = CsvLog(out / "eval.csv", resume_after=resumed_from)
    run.meta_base = {"net": net.config, "train": config.to_dict(),
                     "frozen": [f.concept.name for f in frozen],
                     "sampler": run.eval_sampler.to_dict()}
    if run.evaluating and not run.judging:  # a user's images: is a new one of their kind?
        run.meta_base["familiarity"] = _familiarity(run)
    return run


def _familiarity(run: _Run) -> dict | None:
    """The familiarity check of a run on a user's images (:mod:`conceptebm.evaluate.
    familiarity`): fitted on up to :data:`FAMILIARITY_IMAGES` training images, its threshold
    set on the held-out images; ``None`` when there are too few of either."""
    from conceptebm.evaluate.familiarity import fit_familiarity

    n = min(len(run.dataset), FAMILIARITY_IMAGES)
    images = _batch(run.dataset, torch.arange(n))[0]
    images = images.flatten(0, 1) if images.dim() == 5 else images  # views of a set
    held = run.eval_images.flatten(0, 1) if run.eval_images.dim() == 5 else run.eval_images
    try:
        return fit_familiarity(images.float().cpu(), held.float().cpu())
    except ValueError:  # fewer than 20 training or 5 held-out images
        return None


def _data(config: TrainConfig, dataset, device):
    """``(dataset, easy, concept, frozen)``: the training scenes (default
    ``make_dataset(config.dataset_name, ...)``), the curriculum's scenes (or None), the
    concept to learn, and the frozen earlier EBMs, each checked against the labels."""
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
    return dataset, easy, concept, frozen


def _build_net(config: TrainConfig, dataset, concept, device, resuming_last: bool):
    """The net of ``config.net``, seeded with ``config.seed`` (the global RNG untouched);
    a late net starts its readout from the data, ``init_weights`` (unless a resumed
    checkpoint overrides them) copies a checkpoint's weights."""
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(config.seed)
        net = config.build_net(concept).to(device)  # the family of config.net
    if config.channels_last:  # 4-D conv weights NHWC: convolutions then run in that order
        net = net.to(memory_format=torch.channels_last)
    if hasattr(net, "start_readout") and not config.init_weights:
        # a late net reads each value where the camera puts it (LateEnergyNet.start_readout)
        x0, l0 = _batch(dataset, torch.arange(min(len(dataset), 1000)))
        net.start_readout(x0.to(device), torch.as_tensor(l0[concept.name]).to(device))
    if config.init_weights and not resuming_last:
        _start_from(net, config.init_weights, device)
    return net


def _resume(run: _Run, resume: bool | str) -> None:
    """Continue ``resume`` (a checkpoint path, or ``True``: ``last.safetensors`` when
    present): weights, EMA, optimizer, buffer, rank 0's generator, counters."""
    resume_path = Path(resume) if isinstance(resume, (str, Path)) else run.last_path
    if not (resume and (resume_path.exists() or isinstance(resume, (str, Path)))):
        return
    config, ctx = run.config, run.ctx
    ckpt = load_checkpoint(resume_path, device=run.device)
    changed = check_resumable(ckpt, config, run.net)
    if changed and ctx.is_main:
        print(f"[train] resuming with changed settings: {changed}")
    if run.ema is not None:
        load_state(run.ema, ckpt.groups.get("ema", ckpt.groups["model"]), "EMA weights")
    if "optim" in ckpt.groups:
        load_optimizer(run.opt, ckpt.groups["optim"], ckpt.meta["optim_groups"])
    if run.buffer is not None and "buffer" in ckpt.groups:
        run.buffer.load_state(ckpt.groups["buffer"], ckpt.meta["buffer"], device=run.device)
    if "rng" in ckpt.groups and ctx.rank == 0:
        run.gen.set_state(ckpt.groups["rng"]["train"].cpu())
    elif ctx.rank:
        run.gen.manual_seed(training_seed(config.seed, ctx.rank, ckpt.meta["iteration"]))
    run.start, run.elapsed = int(ckpt.meta["iteration"]), float(ckpt.meta["elapsed_s"])
    run.best, run.best_it = float(ckpt.meta["best_score"]), int(ckpt.meta["best_iteration"])


def _evaluation_set(run: _Run, eval_dataset, judge) -> None:
    """Rank 0 of a run with ``eval_every > 0``: the judges (when generations are scored) and
    the held-out images and targets every evaluation reads."""
    config, device = run.config, run.device
    run.evaluating = config.eval_every > 0 and run.ctx.is_main
    # judges read generations; a contrastive-only model's samples are not images, so it is
    # scored (and its best checkpoint chosen) by MAP inference on held-out images alone
    # a user's images (load_images) have no judge: MAP on all their held-out images scores them
    user_data = judge_free(eval_dataset if eval_dataset is not None else run.dataset)
    run.judging = run.sampling and not user_data
    if not run.evaluating:
        return
    if judge is None and run.judging:
        from conceptebm.evaluate import load_judges

        judge = load_judges()
    run.judge = judge
    if eval_dataset is None:
        from conceptebm.datasets import make_dataset

        eval_dataset = make_dataset(config.dataset_name, size=config.eval_samples,
                                    seed=config.seed + EVAL_SEED_OFFSET,
                                    image_size=config.image_size, **_dataset_options(config))
    # at most eval_samples held-out images per evaluation (MAP on all 300 of a user's
    # held-out split cost ~100 s an evaluation on a shared CPU; benchmarks score them all)
    n_eval = min(config.eval_samples, len(eval_dataset))
    eval_images, eval_labels = _batch(eval_dataset, torch.arange(n_eval))
    run.eval_images = eval_images.to(device)
    run.eval_targets = torch.as_tensor(eval_labels[run.concept.name])
    run.eval_frozen_c = _encode(eval_labels, run.frozen, device) if run.frozen else None


# ---- one step ----------------------------------------------------------------------------
def _step(run: _Run, it: int) -> tuple[float, Tensor, dict[str, Tensor]]:
    """One update at iteration ``it``: a batch of real scenes, the negatives, the
    divergence guard, one Adam step, the EMA and the buffer. Returns ``(lr, grad_norm,
    stats)`` (``stats``: the objective's terms)."""
    config, net, gen = run.config, run.net, run.gen
    lr = lr_at(config, it)
    for group in run.opt.param_groups:
        group["lr"] = lr
    net.train()
    x_pos, c = _real_batch(run, it)
    # c holds this EBM's label, then each frozen EBM's (the sampler sums them); the loss
    # scores this EBM only, so it gets its own part
    c_own = split_labels(c, [net, *run.frozen])[0]  # (B, L)
    x_neg, c_run, sampler_ok = _negatives(run, x_pos, c)
    c_run_own = split_labels(c_run, [net, *run.frozen])[0] if c_run is not None else None
    c_wrong = (wrong_concept_values(run.concept, c_own, config.contrastive_negatives,
                                    near=config.contrastive_near_negatives,
                                    near_scale=config.contrastive_near_scale,
                                    generator=gen)
               if config.contrastive_weight else None)  # (B, M, L)
    x_empty = _empty_batch(run) if config.empty_negatives else None  # (K, C, H, W)
    if sampler_ok:
        loss, stats = run.model(x_pos, c_own, x_neg, c_run_own, c_wrong, x_empty)
        e_max = torch.stack([v.abs() for k, v in stats.items() if k.startswith("e_")]).max()
        bad = torch.stack([(~torch.isfinite(loss)).float(), torch.nan_to_num(e_max, nan=1e30)])
    else:
        bad = torch.tensor([1.0, 1e30], device=run.device)
    bad = D.all_max(bad.to(run.device), run.ctx)
    if not sampler_ok or bad[0] > 0 or bad[1] > config.max_abs_energy:
        why = ("the Langevin sampler met a non-finite energy or gradient" if not sampler_ok
               else f"mean |energy| {bad[1].item():.3g} (limit {config.max_abs_energy:g}) or"
               f" a non-finite loss")
        raise _diverged(run, it, why)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip or math.inf)
    if not torch.isfinite(gnorm):
        raise _diverged(run, it, f"non-finite parameter gradient (norm {gnorm.item()})")
    run.opt.step()
    if run.ema is not None:
        _ema_update(run.ema, net, config.ema, it)
    if run.buffer is not None:
        run.buffer.push(x_neg, c_run)
    return lr, gnorm, stats


def _real_batch(run: _Run, it: int) -> tuple[Tensor, Tensor]:
    """``(x_pos, c)``: a batch of real scenes (the curriculum's at first), augmented, and
    the concatenated labels of this EBM and of each frozen one ``(B, L_all)``."""
    config = run.config
    idx = torch.randint(len(run.dataset), (config.batch_size,), generator=run.gen,
                        device=run.device)
    source = run.easy if run.easy is not None and it <= config.curriculum else run.dataset
    x_pos, labels = _batch(source, idx.cpu())
    x_pos = augment_real(x_pos.to(run.device), noise=config.augment_noise,  # (B, C, H, W)
                         blur=config.augment_blur, jitter=config.augment_jitter,
                         generator=run.gen)
    return x_pos, _encode(labels, [run.net, *run.frozen], run.device)


def _empty_batch(run: _Run) -> Tensor:
    """``config.empty_negatives`` object-free images, augmented as the real images are: renders
    of the empty ground (half of them), then a third each of the rest uniform pixel noise and
    flat colours, the others smooth colour noise."""
    config, k = run.config, run.config.empty_negatives
    n_ground = (k + 1) // 2
    n_uniform = n_flat = (k - n_ground) // 3
    n_smooth = k - n_ground - n_uniform - n_flat
    idx = torch.randint(len(run.empties), (n_ground,), generator=run.gen, device=run.device)
    ground, _ = _batch(run.empties, idx.cpu())
    shape, dev = ground.shape[1:], run.device
    smooth = fresh_noise((n_smooth, *shape), "smooth", generator=run.gen, device=dev)
    uniform = torch.rand((n_uniform, *shape), generator=run.gen, device=dev)
    flat = torch.rand((n_flat, shape[0], 1, 1), generator=run.gen, device=dev).expand(
        n_flat, *shape)
    x = torch.cat([ground.to(dev), smooth, uniform, flat])  # (K, C, H, W)
    return augment_real(x, noise=config.augment_noise, blur=config.augment_blur,
                        jitter=config.augment_jitter, generator=run.gen)


def _negatives(run: _Run, x_pos: Tensor, c: Tensor) -> tuple[Tensor | None, Tensor | None, bool]:
    """``(x_neg, c_run, ok)``: under ``objective="cd"``, K Langevin steps on
    E_new(x|c) + sum_j E_j(x|c_j) from chains of the buffer (or fresh noise) and the labels
    they ran under; ``ok`` is False when the sampler met a non-finite value. Without
    sampling ``(None, None, True)``."""
    if not run.sampling:
        return None, None, True
    fresh = fresh_noise(x_pos.shape, run.config.init, generator=run.gen, device=run.device)
    x0, c_run = (run.buffer.sample(fresh, c, generator=run.gen) if run.buffer is not None
                 else (fresh, c))
    try:
        x_neg = sample_images(run.net, c_run, **run.train_sampler, x0=x0, frozen=run.frozen,
                              generator=run.gen)  # (B, C, H, W)
    except FloatingPointError:
        return x0, c_run, False
    return x_neg, c_run, True


def _diverged(run: _Run, it: int, why: str) -> TrainingDiverged:
    last_path = run.last_path
    where = (f"the last good checkpoint is {last_path} (iteration "
             f"{load_checkpoint(last_path).meta['iteration']})" if last_path.exists()
             else "no checkpoint was written yet")
    return TrainingDiverged(
        f"training diverged at iteration {it}: {why}. Nothing from this iteration was "
        f"applied or saved; {where}. Resume from it with a lower lr, a larger l2 or "
        "grad_clip (--resume after changing them).")


# ---- evaluate ----------------------------------------------------------------------------
def _evaluate(run: _Run, it: int, now: float) -> dict:
    """Score the evaluation weights (generations read by the judges and/or MAP inference on
    the held-out images; the mean of both when both), log the row, and keep the best
    checkpoint by that score. Returns the row of ``eval.csv``."""
    config, concept = run.config, run.concept
    eval_net = run.eval_net.eval()
    eval_gen = torch.Generator(device=run.device).manual_seed(config.seed + EVAL_SEED_OFFSET)
    metrics, scores = {}, []
    if run.judging:
        metrics = generation_quality(eval_net, run.judge, run.eval_targets,
                                     sampler=run.eval_sampler, generator=eval_gen,
                                     frozen=run.frozen, frozen_c=run.eval_frozen_c)
        scores.append(selection_score(metrics, concept))
    if config.eval_inference or not run.judging:
        inferred = inference_quality(eval_net, run.eval_images, run.eval_targets,
                                     map_settings=run.eval_map)
        metrics.update({f"inference_{k}": m for k, m in inferred.items()})
        scores.append(selection_score(inferred, concept))
    score = sum(scores) / len(scores)  # the mean of both when both are scored
    erow = {"iteration": it, "time_s": now, "score": score,
            **{k: m.value for k, m in metrics.items()}}
    run.eval_log.write(erow)
    if score > run.best:
        run.best, run.best_it = score, it
        save_checkpoint(run.best_path, {"model": eval_net.state_dict()},
                        {**run.meta_base, "iteration": it, "elapsed_s": now, "score": score,
                         "metrics": {k: list(m) for k, m in metrics.items()},
                         # best energies of held-out real images: "no object found"
                         "energy_calibration": checkpoint_calibration(
                             eval_net, run.eval_images, run.eval_targets)})
    return erow


# ---- checkpoint and stop -----------------------------------------------------------------
def _save_last(run: _Run, it: int, now_elapsed: float) -> None:
    """The resumable checkpoint ``last.safetensors``: weights, EMA, optimizer, buffer, the
    training generator and the counters."""
    optim_t, optim_groups = optimizer_tensors(run.opt)
    buf_t, buf_info = run.buffer.state() if run.buffer is not None else ({}, {})
    groups = {"model": run.net.state_dict(), "optim": optim_t, "buffer": buf_t,
              "rng": {"train": run.gen.get_state()}}
    if run.ema is not None:
        groups["ema"] = run.ema.state_dict()
    save_checkpoint(run.last_path, {k: v for k, v in groups.items() if v},
                    {**run.meta_base, "iteration": it, "elapsed_s": now_elapsed,
                     "best_score": run.best, "best_iteration": run.best_it,
                     "optim_groups": optim_groups, "buffer": buf_info})


def _save_snapshot(run: _Run, it: int, now: float) -> None:
    """Weights-only ``snapshots/it{it}.safetensors`` of the evaluation weights."""
    save_checkpoint(run.out / "snapshots" / f"it{it:06d}.safetensors",
                    {"model": run.eval_net.state_dict()},
                    {**run.meta_base, "iteration": it, "elapsed_s": now}, json_twin=False)


def _stop_requested(run: _Run, now: float, stop: _StopSignals) -> tuple[bool, int]:
    """``(timeout, signum)`` agreed by every process: rank 0's time limit, and a signal
    received by any process, stop them all."""
    config = run.config
    timeout = run.ctx.is_main and config.time_limit_min is not None and \
        now > 60 * config.time_limit_min
    flags = D.all_max(torch.tensor([float(timeout), float(stop.signum)], device=run.device),
                      run.ctx)
    return bool(flags[0] > 0), int(flags[1].item())


def _finish(run: _Run, it: int, stopped: str, now_elapsed: float) -> None:
    """Weights back in the default memory order; rank 0 writes the last checkpoint (when no
    schedule wrote it), the training plot and ``config.json``."""
    config = run.config
    if config.channels_last:  # hand back weights in the default order
        for m in (run.net, run.ema):
            if m is not None:
                m.to(memory_format=torch.contiguous_format)
    if run.ctx.is_main:
        if config.checkpoint_every == 0 and not stopped.startswith("SIG"):
            _save_last(run, it, now_elapsed)
        plot_training(run.out, title=f"{run.concept.name} EBM, {run.out.name}")
        atomic_write_text(run.out / "config.json", json.dumps(config.to_dict(), indent=2))

"""Cross-product extrapolation (paper section 4.4, Figures 9-10), as library code.

Spheres of every size appear only in the top-right ``fraction`` of positions; elsewhere only
large ones (``make_dataset("cross_product", fraction=f, split=...)``). The protocol:

1. one position EBM on large spheres everywhere (``split="position"``), shared by all
   fractions;
2. per fraction, one size EBM on the region alone (``split="size"``) and one holistic decoder
   conditioned on (position, size) jointly, trained with MSE on everything that fraction shows
   (``split="train"``, :mod:`paper.baselines.decoder`);
3. at held-out (position, size) combinations (``split="test"``: outside the region, sizes
   below the large one) generate with the conjunction of the two EBMs (the sum of their
   energies, eq. 4: :func:`composed_energy`, sampled as the two checkpoints record) and with
   the decoder, and judge position and size off the images (mean absolute errors with
   standard errors; an image with no object fails the accuracies), and measure realism (the
   Fréchet distance in the judges' feature space to real renders of the same targets, with
   the real-vs-real floor: :func:`conceptebm.evaluate.realism`).

Protocol: the held-out targets come from two seeds. The validation targets
(``val_seed``, by default ``seed + TEST_SEED_OFFSET``: the targets every earlier read of this
experiment used) choose the one knob the benchmark sets, the number of noise-free steps that
end the EBMs' chains (``denoise_steps``, by the lowest Fréchet distance averaged over the
fractions; 0 unless another lowers it). The test targets (``test_seed``, 20261207) are read
once, after that choice: every model at ``denoise_steps`` 0, and the composed EBMs also at the
chosen value. Nothing else is chosen: the sampler is what the checkpoints record, the
composition the plain sum, each EBM's checkpoint was picked during its training on held-out
scenes of its own training split.

At fraction 1 every combination is in the training data and ``split="test"`` is empty; that
column is scored on the held-out targets of :data:`FULL_TARGETS_FRACTION` (the same targets
as the 1 % column, now seen in training), so it shows what each model reaches when nothing
has to be extrapolated.

Trainings are resumable: each writes ``done.json`` (minutes, stop reason) when it finishes,
and a run finds a finished training there and reuses it; an interrupted EBM training continues
from its ``last.safetensors``.

Example (the composed energy is the sum of the two bound energies):
    >>> from conceptebm.datasets import scene_concepts
    >>> from conceptebm.energies.nets import ConvEnergyNet
    >>> sc = scene_concepts()
    >>> pos = ConvEnergyNet(sc["position"], width=4); size = ConvEnergyNet(sc["size"], width=4)
    >>> x, p, s = torch.rand(2, 3, 32, 32), torch.zeros(2, 2), torch.full((2, 1), 0.3)
    >>> e = composed_energy(pos, size, p, s)
    >>> torch.allclose(e(x), pos(x, p) + size(x, s))
    True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from conceptebm.checkpoints import atomic_write_text, load_checkpoint, load_energy
from conceptebm.datasets import make_dataset
from conceptebm.energies import And, ConditionalEnergy, Energy
from conceptebm.evaluate.metrics import object_present, score_predictions
from conceptebm.infer import initial_samples, langevin
from conceptebm.infer.settings import SamplerSettings
from conceptebm.plotting import save_figure
from conceptebm.train import TrainConfig, TrainingDiverged, train
from paper.baselines.decoder import DecoderConfig, decoder_labels, load_decoder, train_decoder

__all__ = ["CrossProductConfig", "quick_config", "composed_energy", "run_cross_product",
           "FULL_TARGETS_FRACTION", "plot_errors", "plot_samples", "held_out_targets",
           "real_twin", "TEST_SEED"]

FULL_TARGETS_FRACTION = 0.01  # fraction 1 has no held-out split: score it on these targets
TEST_SEED_OFFSET = 2_000_003  # validation targets: another seed than training and evaluation
TEST_SEED = 20_261_207  # the test targets, read once
REAL_TWIN_OFFSET = 3_000_017  # the second real set of the same targets (the realism floor)
EVAL_SEED_OFFSET = 1_000_003  # the scenes that pick each EBM's best checkpoint

#: the position EBM: the shipped position recipe (CD + concept-contrastive term 0.1, cosine)
POSITION_TRAIN = {"iterations": 4000, "lr_schedule": "cosine", "contrastive_weight": 0.1,
                  "eval_every": 250, "time_limit_min": 16.0}
#: the size EBMs: the shipped size recipe (CD, cosine), scored with 100-step generations
SIZE_TRAIN = {"iterations": 3000, "lr_schedule": "cosine", "eval_every": 250,
              "eval_steps": 100, "time_limit_min": 11.0}
DECODER_TRAIN = {"iterations": 6000, "time_limit_min": 4.0}


@dataclass(frozen=True)
class CrossProductConfig:
    """Everything a cross-product run needs; the trainings take the overrides given here."""

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    out_dir: str = "paper/checkpoints/cross_product"  # a folder per training, reused
    dataset_size: int = 100_000  # training scenes per dataset (item i is a pure fn of seed, i)
    seed: int = 0
    n_test: int = 500  # held-out combinations judged per fraction and model (test and
    # validation alike)
    val_seed: int | None = None  # validation targets (None: seed + TEST_SEED_OFFSET)
    test_seed: int = TEST_SEED  # test targets, read once after every choice
    denoise_steps: tuple[int, ...] = (0, 5, 10, 20)  # candidates, chosen on validation
    equal_decoders: tuple[float, ...] = ()  # fractions whose decoder is also trained for the
    # EBMs' time (see _train_equal_decoder)
    position_train: Mapping = field(default_factory=lambda: dict(POSITION_TRAIN))
    size_train: Mapping = field(default_factory=lambda: dict(SIZE_TRAIN))
    decoder_train: Mapping = field(default_factory=lambda: dict(DECODER_TRAIN))
    sample_grid: int = 6  # held-out combinations shown in the Figure 9-style grid

    def __post_init__(self) -> None:
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ValueError(f"CrossProductConfig.fractions must lie in (0, 1], got {f}")
        if self.n_test < 2:
            raise ValueError(f"CrossProductConfig.n_test must be >= 2 (standard errors), got "
                             f"{self.n_test}")
        if self.validation_seed == self.test_seed:
            raise ValueError(f"CrossProductConfig: the validation and test seeds must differ, "
                             f"got {self.test_seed} for both")
        if not self.denoise_steps or any(int(k) != k or k < 0 for k in self.denoise_steps):
            raise ValueError(f"CrossProductConfig.denoise_steps must be integers >= 0, got "
                             f"{self.denoise_steps}")
        object.__setattr__(self, "denoise_steps", tuple(sorted({0, *map(int,
                                                                        self.denoise_steps)})))

    @property
    def validation_seed(self) -> int:
        return self.seed + TEST_SEED_OFFSET if self.val_seed is None else self.val_seed

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fractions"] = list(self.fractions)
        d["denoise_steps"] = list(self.denoise_steps)
        d["val_seed"] = self.validation_seed
        return d


def quick_config(out_dir: str) -> CrossProductConfig:
    """Tiny nets and a few updates: the whole protocol in seconds (the suite runs it)."""
    tiny = {"width": 4, "embed_dim": 8, "batch_size": 8, "sampler_steps": 3, "buffer_size": 64,
            "eval_every": 2, "eval_samples": 8, "eval_steps": 3, "checkpoint_every": 2,
            "log_every": 1, "iterations": 4}
    return CrossProductConfig(out_dir=out_dir, dataset_size=256, n_test=8, sample_grid=3,
                              denoise_steps=(0, 2),
                              position_train=tiny, size_train=tiny,
                              decoder_train={"width": 4, "hidden": 8, "iterations": 5,
                                             "batch_size": 8})


def composed_energy(position: ConditionalEnergy, size: ConditionalEnergy, p: Tensor,
                    s: Tensor) -> Energy:
    """The conjunction ``E_pos(x | p) + E_size(x | s)`` (eq. 4) for positions ``(n, 2)`` and
    sizes ``(n, 1)``, one chain per row."""
    return And(position.given(p), size.given(s))


def _key(fraction: float) -> str:
    """A fraction as it appears in result keys and folder names: 0.01, 0.1, 1.0."""
    return str(float(fraction))


def _data(fraction: float, split: str, size: int, seed: int):
    return make_dataset("cross_product", size=size, seed=seed, fraction=fraction, split=split)


def _split_seed(config: CrossProductConfig, split: str) -> int:
    if split not in ("validation", "test"):
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    return config.validation_seed if split == "validation" else config.test_seed


def held_out_targets(config: CrossProductConfig, fraction: float, split: str = "test"):
    """Held-out images and labels ``(images, {"position": (n, 2), "size": (n, 1)})`` of the
    ``"validation"`` or ``"test"`` targets."""
    f = fraction if fraction < 1 else FULL_TARGETS_FRACTION
    ds = _data(f, "test", config.n_test, _split_seed(config, split))
    return ds.batch(range(config.n_test))


def real_twin(config: CrossProductConfig, fraction: float, labels: dict,
              split: str = "test") -> Tensor:
    """A second set of real renders of the same targets (the same positions and sizes, other
    lights): the floor of the realism column."""
    f = fraction if fraction < 1 else FULL_TARGETS_FRACTION
    n = labels["position"].shape[0]
    ds = _data(f, "test", n, _split_seed(config, split) + REAL_TWIN_OFFSET)
    scene, _ = ds.scenes_and_labels(range(n))
    scene.position[:, 0] = labels["position"].float()
    scene.size[:, 0] = labels["size"].float().reshape(n)
    return ds.render_scenes(scene)


def _done(folder: Path) -> dict | None:
    path = folder / "done.json"
    return json.loads(path.read_text()) if path.exists() else None


def _train_ebm(config: CrossProductConfig, name: str, concept: str, fraction: float,
               split: str, overrides: Mapping, log, command: str) -> dict:
    folder = Path(config.out_dir) / name
    info = _done(folder)
    if info is None:
        settings = {"concept": concept, "dataset": "cross_product", "seed": config.seed,
                    "dataset_size": config.dataset_size, "out_dir": str(folder), **overrides}
        tc = TrainConfig(**settings)
        data = _data(fraction, split, config.dataset_size, config.seed)
        held = _data(fraction, split, tc.eval_samples, config.seed + EVAL_SEED_OFFSET)
        log(f"[cross_product] training {name} ({split} split, fraction {fraction})")
        try:
            result = train(tc, dataset=data, eval_dataset=held, resume=True, progress=False)
            stopped, iteration = result.stopped, result.iteration
        except TrainingDiverged as err:  # the best checkpoint so far is still a model
            log(f"[cross_product] {name}: {err}")
            stopped, iteration = f"diverged: {err}", None
        last = load_checkpoint(folder / "last.safetensors").meta
        best = load_checkpoint(folder / "best.safetensors").meta
        info = {"minutes": last["elapsed_s"] / 60, "stopped": stopped,
                "iterations": iteration or last["iteration"],
                "best_iteration": best["iteration"],
                "split": split, "fraction": fraction, "command": command,
                "train": tc.to_dict()}
        atomic_write_text(folder / "done.json", json.dumps(info, indent=2))
        # the resumable checkpoint (optimizer, replay buffer: ~130 MB at the default buffer)
        # is not needed once the training is done; best.safetensors is what the run uses
        for name_ in ("last.safetensors", "last.json"):
            (folder / name_).unlink(missing_ok=True)
    info["checkpoint"] = str(folder / "best.safetensors")
    return info


def _fit_decoder(config: CrossProductConfig, fraction: float, folder: Path, dc, command: str,
                 budget: float | None = None) -> dict:
    """Train decoder ``dc`` on ``fraction``'s training split, its checkpoint chosen on held-out
    scenes of that split (as each EBM's is), and write ``done.json``; returns its record."""
    held = _data(fraction, "train", dc.eval_samples, config.seed + EVAL_SEED_OFFSET)
    meta = {"fraction": fraction, "split": "train", "command": command,
            **({} if budget is None else {"budget_cpu_minutes": budget})}
    result = train_decoder(dc, _data(fraction, "train", config.dataset_size, config.seed),
                           folder / "decoder.safetensors", eval_dataset=held, extra_meta=meta)
    tail = result.losses[-50:]
    info = {"minutes": result.minutes, "cpu_minutes": result.cpu_minutes,
            **({} if budget is None else {"budget_cpu_minutes": budget}),
            "stopped": result.stopped, "iterations": len(result.losses),
            "final_mse": sum(tail) / len(tail), "best_iteration": result.best_iteration,
            "validation_mse": [[u, m] for u, m in result.evals],
            "fraction": fraction, "command": command, "decoder": dc.to_dict()}
    atomic_write_text(folder / "done.json", json.dumps(info, indent=2))
    return info


def _train_baseline(config: CrossProductConfig, fraction: float, log, command: str) -> dict:
    folder = Path(config.out_dir) / f"decoder_{_key(fraction)}"
    info = _done(folder)
    if info is None:
        log(f"[cross_product] training decoder_{_key(fraction)} (train split)")
        info = _fit_decoder(config, fraction, folder,
                            DecoderConfig(seed=config.seed, **config.decoder_train), command)
    info["checkpoint"] = str(folder / "decoder.safetensors")
    return info


def _train_equal_decoder(config: CrossProductConfig, fraction: float, minutes: Mapping,
                         log, command: str) -> dict:
    """The decoder of ``fraction`` trained for the EBMs' time: CPU minutes equal to its size
    EBM's plus its share of the position EBM's (shared by ``len(config.fractions)``
    fractions), as their trainings recorded them; the same data (``split="train"``), no
    augmentation (the EBMs had none), its checkpoint chosen on held-out scenes of its
    training split (validation MSE every 1000 updates)."""
    key = _key(fraction)
    folder = Path(config.out_dir) / f"decoder_equal_{key}"
    info = _done(folder)
    if info is None:
        budget = minutes[f"size_ebm.{key}"] + minutes["position_ebm"] / len(config.fractions)
        settings = {**config.decoder_train, "iterations": 200_000, "time_limit_min": None,
                    "cpu_time_limit_min": budget, "eval_every": 1000}
        log(f"[cross_product] training decoder_equal_{key} ({budget:.1f} CPU minutes)")
        info = _fit_decoder(config, fraction, folder, DecoderConfig(seed=config.seed, **settings),
                            command, budget)
    info["checkpoint"] = str(folder / "decoder.safetensors")
    return info


def _shared_sampler(a: ConditionalEnergy, b: ConditionalEnergy) -> SamplerSettings:
    sa, sb = a.sampler, b.sampler
    if sa.step_size != sb.step_size or sa.noise_scale != sb.noise_scale:
        raise ValueError(f"the position and size EBMs record different samplers ({sa} vs "
                         f"{sb}); train both with one step size and noise scale")
    return sa.replace(num_steps=max(sa.num_steps, sb.num_steps))


def _sample(make_energy, n: int, settings: SamplerSettings, image_size: int, *, seed: int,
            chunk: int, denoise: tuple[int, ...] = (0,)) -> dict[int, Tensor]:
    """Langevin from fresh noise on ``make_energy(i, j)`` (the energy of rows i:j), chunked:
    ``{K: images (n, 3, H, W)}``, the chains as they end (K = 0) and continued by K
    noise-free steps (:func:`conceptebm.infer.langevin`'s ``denoise_steps``)."""
    gen = torch.Generator().manual_seed(seed)
    out = {k: [] for k in denoise}
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        energy = make_energy(i, j)
        x0 = initial_samples((j - i, 3, image_size, image_size), init=settings.init,
                             bounds=settings.bounds, generator=gen)  # (b, 3, H, W)
        x = langevin(energy, x0, num_steps=settings.num_steps, step_size=settings.step_size,
                     noise_scale=settings.noise_scale, bounds=settings.bounds, generator=gen)
        done = 0
        for k in sorted(denoise):
            if k > done:  # the same chains, noise-free, at the last step size
                x = langevin(energy, x, num_steps=0, step_size=settings.step_size,
                             noise_scale=settings.noise_scale, bounds=settings.bounds,
                             generator=gen, denoise_steps=k - done)
                done = k
            out[k].append(x.detach())
    return {k: torch.cat(v) for k, v in out.items()}  # K -> (n, 3, H, W)


def generate_composed(position, size, p: Tensor, s: Tensor, *, seed: int,
                      chunk: int = 250) -> Tensor:
    """Images ``(n, 3, H, W)`` from the conjunction at each (p, s), from fresh noise, with the
    two models' common sampler (the larger number of steps)."""
    return _sample(lambda i, j: composed_energy(position, size, p[i:j], s[i:j]), p.shape[0],
                   _shared_sampler(position, size), position.image_size, seed=seed,
                   chunk=chunk)[0]


def _judge(judge, images: Tensor, labels: dict, concepts: dict,
           real: Tensor | None = None) -> dict:
    """Errors and accuracies (``_se``: standard errors) and, given ``real`` (2n renders of
    the same targets: the reference, then the floor set), ``fid`` and ``fid_floor``."""
    with torch.no_grad():
        pred = judge.predict(images)
    m = score_predictions(pred, {"position": labels["position"], "size": labels["size"]},
                          {**judge.concepts, "position": concepts["position"]},
                          present=object_present(images))
    names = {"position_mae": "pos_err", "size_mae": "size_err", "position_acc": "pos_acc",
             "object_rate": "object_rate"}
    out = {}
    for key, short in names.items():
        out[short], out[f"{short}_se"] = m[key].value, m[key].stderr
    if real is not None:
        from conceptebm.evaluate.realism import realism

        r = realism(images, real, judges=judge)
        out["fid"], out["fid_floor"] = r["fid"], r["fid_floor"]
    return out


def run_cross_product(config: CrossProductConfig, *, judge=None, log=print,
                      command: str = "") -> dict:
    """Train (or reuse) every model; choose ``denoise_steps`` on the validation targets; read
    the test targets once.

    ``command`` (the command line that runs this) is recorded with every training.

    Returns ``{"results": flat keys like "ebm.0.01.size_err" (test), "val.ebm.0.01.fid"
    (validation), "choice.denoise_steps", "minutes": {...}, "samples": {fraction:
    (positions, sizes, real, EBM and decoder images)}}`` (the first ``sample_grid`` test
    combinations, for :func:`plot_samples`). With a chosen ``K > 0`` the composed EBMs and the
    position EBM alone are also reported as ``ebm_denoise<K>`` and ``position_only_denoise<K>``;
    for each fraction in ``config.equal_decoders`` (or with a finished ``decoder_equal_<F>``
    folder) a decoder trained for the EBMs' time (:func:`_train_equal_decoder`) is read as
    ``baseline_equal``.
    """
    if judge is None:
        from conceptebm.evaluate import load_judges

        judge = load_judges()
    concepts = _data(1.0, "position", 1, 0).concepts
    results, minutes, samples, models, shorts = {}, {}, {}, {}, {}
    pos_info = _train_ebm(config, "position", "position", 1.0, "position",
                          config.position_train, log, command)
    minutes["position_ebm"] = pos_info["minutes"]
    position = load_energy(pos_info["checkpoint"])
    for f in config.fractions:
        key = _key(f)
        size_info = _train_ebm(config, f"size_{key}", "size", f, "size", config.size_train, log,
                               command)
        dec_info = _train_baseline(config, f, log, command)
        minutes[f"size_ebm.{key}"], minutes[f"baseline.{key}"] = (size_info["minutes"],
                                                                   dec_info["minutes"])
        models[f] = (load_energy(size_info["checkpoint"]),
                     load_decoder(dec_info["checkpoint"]))
        equal = Path(config.out_dir) / f"decoder_equal_{key}"  # the equal-budget decoder
        if f in config.equal_decoders or (equal / "done.json").exists():
            info = _train_equal_decoder(config, f, minutes, log, command)
            shorts[f] = load_decoder(info["checkpoint"])
            minutes[f"baseline_equal.{key}"] = info["minutes"]
            minutes[f"baseline_equal_cpu.{key}"] = info["cpu_minutes"]
    # validation: the noise-free steps that end the composed EBMs' chains
    fid = {k: [] for k in config.denoise_steps}
    for f in config.fractions:
        key, size = _key(f), models[f][0]
        real, labels = held_out_targets(config, f, "validation")
        ref = torch.cat([real, real_twin(config, f, labels, "validation")])
        p, s = labels["position"].float(), labels["size"].float()  # (n, 2), (n, 1)
        xs = _sample(lambda i, j, p=p, s=s, size=size: composed_energy(position, size, p[i:j],
                                                                        s[i:j]),
                     p.shape[0], _shared_sampler(position, size), position.image_size,
                     seed=config.validation_seed, chunk=250, denoise=config.denoise_steps)
        for k, x in xs.items():
            for name, v in _judge(judge, x, labels, concepts, ref).items():
                results[f"val.ebm{'' if k == 0 else f'_denoise{k}'}.{key}.{name}"] = v
            fid[k].append(results[f"val.ebm{'' if k == 0 else f'_denoise{k}'}.{key}.fid"])
        log(f"[cross_product] validation {key}: FID of the composed EBMs by denoise_steps " +
            ", ".join(f"{k}: {fid[k][-1]:.1f}" for k in config.denoise_steps))
    mean_fid = {k: sum(v) / len(v) for k, v in fid.items()}
    chosen = min(config.denoise_steps, key=lambda k: (mean_fid[k], k))
    results["choice.denoise_steps"] = chosen
    for k, v in mean_fid.items():
        results[f"val.mean_fid.denoise{k}"] = v
    log(f"[cross_product] denoise_steps chosen on validation: {chosen}")
    # test: read once
    denoise = tuple(sorted({0, chosen}))
    for f in config.fractions:
        key = _key(f)
        size, decoder = models[f]
        real, labels = held_out_targets(config, f, "test")
        ref = torch.cat([real, real_twin(config, f, labels, "test")])
        p, s = labels["position"].float(), labels["size"].float()  # (n, 2), (n, 1)
        with torch.no_grad():
            x_dec = decoder(decoder_labels(labels, ("position", "size")),
                            generator=torch.Generator().manual_seed(config.test_seed))
        x_ebm = _sample(lambda i, j, p=p, s=s, size=size: composed_energy(position, size,
                                                                           p[i:j], s[i:j]),
                        p.shape[0], _shared_sampler(position, size), position.image_size,
                        seed=config.test_seed, chunk=250, denoise=denoise)
        # the position EBM alone, same sampler and noise: what the size EBM adds (it draws
        # large spheres: its size error is what an ignored size term would cost)
        x_pos = _sample(lambda i, j, p=p: position.given(p[i:j]), p.shape[0],
                        _shared_sampler(position, size), position.image_size,
                        seed=config.test_seed, chunk=250, denoise=denoise)
        runs = [("ebm", x_ebm[0]), ("baseline", x_dec), ("real", real),
                ("position_only", x_pos[0])]
        if f in shorts:  # the decoder given the EBMs' time, selected on validation
            with torch.no_grad():
                runs.append(("baseline_equal", shorts[f](
                    decoder_labels(labels, ("position", "size")),
                    generator=torch.Generator().manual_seed(config.test_seed))))
        if chosen:
            runs += [(f"ebm_denoise{chosen}", x_ebm[chosen]),
                     (f"position_only_denoise{chosen}", x_pos[chosen])]
        for model, images in runs:
            reference = ref if model != "real" else torch.cat([ref[len(real):], real])
            for k, v in _judge(judge, images, labels, concepts, reference).items():
                results[f"{model}.{key}.{k}"] = v
        k = config.sample_grid
        samples[f] = (p[:k], s[:k], real[:k], x_ebm[0][:k], x_dec[:k])
        log(f"[cross_product] fraction {key}: " + ", ".join(
            f"{m} pos {results[f'{m}.{key}.pos_err']:.3f} size {results[f'{m}.{key}.size_err']:.4f}"
            f" fid {results[f'{m}.{key}.fid']:.1f}"
            for m in ("ebm", "baseline", "real")))
    return {"results": results, "minutes": minutes, "samples": samples}


def plot_errors(results: Mapping[str, float], fractions, path) -> Path:
    """Figure 10: position and size error against the fraction (log x), both models (and, when
    ``results`` has them, the position EBM alone and the judges on real renders)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, title in zip(axes, ("pos_err", "size_err"),
                                 ("position error (MAE)", "size error (MAE)"), strict=True):
        for model, style in (("ebm", "o-"), ("baseline", "s--"), ("baseline_equal", "D"),
                             ("position_only", "x:"), ("real", ":")):
            fs = [f for f in fractions if f"{model}.{_key(f)}.{metric}" in results]
            if not fs:
                continue
            ys = [results[f"{model}.{_key(f)}.{metric}"] for f in fs]
            se = [results[f"{model}.{_key(f)}.{metric}_se"] for f in fs]
            label = {"ebm": "composed EBMs", "baseline": "decoder (MSE)",
                     "baseline_equal": "decoder, the EBMs' CPU time",
                     "position_only": "position EBM alone", "real": "judges on real renders"}
            ax.errorbar([100 * f for f in fs], ys, yerr=se, fmt=style,
                        label=label[model], capsize=3)
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}" for f in fractions])
        ax.set_xlabel("% of positions with every size")
        ax.set_title(title, fontsize=10)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_samples(samples: Mapping, path) -> Path:
    """Figure 9 style: per fraction, a row of real renders of held-out combinations, then the
    composed EBMs' and the decoder's samples for them; targets (x, y, s) in the titles.

    ``samples``: fraction -> (positions (k, 2), sizes (k, 1), real, EBM and decoder images
    (k, 3, H, W)), as :func:`run_cross_product` returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f, name, imgs) for f, (p, s, real, x_ebm, x_dec) in samples.items()
            for name, imgs in (("real", real), ("EBMs", x_ebm), ("decoder", x_dec))]
    ncol = max(len(v[0]) for v in samples.values())
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.5 * ncol, 1.75 * len(rows)),
                             squeeze=False)
    for r, (f, name, imgs) in enumerate(rows):
        p, s = samples[f][0], samples[f][1]
        for j in range(ncol):
            ax = axes[r][j]
            ax.set_axis_off()
            if j < len(imgs):
                ax.imshow(imgs[j].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
                ax.set_title(f"({p[j, 0]:.2f},{p[j, 1]:.2f}) s{s[j, 0]:.2f}", fontsize=7)
        axes[r][0].text(-0.1, 0.5, f"{100 * f:g}%\n{name}", transform=axes[r][0].transAxes,
                        ha="right", va="center", fontsize=8)
    return save_figure(fig, path)

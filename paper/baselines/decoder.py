"""The holistic baseline of the cross-product experiment (paper section 4.4, Figure 10).

A deterministic conv decoder ``D(c, z) -> image`` conditioned on every concept at once (here
position and size, ``c = (x, y, s)``), with an optional noise input ``z`` as the paper's
baseline has, trained with mean squared error to the real image. It is sized like the concept
EBMs (about 100k parameters at width 16 against their 80k) so the comparison is about
factorisation, not capacity: the EBMs learn position and size as separate energies and compose
them; the decoder has to learn the joint map and has never seen the held-out combinations.

Trained with MSE, the noise input carries no information about the target and the decoder
learns to ignore it; it is kept (``noise_dim``, 0 turns it off) to follow the paper.

Checkpoints are safetensors + a JSON twin (:func:`conceptebm.checkpoints.save_checkpoint`):
the decoder's config travels in the file, nothing is pickled.

Example (a tiny decoder, a few updates on a tiny set):
    >>> import tempfile, pathlib
    >>> from conceptebm.datasets import make_dataset
    >>> data = make_dataset("cross_product", size=64, seed=0, fraction=0.1, split="train")
    >>> cfg = DecoderConfig(width=4, iterations=5, batch_size=8)
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> result = train_decoder(cfg, data, run / "decoder.safetensors")
    >>> dec = load_decoder(run / "decoder.safetensors")
    >>> dec(torch.tensor([[0.3, -0.2, 0.3]])).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from conceptebm.checkpoints import CheckpointError, load_checkpoint, load_state, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies.nets import concept_from_dict
from conceptebm.schedules import warmup_cosine

__all__ = ["DecoderConfig", "ConceptDecoder", "DecoderResult", "train_decoder", "load_decoder",
           "decoder_labels"]


@dataclass(frozen=True)
class DecoderConfig:
    """Settings of the decoder and of its MSE training, with their meaning."""

    concepts: tuple[str, ...] = ("position", "size")  # conditioned on jointly, in this order
    image_size: int = 32  # H = W of the generated images (a power of two >= 8)
    width: int = 16  # channels of the last hidden layer; 4w at 4x4 (~100k parameters at 16)
    noise_dim: int = 8  # size of the noise input z ~ N(0, 1) (0: none); MSE ignores it
    hidden: int = 64  # width of the MLP that embeds (c, z)
    iterations: int = 3000  # Adam updates
    batch_size: int = 64  # real images per update
    lr: float = 1e-3  # Adam learning rate, cosine-decayed to lr * 0.1 (over the iterations,
    # or over the CPU budget when cpu_time_limit_min is set, whichever ends first)
    seed: int = 0  # seeds the initial weights, the batch order and the noise
    time_limit_min: float | None = None  # stop early (with a checkpoint) after this long
    cpu_time_limit_min: float | None = None  # stop after this much CPU time of the process
    # (a budget that does not depend on what else the machine runs)
    eval_every: int = 0  # score the validation MSE every this many updates and keep the best
    # weights (0: keep the last; needs train_decoder(eval_dataset=...))
    eval_samples: int = 256  # validation images scored each time (the first of the set)

    def __post_init__(self) -> None:
        for name in ("image_size", "width", "hidden", "iterations", "batch_size",
                     "eval_samples"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"DecoderConfig.{name} must be an integer >= 1, got {v!r}")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"DecoderConfig.image_size must be a power of two >= 8, got "
                             f"{self.image_size}")
        if int(self.noise_dim) != self.noise_dim or self.noise_dim < 0:
            raise ValueError(f"DecoderConfig.noise_dim must be an integer >= 0, got "
                             f"{self.noise_dim!r}")
        if int(self.eval_every) != self.eval_every or self.eval_every < 0:
            raise ValueError(f"DecoderConfig.eval_every must be an integer >= 0, got "
                             f"{self.eval_every!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"DecoderConfig.lr must be a finite number > 0, got {self.lr!r}")
        for name in ("time_limit_min", "cpu_time_limit_min"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"DecoderConfig.{name} must be None or > 0, got {v!r}")
        if not self.concepts:
            raise ValueError("DecoderConfig.concepts must name at least one concept, got ()")
        object.__setattr__(self, "concepts", tuple(self.concepts))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["concepts"] = list(self.concepts)
        return d

    @classmethod
    def from_dict(cls, d) -> DecoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DecoderConfig settings {unknown}; known: {sorted(known)}")
        return cls(**d)


class ConceptDecoder(nn.Module):
    """``D(c, z)``: encoded concept values ``(B, L)`` (and noise ``(B, noise_dim)``) to images
    ``(B, 3, H, W)`` in [0, 1].

    Layout (width w, 32x32): an MLP embeds the concepts (rescaled to [-1, 1]) and z, a linear
    map to 4w channels at 4x4, then 4x4 stride-2 transposed convs halving the channels
    (4w -> 2w -> w at 8, 16) and a last one to 3 channels at 32x32, sigmoid.

    Example:
        >>> from conceptebm.datasets import scene_concepts
        >>> sc = scene_concepts()
        >>> dec = ConceptDecoder([sc["position"], sc["size"]], width=4, noise_dim=2)
        >>> dec(torch.zeros(5, 3)).shape
        torch.Size([5, 3, 32, 32])
    """

    def __init__(self, concepts: Sequence[Concept], *, image_size: int = 32, width: int = 16,
                 noise_dim: int = 8, hidden: int = 64):
        super().__init__()
        self.concepts = tuple(concepts)
        for c in self.concepts:
            if c.is_categorical:
                raise ValueError(f"ConceptDecoder conditions on continuous concepts; "
                                 f"{c.name!r} is categorical")
        self.dim = sum(c.dim for c in self.concepts)
        self.image_size, self.noise_dim = int(image_size), int(noise_dim)
        low = torch.cat([torch.full((c.dim,), float(c.low)) for c in self.concepts])
        high = torch.cat([torch.full((c.dim,), float(c.high)) for c in self.concepts])
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)
        levels = int(math.log2(image_size // 4))  # upsamplings from 4x4
        chans = [width * 2 ** min(levels - 1 - i, 2) for i in range(levels)]  # e.g. 4w, 2w, w
        self.top = chans[0]
        self.embed = nn.Sequential(nn.Linear(self.dim + self.noise_dim, hidden), nn.SiLU(),
                                   nn.Linear(hidden, self.top * 16), nn.SiLU())
        ups: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:], strict=False):
            ups += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        ups.append(nn.ConvTranspose2d(chans[-1], 3, 4, stride=2, padding=1))
        self.ups = nn.Sequential(*ups)

    def forward(self, c: Tensor, z: Tensor | None = None, *, generator=None) -> Tensor:
        if c.dim() != 2 or c.shape[1] != self.dim:
            raise ValueError(f"ConceptDecoder: c must be (batch, {self.dim}) for "
                             f"{[k.name for k in self.concepts]}, got {tuple(c.shape)}")
        cn = 2 * (c - self.low) / (self.high - self.low) - 1  # (B, L) in [-1, 1]
        if self.noise_dim:
            if z is None:
                z = torch.randn(c.shape[0], self.noise_dim, generator=generator,
                                device=c.device)  # (B, Z)
            cn = torch.cat([cn, z.to(cn)], dim=1)  # (B, L + Z)
        h = self.embed(cn).view(-1, self.top, 4, 4)  # (B, 4w, 4, 4)
        return torch.sigmoid(self.ups(h))  # (B, 3, H, W)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def decoder_labels(labels: dict, names: Sequence[str]) -> Tensor:
    """The decoder's input ``(n, L)``: the named float labels of a dataset batch, concatenated.

    Example:
        >>> decoder_labels({"position": torch.zeros(2, 2), "size": torch.ones(2, 1)},
        ...                ["position", "size"]).shape
        torch.Size([2, 3])
    """
    parts = []
    for name in names:
        if name not in labels:
            raise ValueError(f"labels have no {name!r} (they have {sorted(labels)})")
        v = torch.as_tensor(labels[name]).float()
        parts.append(v[:, None] if v.dim() == 1 else v)  # (n, d)
    return torch.cat(parts, dim=1)  # (n, L)


@dataclass
class DecoderResult:
    decoder: ConceptDecoder  # the weights written: the best on validation, else the last
    losses: list[float]  # MSE of each update
    minutes: float
    stopped: str  # "done", "time limit" or "cpu time limit"
    evals: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (updates,
    # validation MSE) at each evaluation
    best_iteration: int | None = None  # updates behind the written weights (None: the last)
    cpu_minutes: float | None = None  # CPU time of the process while training


@torch.no_grad()
def _validation_mse(dec: ConceptDecoder, images: Tensor, c: Tensor, z: Tensor | None) -> float:
    dec.eval()
    err = sum(float(((dec(c[i:i + 256], None if z is None else z[i:i + 256])
                      - images[i:i + 256]) ** 2).sum()) for i in range(0, len(c), 256))
    dec.train()
    return err / images.numel()


def _build(config: DecoderConfig, concepts: dict) -> ConceptDecoder:
    missing = [n for n in config.concepts if n not in concepts]
    if missing:
        raise ValueError(f"DecoderConfig.concepts {missing} are not concepts of the dataset "
                         f"(it has {sorted(concepts)})")
    return ConceptDecoder([concepts[n] for n in config.concepts], image_size=config.image_size,
                          width=config.width, noise_dim=config.noise_dim, hidden=config.hidden)


def train_decoder(config: DecoderConfig, dataset, path: str | Path, *,
                  eval_dataset=None, extra_meta: dict | None = None) -> DecoderResult:
    """Fit the decoder to ``dataset`` (``.concepts`` and ``.batch(indices) -> (images,
    labels)``) by mean squared error; write a safetensors checkpoint at ``path``.

    With ``config.eval_every`` and an ``eval_dataset`` (held-out scenes of the training
    distribution), the validation MSE of its first ``eval_samples`` images (fixed noise) is
    measured every ``eval_every`` updates and at the end, and the best weights are written:
    the decoder's own checkpoint selection, as each EBM's training picks its best snapshot."""
    t0, c0 = time.time(), time.process_time()
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(config.seed)
        dec = _build(config, dataset.concepts)
    opt = torch.optim.Adam(dec.parameters(), lr=config.lr)
    losses, stopped = [], "done"
    evals, best = [], None  # best: (mse, updates, state)
    val = None
    if config.eval_every and eval_dataset is not None:
        m = min(config.eval_samples, len(eval_dataset))
        images, labels = eval_dataset.batch(range(m))
        z = (torch.randn(m, config.noise_dim, generator=torch.Generator().manual_seed(
            config.seed + 1)) if config.noise_dim else None)
        val = (images, decoder_labels(labels, config.concepts), z)

    def evaluate(updates: int) -> None:
        nonlocal best
        mse = _validation_mse(dec, *val)
        evals.append((updates, mse))
        if best is None or mse < best[0]:
            best = (mse, updates, {k: v.detach().clone() for k, v in dec.state_dict().items()})

    for it in range(config.iterations):
        if config.cpu_time_limit_min:  # the cosine follows the CPU budget spent
            spent = (time.process_time() - c0) / (60 * config.cpu_time_limit_min)
            progress = max(it / max(config.iterations - 1, 1), min(spent, 1.0))
            lr = warmup_cosine(int(progress * 10_000), peak=config.lr, floor=config.lr * 0.1,
                               decay_steps=10_000)
        else:
            lr = warmup_cosine(it, peak=config.lr, floor=config.lr * 0.1,
                               decay_steps=max(config.iterations - 1, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(dataset), (config.batch_size,), generator=gen)
        x, labels = dataset.batch(idx)  # (B, 3, H, W)
        c = decoder_labels(labels, config.concepts)  # (B, L)
        loss = ((dec(c, generator=gen) - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if val is not None and (it + 1) % config.eval_every == 0:
            evaluate(it + 1)
        if config.time_limit_min and time.time() - t0 > 60 * config.time_limit_min:
            stopped = "time limit"
            break
        if config.cpu_time_limit_min and \
                time.process_time() - c0 > 60 * config.cpu_time_limit_min:
            stopped = "cpu time limit"
            break
    if val is not None and (not evals or evals[-1][0] != len(losses)):
        evaluate(len(losses))
    best_iteration = None
    if best is not None:
        dec.load_state_dict(best[2])
        best_iteration = best[1]
    minutes, cpu_minutes = (time.time() - t0) / 60, (time.process_time() - c0) / 60
    meta = {"decoder": config.to_dict(), "cpu_minutes": cpu_minutes,
            "concepts": {n: dataset.concepts[n].to_dict() for n in config.concepts},
            "iteration": len(losses), "minutes": minutes, "stopped": stopped,
            "final_mse": sum(losses[-50:]) / len(losses[-50:]),
            "best_iteration": best_iteration,
            "validation_mse": [[u, m] for u, m in evals], **(extra_meta or {})}
    save_checkpoint(Path(path), {"model": dec.state_dict()}, meta)
    return DecoderResult(dec.eval(), losses, minutes, stopped, evals, best_iteration,
                         cpu_minutes)


def load_decoder(path: str | Path) -> ConceptDecoder:
    """Rebuild a decoder written by :func:`train_decoder`, in eval mode."""
    ckpt = load_checkpoint(path)
    if "decoder" not in ckpt.meta:
        raise CheckpointError(f"{path} is not a decoder checkpoint (no 'decoder' config); "
                              "write one with paper.baselines.decoder.train_decoder")
    config = DecoderConfig.from_dict(ckpt.meta["decoder"])
    concepts = {n: concept_from_dict(d) for n, d in ckpt.meta["concepts"].items()}
    dec = _build(config, concepts)
    load_state(dec, ckpt.group("model"), f"{path} (decoder weights)")
    return dec.eval()

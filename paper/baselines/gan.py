"""A conditional DCGAN, the continual-learning baseline of the paper (section 4.3, Table 2).

One generator and one discriminator (~100k parameters each, 32x32 images) are trained on a
sequence of datasets, one :func:`fit` per stage, the same weights (and Adam states) carried
on. Labels enter both nets as one condition vector with a slot per concept
(:data:`CONCEPTS`: position (2 numbers), shape (one-hot 3), color (one-hot 8)), each slot
followed by a "given" bit; a concept that is not given at a stage is zeros with the bit off.
``given`` decides which slots a stage fills from the batch's labels:

* the paper's baseline is conditioned on the new stage's concept only (``given=("shape",)``
  at stage 2), so after stage 2 nothing tells it where to put the object: its position
  accuracy falls to chance (paper: 0.111);
* a continual learner that reads every label the batch carries (what our datasets give and
  what the frozen EBMs are fed) passes the concepts of all stages so far.

The generator maps ``z ~ N(0, I_32)`` and the condition through a linear layer to 64x4x4,
then three transposed-conv upsamplings (BatchNorm, ReLU) to 3x32x32 in [0, 1] (sigmoid).
The discriminator is a strided conv net with spectral norm and LeakyReLU, and a projection
head (Miyato & Koyama 2018): ``D(x, c) = w . h(x) + (V c) . h(x)``. Every conv layer of both
also sees two coordinate maps and the condition broadcast over the image, the inductive bias
our EBM nets have (``coord_conv``, ``label_maps``): without it the GAN reached position
accuracy 0.30 after 5,800 updates (2.5 min) where the EBM had 0.99. Loss: hinge; Adam (2e-4,
betas (0.5, 0.999)). Checkpoints are safetensors + JSON (``conceptebm.checkpoints``).

Example (a few steps on tiny data):
    >>> from conceptebm.datasets import make_dataset
    >>> gan = ConditionalGAN(seed=0)
    >>> ds = make_dataset("continual_position", size=64)
    >>> log = fit(gan, ds, given=("position",), steps=2, batch_size=8, seed=0)
    >>> len(log["d_loss"]), gan.sample({"position": torch.zeros(4, 2)}, ("position",)).shape
    (2, torch.Size([4, 3, 32, 32]))
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from conceptebm.checkpoints import load_checkpoint, load_state, save_checkpoint
from conceptebm.datasets import scene_concepts

__all__ = ["CONCEPTS", "ConditionalGAN", "Generator", "Discriminator", "encode_condition",
           "fit", "save_gan", "load_gan", "cond_dim", "CLOCKS"]

CONCEPTS = ("position", "shape", "color")  # the condition's slots, in this order
CLOCKS = ("wall", "process")  # what fit's time limit counts


def cond_dim() -> int:
    """Width of the condition vector: each concept's encoding plus its "given" bit (16)."""
    concepts = scene_concepts()
    return sum(concepts[n].dim + 1 for n in CONCEPTS)


def encode_condition(labels: Mapping[str, Tensor], given: Sequence[str], n: int,
                     device=None) -> Tensor:
    """``(n, cond_dim())`` condition: the ``given`` concepts encoded from ``labels`` (raw
    dataset labels: ``(n, 2)`` positions, ``(n,)`` class indices), each followed by a 1;
    every other slot zeros.

    Example:
        >>> c = encode_condition({"shape": torch.tensor([1])}, ("shape",), 1)
        >>> c.shape, c[0, :3].tolist(), c[0, 3:7].tolist()
        (torch.Size([1, 16]), [0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0])
    """
    unknown = [g for g in given if g not in CONCEPTS]
    if unknown:
        raise ValueError(f"given={tuple(given)}: {unknown} not among the GAN's concepts "
                         f"{CONCEPTS}; pass a subset of those")
    concepts = scene_concepts()
    parts = []
    for name in CONCEPTS:
        dim = concepts[name].dim
        if name in given:
            if name not in labels:
                raise ValueError(f"given includes {name!r} but labels has only "
                                 f"{sorted(labels)}; pass its labels or drop it from given")
            enc = concepts[name].encode(torch.as_tensor(labels[name]), device=device)
            enc = enc.float().reshape(n, dim)  # (n, dim)
            parts += [enc, torch.ones(n, 1, device=device)]
        else:
            parts += [torch.zeros(n, dim + 1, device=device)]
    return torch.cat(parts, dim=1)  # (n, cond_dim)


def _maps(c: Tensor, size: int) -> Tensor:
    """``(n, 2 + cond, size, size)``: pixel coordinates in [-1, 1] (x right, y up, as the
    scenes' positions) and the condition broadcast over the image; concatenated to the input
    of every conv layer (what our EBMs' ``coord_conv`` and ``label_maps`` give them)."""
    n = c.shape[0]
    r = torch.linspace(-1, 1, size, device=c.device, dtype=c.dtype)
    yy, xx = torch.meshgrid(-r, r, indexing="ij")  # (size, size) each; row 0 is the top
    coords = torch.stack([xx, yy]).expand(n, 2, size, size)
    return torch.cat([coords, c[:, :, None, None].expand(-1, -1, size, size)], dim=1)


class Generator(nn.Module):
    """``(z (n, z_dim), c (n, cond)) -> images (n, 3, 32, 32)`` in [0, 1]: a linear layer to
    ``width x 4 x 4``, then upsampling layers (4x4 transposed convs, BatchNorm, ReLU) to 32x32
    and a 3x3 conv to RGB; every layer also sees the coordinate and condition maps."""

    def __init__(self, z_dim: int = 32, cond: int = 16, width: int = 64):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.fc = nn.Linear(z_dim + cond, width * 16)
        extra = 2 + cond
        chans = [width, width // 2, width // 4, width // 8]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a + extra, b, 4, 2, 1)
                                 for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.norms = nn.ModuleList([nn.BatchNorm2d(width)] +
                                   [nn.BatchNorm2d(b) for b in chans[1:-1]])
        self.rgb = nn.Conv2d(chans[-1] + extra, 3, 3, 1, 1)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.fc(torch.cat([z, c], dim=1)).view(-1, self.width, 4, 4)  # (n, w, 4, 4)
        for i, up in enumerate(self.ups):
            if i < len(self.norms):
                h = self.norms[i](h)
            h = torch.relu(h)
            h = up(torch.cat([h, _maps(c, h.shape[-1])], dim=1))  # (n, w / 2^(i+1), 2s, 2s)
        h = torch.relu(h)
        return torch.sigmoid(self.rgb(torch.cat([h, _maps(c, h.shape[-1])], dim=1)))


class Discriminator(nn.Module):
    """``(x (n, 3, 32, 32), c (n, cond)) -> (n,)`` scores, higher = real: strided convs with
    spectral norm and LeakyReLU on the image plus coordinate and condition maps, and a
    projection head ``w . h + (V c) . h``."""

    def __init__(self, cond: int = 16, width: int = 16):
        super().__init__()
        w = width

        def conv(c_in, c_out, k, s, p):
            return nn.Sequential(spectral_norm(nn.Conv2d(c_in, c_out, k, s, p)),
                                 nn.LeakyReLU(0.2))

        self.features = nn.Sequential(conv(3 + 2 + cond, w, 4, 2, 1), conv(w, 2 * w, 4, 2, 1),
                                      conv(2 * w, 4 * w, 4, 2, 1), conv(4 * w, 4 * w, 3, 1, 1))
        feat = 4 * w * 16
        self.out = spectral_norm(nn.Linear(feat, 1))
        self.embed = spectral_norm(nn.Linear(cond, feat, bias=False))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        inp = torch.cat([2 * x - 1, _maps(c, x.shape[-1])], dim=1)  # (n, 3 + 2 + cond, H, W)
        h = self.features(inp).flatten(1)  # (n, feat)
        return self.out(h).squeeze(1) + (self.embed(c) * h).sum(1)  # (n,)


class ConditionalGAN(nn.Module):
    """Generator, discriminator and their Adam optimizers (carried across stages)."""

    def __init__(self, *, z_dim: int = 32, g_width: int = 64, d_width: int = 16,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0):
        super().__init__()
        self.config = {"z_dim": z_dim, "g_width": g_width, "d_width": d_width, "lr": lr,
                       "betas": list(betas), "seed": seed, "cond": cond_dim(),
                       "concepts": list(CONCEPTS)}
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG untouched
            torch.manual_seed(seed)
            self.generator = Generator(z_dim, cond_dim(), g_width)
            self.discriminator = Discriminator(cond_dim(), d_width)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=tuple(betas))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=tuple(betas))
        self.stages: list[dict] = []  # what each fit trained on (recorded in checkpoints)

    def snapshot(self) -> dict:
        """A deep copy of everything training changes: both nets (BatchNorm statistics
        included) and both Adam states; :meth:`restore` puts it back."""
        return copy.deepcopy({"generator": self.generator.state_dict(),
                              "discriminator": self.discriminator.state_dict(),
                              "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()})

    def restore(self, snap: dict) -> None:
        """Put back what :meth:`snapshot` copied (weights and Adam states)."""
        self.generator.load_state_dict(snap["generator"])
        self.discriminator.load_state_dict(snap["discriminator"])
        self.opt_g.load_state_dict(copy.deepcopy(snap["opt_g"]))
        self.opt_d.load_state_dict(copy.deepcopy(snap["opt_d"]))

    @torch.no_grad()
    def sample(self, labels: Mapping[str, Tensor], given: Sequence[str], *, n: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``(n, 3, 32, 32)`` images for the ``given`` concepts' values in ``labels``."""
        if n is None:
            if not given:
                raise ValueError("sample: pass n when given is empty (no labels set the count)")
            n = len(torch.as_tensor(labels[given[0]]))
        device = next(self.parameters()).device
        c = encode_condition(labels, given, n, device)  # (n, cond)
        z = torch.randn(n, self.config["z_dim"], generator=generator, device=device)
        was = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z, c)
        finally:
            self.generator.train(was)


def _clock(kind: str):
    if kind not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {kind!r}")
    return time.process_time if kind == "process" else time.time


def fit(gan: ConditionalGAN, dataset, *, given: Sequence[str], steps: int, batch_size: int = 64,
        seed: int = 0, time_limit_s: float | None = None, log_every: int = 1,
        clock: str = "wall", check_every_s: float | None = None, on_check=None) -> dict:
    """Train ``gan`` on ``dataset`` (``dataset.batch(idx) -> (images, labels)``) for ``steps``
    hinge-loss updates of D and G (or until ``time_limit_s`` of ``clock``: ``"wall"`` or
    ``"process"``, the process's CPU time, which load from other jobs does not eat),
    conditioned on the ``given`` concepts' labels. The weights and both Adam states go on from
    wherever ``gan`` is (a stage before's fit carries over).

    ``on_check(step)`` is called every ``check_every_s`` of ``clock`` and after the last step
    (e.g. to judge a snapshot on validation data); its own time is not counted against
    ``time_limit_s``. Returns ``{"d_loss": [...], "g_loss": [...], "steps": k, "seconds": s,
    "cpu_seconds": c, "train_seconds": t}`` (``t``: the budget's clock less the checks) and
    appends that summary (without the curves) to ``gan.stages``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if check_every_s is not None and not check_every_s > 0:
        raise ValueError(f"check_every_s must be > 0, got {check_every_s}")
    now = _clock(clock)
    gen = torch.Generator().manual_seed(seed)
    device = next(gan.parameters()).device
    G, D = gan.generator.train(), gan.discriminator.train()
    d_losses, g_losses, k = [], [], 0
    t0, c0, start = time.time(), time.process_time(), now()
    spent_checking = 0.0  # clock seconds inside on_check, not part of the budget
    next_check = check_every_s

    def check(step: int) -> None:
        nonlocal spent_checking
        t = now()
        on_check(step)
        G.train()
        D.train()
        spent_checking += now() - t

    for k in range(1, steps + 1):
        idx = torch.randint(len(dataset), (batch_size,), generator=gen)
        real, labels = dataset.batch(idx)
        real = real.to(device)  # (B, 3, 32, 32)
        c = encode_condition(labels, given, batch_size, device)  # (B, cond)
        z = torch.randn(batch_size, gan.config["z_dim"], generator=gen).to(device)
        fake = G(z, c)  # (B, 3, 32, 32)
        d_loss = (torch.relu(1 - D(real, c)).mean() + torch.relu(1 + D(fake.detach(), c)).mean())
        gan.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        gan.opt_d.step()
        g_loss = -D(fake, c).mean()
        gan.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        gan.opt_g.step()
        if not (math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())):
            raise FloatingPointError(f"GAN training diverged at step {k}: d_loss "
                                     f"{d_loss.item()}, g_loss {g_loss.item()}; lower lr")
        if k % log_every == 0:
            d_losses.append(d_loss.item())
            g_losses.append(g_loss.item())
        used = now() - start - spent_checking
        done = k == steps or (time_limit_s is not None and used > time_limit_s)
        if on_check is not None and (done or (next_check is not None and used >= next_check)):
            check(k)
            if next_check is not None and next_check <= used:
                next_check = (math.floor(used / check_every_s) + 1) * check_every_s
        if done:
            break
    seconds, cpu = time.time() - t0, time.process_time() - c0
    train_seconds = now() - start - spent_checking
    gan.stages.append({"dataset": getattr(dataset, "name", ""), "given": list(given),
                       "steps": k, "seconds": seconds, "cpu_seconds": cpu,
                       "train_seconds": train_seconds, "clock": clock,
                       "batch_size": batch_size, "seed": seed})
    return {"d_loss": d_losses, "g_loss": g_losses, "steps": k, "seconds": seconds,
            "cpu_seconds": cpu, "train_seconds": train_seconds}


def _opt_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for key, v in state.items():
            out[f"{i}.{key}"] = torch.as_tensor(v).float()
    return out


def _load_opt(opt: torch.optim.Optimizer, tensors: Mapping[str, Tensor]) -> None:
    sd = opt.state_dict()
    state: dict = {}
    for name, v in tensors.items():
        i, key = name.split(".", 1)
        state.setdefault(int(i), {})[key] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_gan(gan: ConditionalGAN, path: str | Path, *, optimizer: bool = False,
             **meta) -> None:
    """Write weights, config and stage history (and with ``optimizer`` the Adam states, 2x
    the weights' size) as safetensors + JSON."""
    groups = {"generator": gan.generator.state_dict(),
              "discriminator": gan.discriminator.state_dict()}
    if optimizer:
        groups.update(opt_g=_opt_tensors(gan.opt_g), opt_d=_opt_tensors(gan.opt_d))
    save_checkpoint(path, {k: v for k, v in groups.items() if v},
                    {"gan": gan.config, "stages": gan.stages, **meta})


def load_gan(path: str | Path, device=None) -> ConditionalGAN:
    """Rebuild a :class:`ConditionalGAN` (weights, optimizers, stage history) from
    :func:`save_gan`'s file."""
    ckpt = load_checkpoint(path, device=device)
    if "gan" not in ckpt.meta:
        raise ValueError(f"{path} holds no GAN (no 'gan' config); pass a file save_gan wrote")
    cfg = dict(ckpt.meta["gan"])
    gan = ConditionalGAN(z_dim=cfg["z_dim"], g_width=cfg["g_width"], d_width=cfg["d_width"],
                         lr=cfg["lr"], betas=tuple(cfg["betas"]), seed=cfg["seed"])
    if device is not None:
        gan.to(device)
    load_state(gan.generator, ckpt.groups["generator"], f"{path} (generator)")
    load_state(gan.discriminator, ckpt.groups["discriminator"], f"{path} (discriminator)")
    if "opt_g" in ckpt.groups:
        _load_opt(gan.opt_g, ckpt.groups["opt_g"])
    if "opt_d" in ckpt.groups:
        _load_opt(gan.opt_d, ckpt.groups["opt_d"])
    gan.stages = list(ckpt.meta.get("stages", []))
    return gan

"""Judges: supervised networks that read concept values off an image (paper section 4.2).

The paper scores generated images with a position regressor and colour / shape classifiers
trained on rendered scenes. We use **one multi-head network** for all concepts:

* every concept is a property of the same single object, so the trunk's job (find the object,
  describe it) is shared; one trunk costs a quarter of the compute and storage of four;
* one forward pass judges all concepts at once, which is what scoring a conjunction needs;
* the heads are independent linear maps, and ``JudgeNet`` takes any set of concepts, so a
  single-concept judge is the same code with one concept.

The price is that the concepts' errors can be correlated (a blurry sample can fool all heads);
the held-out metrics in the shipped JSON are measured per concept.

Layout (32x32 input, ~400k parameters): conv 3x3 32 -> conv 64 s2 -> 64 s2 -> 128 s2 (each
BatchNorm + SiLU) -> flatten 4x4x128 -> FC 128 -> one linear head per concept. Flattening
(not pooling) keeps where things are, which the position head needs. Continuous heads regress
the value rescaled to [-1, 1] over the concept's range; categorical heads give logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from conceptebm.concepts import Concept

__all__ = ["JudgeConfig", "JudgeNet", "Judge"]


@dataclass(frozen=True)
class JudgeConfig:
    """Everything needed to rebuild a :class:`JudgeNet` (stored in the checkpoint's JSON)."""

    concepts: tuple[Concept, ...]  # one head per concept, in this order
    image_size: int = 32  # square RGB input; must be divisible by 2 ** (len(widths) - 1)
    widths: tuple[int, ...] = (32, 64, 64, 128)  # conv widths; the first conv has stride 1
    hidden: int = 128  # width of the shared fully connected layer
    extra: dict = field(default_factory=dict, compare=False)  # free-form (e.g. palette RGB)

    def __post_init__(self) -> None:
        if not self.concepts:
            raise ValueError("JudgeConfig needs at least one concept to judge")
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate concept names {names}")
        if not self.widths or any(int(w) < 1 for w in self.widths) or self.hidden < 1:
            raise ValueError(f"widths and hidden must be positive, got {self.widths}, "
                             f"{self.hidden}")
        down = 2 ** (len(self.widths) - 1)
        if self.image_size < down or self.image_size % down:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of {down} "
                f"(2 ** (len(widths) - 1) for widths={self.widths})"
            )

    def to_dict(self) -> dict:
        return {"concepts": [c.to_dict() for c in self.concepts], "image_size": self.image_size,
                "widths": list(self.widths), "hidden": self.hidden, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: Mapping) -> JudgeConfig:
        return cls(concepts=tuple(Concept.from_dict(c) for c in d["concepts"]),
                   image_size=int(d["image_size"]), widths=tuple(int(w) for w in d["widths"]),
                   hidden=int(d["hidden"]), extra=dict(d.get("extra", {})))


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.SiLU())


class JudgeNet(nn.Module):
    """The multi-head CNN. ``forward(images) -> {concept name: raw head output}``.

    Raw outputs are logits ``(B, K)`` for categorical concepts and values rescaled to
    ``[-1, 1]`` ``(B, dim)`` for continuous ones; :class:`Judge` turns them into predictions.
    """

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        w = config.widths
        layers = [_conv(3, w[0], 1)] + [_conv(a, b, 2) for a, b in zip(w, w[1:], strict=False)]
        self.trunk = nn.Sequential(*layers)
        side = config.image_size // 2 ** (len(w) - 1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(w[-1] * side * side, config.hidden),
                                nn.SiLU())
        self.heads = nn.ModuleDict({c.name: nn.Linear(config.hidden, c.dim)
                                    for c in config.concepts})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        h = self.fc(self.trunk(images * 2.0 - 1.0))  # (B, hidden); pixels centred to [-1, 1]
        return {name: head(h) for name, head in self.heads.items()}  # (B, dim) each


def to_unit(concept: Concept, value: Tensor) -> Tensor:
    """Rescale a continuous value from ``[low, high]`` to ``[-1, 1]`` (the head's target)."""
    return (value - concept.low) / (concept.high - concept.low) * 2.0 - 1.0


def from_unit(concept: Concept, z: Tensor) -> Tensor:
    """Inverse of :func:`to_unit`; not clamped, so a judge may say "just outside the range"."""
    return concept.low + (z + 1.0) * 0.5 * (concept.high - concept.low)


class Judge:
    """A trained :class:`JudgeNet` with its concepts: images in, concept values out.

    Example:
        >>> import torch
        >>> from conceptebm.evaluate import load_judges
        >>> judge = load_judges()
        >>> out = judge.predict(torch.rand(4, 3, 32, 32))
        >>> sorted(out)
        ['color', 'color_probs', 'position', 'shape', 'shape_probs', 'size']
        >>> out["position"].shape, out["color"].dtype
        (torch.Size([4, 2]), torch.int64)
    """

    def __init__(self, net: JudgeNet, metadata: Mapping | None = None):
        self.net = net.eval()
        self.metadata = dict(metadata or {})  # training command, time, held-out metrics, ...

    @property
    def config(self) -> JudgeConfig:
        return self.net.config

    @property
    def concepts(self) -> dict[str, Concept]:
        return {c.name: c for c in self.config.concepts}

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device) -> Judge:
        """Move the network (in place) and return ``self``."""
        self.net.to(device)
        return self

    def check_images(self, images: Tensor) -> None:
        """Raise a clear error unless ``images`` is a finite ``(B, 3, S, S)`` batch in [0, 1]."""
        s = self.config.image_size
        if not isinstance(images, Tensor) or not images.is_floating_point():
            raise ValueError(f"images must be a floating tensor (B, 3, {s}, {s}) in [0, 1], got "
                             f"{type(images).__name__} {getattr(images, 'dtype', '')}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("images is an empty batch (B = 0); there is nothing to judge")
        if images.shape[-2:] != (s, s):
            raise ValueError(
                f"this judge reads {s}x{s} images, got {tuple(images.shape[-2:])}; resize with "
                f"torch.nn.functional.interpolate(images, size={s}, mode='bilinear', "
                "antialias=True) or train a judge at that size"
            )
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or inf")
        if images.min() < 0 or images.max() > 1:
            raise ValueError(
                f"images must lie in [0, 1] (got min {images.min().item():.3g}, max "
                f"{images.max().item():.3g}); clamp samples to [0, 1] (as the samplers' "
                "bounds do) or rescale them before judging"
            )

    def logits(self, images: Tensor) -> dict[str, Tensor]:
        """Raw head outputs (see :class:`JudgeNet`), with gradients; no input checks."""
        return self.net(images.to(self.device, torch.float32))

    @torch.no_grad()
    def predict(self, images: Tensor, *, batch_size: int = 512) -> dict[str, Tensor]:
        """Judge a batch: ``{name: (B, dim) float}`` for continuous concepts and
        ``{name: (B,) long index, name_probs: (B, K)}`` for categorical ones.

        Runs on the judge's device in chunks of ``batch_size``; results come back on the
        device of ``images``.
        """
        self.check_images(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chunks = [self.logits(chunk) for chunk in images.split(batch_size)]
        out: dict[str, Tensor] = {}
        for c in self.config.concepts:
            raw = torch.cat([ch[c.name] for ch in chunks]).to(images.device)  # (B, dim)
            if c.is_categorical:
                probs = raw.softmax(dim=-1)  # (B, K)
                out[c.name] = probs.argmax(dim=-1)  # (B,)
                out[f"{c.name}_probs"] = probs
            else:
                out[c.name] = from_unit(c, raw)  # (B, dim)
        return out

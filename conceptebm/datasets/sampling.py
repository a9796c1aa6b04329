"""Random scene parameters as a pure function of (seed, index), vectorised over a batch.

Each item ``i`` draws *all* its random numbers in one call, ``torch.rand(n, generator=g)`` with
a local ``torch.Generator`` seeded from ``(salt, seed, i)``; the batch of those uniforms is
then turned into scenes by vectorised code. So item ``i`` never depends on which other items
share its batch, on DataLoader workers, or on the global RNG.

:class:`SceneSpec` says what varies; :func:`sample_scenes` draws scenes and labels from it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from conceptebm.datasets.scene import (
    DEFAULT_VIEW,
    PALETTE,
    POSITION_RANGE,
    SHAPES,
    SIZE_RANGE,
    Scene,
    palette_tensor,
)

__all__ = ["SceneSpec", "Range", "item_uniforms", "sample_scenes", "name_salt"]

Range = tuple[float, float]  # (low, high); low == high means fixed
_MASK64 = (1 << 64) - 1
GAP = 0.05  # world units kept free between the footprints of any two objects
PAIR_TRIES = 64  # candidate layouts per multi-object scene (first valid one wins)
SEQUENTIAL_TRIES = 256  # candidate positions per object placed one after another
CLUTTER_TRIES = 16  # candidate positions per clutter object (none valid: object dropped)
CLUTTER_SIZE = (0.18, 0.30)
CLUTTER_GREY = (0.30, 0.50)
CLUTTER_AREA = 1.3  # clutter centres lie in [-1.3, 1.3]^2


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def name_salt(name: str) -> int:
    """A stable 32-bit number for a dataset name, so equal seeds give different datasets."""
    return zlib.crc32(name.encode())


def item_uniforms(seed: int, indices: Sequence[int], n: int, *, salt: int = 0) -> Tensor:
    """Uniforms ``(len(indices), n)`` in float64; row ``j`` depends only on (salt, seed, index).

    One local generator is re-seeded per item (cheaper than a new one; same numbers).
    """
    g = torch.Generator()
    out = torch.empty(len(indices), n, dtype=torch.float64)
    base = _splitmix64(_splitmix64(salt) ^ int(seed))
    for j, i in enumerate(indices):
        g.manual_seed(_splitmix64(base ^ int(i)) >> 1)
        torch.rand(n, generator=g, dtype=torch.float64, out=out[j])
    return out


class _Draws:
    """Hands out consecutive columns of a uniforms matrix; the order of takes is the layout."""

    def __init__(self, u: Tensor):
        self.u, self.used = u, 0

    def take(self, *shape: int) -> Tensor:
        k = 1
        for s in shape:
            k *= s
        if self.used + k > self.u.shape[1]:
            raise RuntimeError(f"scene sampler needs more than {self.u.shape[1]} draws")
        out = self.u[:, self.used:self.used + k]
        self.used += k
        return out.reshape(self.u.shape[0], *shape)


def _lerp(r: Range, u: Tensor) -> Tensor:
    return r[0] + (r[1] - r[0]) * u


def _lerp_each(ranges: Sequence[Range], u: Tensor) -> Tensor:
    """Column ``j`` of ``u (B, m)`` mapped onto ``ranges[j]``."""
    lo = torch.tensor([r[0] for r in ranges], dtype=u.dtype)
    hi = torch.tensor([r[1] for r in ranges], dtype=u.dtype)
    return lo + (hi - lo) * u


def uniform_placement(u_pos: Tensor, u_size: Tensor, size_range: Range = SIZE_RANGE):
    """Positions uniform on ``[-1, 1]^2``, sizes uniform on ``size_range`` (elementwise)."""
    return _lerp(POSITION_RANGE, u_pos), _lerp(size_range, u_size[..., 0])


@dataclass(frozen=True)
class SceneSpec:
    """What varies in a family of scenes (every range is sampled uniformly).

    Attributes:
        n_objects: labelled objects per scene (their footprints never overlap).
        colors, shapes: allowed palette / shape names of labelled objects.
        size_range: labelled object sizes.
        placement: optional ``f(u_pos (..., 2), u_size (..., 1)) -> (position, size)`` that
            replaces uniform position and size (e.g. the cross-product split).
        distinct_colors: in multi-object scenes, labelled objects get different colours.
        clutter: (min, max) number of grey unlabelled objects, placed without overlap.
        view: four ranges (azimuth, elevation, distance, fov) of the camera.
        light: ranges (azimuth, elevation, intensity, ambient) of the light;
        light_tint: each light colour channel is ``1 - light_tint * U(0, 1)``.
        ground_tint: strength of the orienting colour gradient on the ground.
        sequential: several objects are placed one after another, each at the first of
            ``SEQUENTIAL_TRIES`` candidate positions whose footprint keeps ``GAP`` from those
            already placed (a joint draw of all positions rarely succeeds for many objects;
            this fits 6 small ones apart); the labels keep their object dim for any count,
            0 and 1 included (``position (B, n, 2)``).
    """

    n_objects: int = 1
    colors: tuple[str, ...] = tuple(PALETTE)
    shapes: tuple[str, ...] = SHAPES
    size_range: Range = SIZE_RANGE
    placement: Callable | None = None
    distinct_colors: bool = True
    clutter: tuple[int, int] = (0, 0)
    view: tuple[Range, Range, Range, Range] = tuple((v, v) for v in DEFAULT_VIEW)
    light: tuple[Range, Range, Range, Range] = ((-70.0, 10.0), (45.0, 70.0), (0.60, 0.80),
                                                (0.25, 0.35))
    light_tint: float = 0.1
    ground_tint: float = 0.0
    sequential: bool = False
    extra: dict = field(default_factory=dict)  # factory options, kept for the record

    def __post_init__(self):
        if self.n_objects < (0 if self.sequential else 1):
            raise ValueError(f"n_objects must be >= {0 if self.sequential else 1}, got "
                             f"{self.n_objects}")
        for c in self.colors:
            if c not in PALETTE:
                raise ValueError(f"unknown color {c!r}; palette: {', '.join(PALETTE)}")
        for s in self.shapes:
            if s not in SHAPES:
                raise ValueError(f"unknown shape {s!r}; shapes: {', '.join(SHAPES)}")
        if not self.colors or not self.shapes:
            raise ValueError("colors and shapes must each name at least one value")
        lo, hi = self.size_range
        if not 0 < lo <= hi:
            raise ValueError(f"size_range must satisfy 0 < low <= high, got {self.size_range}")
        if not 0 <= self.clutter[0] <= self.clutter[1]:
            raise ValueError(f"clutter must be (min, max) with 0 <= min <= max, got "
                             f"{self.clutter}")
        if self.placement is not None and self.n_objects != 1:
            raise ValueError("a custom placement is only supported with n_objects=1")

    @property
    def tries(self) -> int:
        """Candidate layouts (joint) or positions per object (sequential) drawn per scene."""
        if self.n_objects == 1:
            return 1
        return SEQUENTIAL_TRIES if self.sequential else PAIR_TRIES

    @property
    def num_draws(self) -> int:
        """How many uniforms one scene consumes (must match :func:`sample_scenes`)."""
        n, tries = self.n_objects, self.tries
        colors = len(self.colors) if self.distinct_colors and n > 1 else n
        clutter = 1 + self.clutter[1] * (CLUTTER_TRIES * 2 + 3)
        return tries * n * 2 + n + colors + n + clutter + 4 + 4 + 3


def _first_valid(valid: Tensor, score: Tensor) -> Tensor:
    """Index of the first True along the last dim; where none, the highest score."""
    t = valid.shape[-1]
    order = torch.arange(t, 0, -1, device=valid.device)
    first = (valid * order).argmax(-1)
    return torch.where(valid.any(-1), first, score.argmax(-1))


def _gaps(pos: Tensor, size: Tensor) -> Tensor:
    """Free space between square footprints of objects ``(..., n, 2)``: ``(..., n, n)``."""
    cheb = (pos[..., :, None, :] - pos[..., None, :, :]).abs().amax(-1)
    return cheb - (size[..., :, None] + size[..., None, :])


def _place_sequentially(pos: Tensor, size: Tensor) -> Tensor:
    """Per scene, which of ``T`` candidates each object takes, ``(B, n)``: object ``j`` the
    first candidate ``pos[:, t, j]`` whose footprint keeps ``GAP`` from objects ``< j`` as
    placed (none free: the one with the most room). ``pos (B, T, n, 2)``, ``size (B, T, n)``
    (a size per object, the same over ``T``)."""
    b, _, n, _ = pos.shape
    rows = torch.arange(b)
    picks, placed = [], []
    for j in range(n):
        cand, s = pos[:, :, j], size[:, 0, j]  # (B, T, 2), (B,)
        if placed:
            p = torch.stack([q for q, _ in placed], dim=1)  # (B, j, 2)
            ps = torch.stack([r for _, r in placed], dim=1)  # (B, j)
            cheb = (cand[:, :, None, :] - p[:, None, :, :]).abs().amax(-1)  # (B, T, j)
            free = (cheb - ps[:, None, :] - s[:, None, None]).amin(-1)  # (B, T)
        else:
            free = torch.full(cand.shape[:2], float("inf"), dtype=cand.dtype)
        pick = _first_valid(free > GAP, free)
        picks.append(pick)
        placed.append((cand[rows, pick], s))
    return torch.stack(picks, dim=1) if picks else torch.zeros(b, 0, dtype=torch.long)


def sample_scenes(spec: SceneSpec, u: Tensor, *, position: Tensor | None = None):
    """Scenes and labels from uniforms ``u (B, spec.num_draws)``.

    ``position`` ``(B, 2)`` fixes the (single) labelled object's position (multi-view sets).
    Returns ``(scene, labels)``; labels are float32 / long tensors with a leading batch dim,
    and a leading object dim after it when ``spec.n_objects > 1``.
    """
    d = _Draws(u)
    b, n = u.shape[0], spec.n_objects
    tries = spec.tries
    u_pos = d.take(tries, n, 2)
    u_size = d.take(1, n, 1).expand(b, tries, n, 1)
    if spec.placement is not None:
        pos, size = spec.placement(u_pos, u_size)
    else:
        pos, size = uniform_placement(u_pos, u_size, spec.size_range)  # (B,T,n,2), (B,T,n)
    if position is not None:
        pos = position.to(pos)[:, None, None, :].expand_as(pos)
    rows = torch.arange(b)
    if spec.sequential and n > 1:
        pick = _place_sequentially(pos, size)  # (B, n): a candidate per object
        obj = torch.arange(n)
        pos, size = pos[rows[:, None], pick, obj], size[rows[:, None], pick, obj]
    else:
        if n > 1:
            gaps = _gaps(pos, size) + torch.eye(n, dtype=pos.dtype) * 1e9  # ignore self-pairs
            min_gap = gaps.flatten(-2).amin(-1)  # (B, T)
            pick = _first_valid(min_gap > GAP, min_gap)
        else:
            pick = torch.zeros(b, dtype=torch.long)
        pos, size = pos[rows, pick], size[rows, pick]  # (B, n, 2), (B, n)

    n_col = len(spec.colors)
    if spec.distinct_colors and n > 1:
        if n > n_col:
            raise ValueError(f"{n} objects cannot have distinct colors from {spec.colors}")
        color_pick = d.take(n_col).argsort(-1)[:, :n]
    else:
        color_pick = (d.take(n) * n_col).long().clamp_max(n_col - 1)
    color_ids = torch.tensor([list(PALETTE).index(c) for c in spec.colors])
    color = color_ids[color_pick]  # (B, n)
    shape_ids = torch.tensor([SHAPES.index(s) for s in spec.shapes])
    shape = shape_ids[(d.take(n) * len(shape_ids)).long().clamp_max(len(shape_ids) - 1)]

    c_lo, c_hi = spec.clutter
    count = c_lo + (d.take(1)[:, 0] * (c_hi - c_lo + 1)).long().clamp_max(c_hi - c_lo)
    all_pos, all_size = [pos], [size]
    c_shape, c_grey, c_on = [], [], []
    for j in range(c_hi):
        cand = _lerp((-CLUTTER_AREA, CLUTTER_AREA), d.take(CLUTTER_TRIES, 2))  # (B, T, 2)
        extra = d.take(3)
        s = _lerp(CLUTTER_SIZE, extra[:, 0])  # (B,)
        placed_pos = torch.cat(all_pos, dim=1)  # (B, m, 2)
        placed_size = torch.cat(all_size, dim=1)
        cheb = (cand[:, :, None, :] - placed_pos[:, None, :, :]).abs().amax(-1)  # (B, T, m)
        free = (cheb - placed_size[:, None, :] - s[:, None, None]).amin(-1)  # (B, T)
        ok = free > GAP
        choice = _first_valid(ok, free)
        all_pos.append(cand[rows, choice][:, None, :])
        all_size.append(s[:, None])
        c_on.append(ok.any(-1) & (j < count))
        c_shape.append((extra[:, 1] * 3).long().clamp_max(2))
        c_grey.append(_lerp(CLUTTER_GREY, extra[:, 2]))

    view = _lerp_each(spec.view, d.take(4))  # (B, 4)
    light4 = _lerp_each(spec.light, d.take(4))
    light_rgb = 1.0 - spec.light_tint * d.take(3)
    light = torch.cat((light4, light_rgb), dim=-1)  # (B, 7)

    rgb = palette_tensor().double()[color]  # (B, n, 3)
    if c_hi:
        grey = torch.stack(c_grey, dim=1)[..., None].expand(b, c_hi, 3)
        rgb = torch.cat((rgb, grey), dim=1)
    active = torch.cat((torch.ones(b, n, dtype=torch.bool),
                        torch.stack(c_on, dim=1) if c_hi else torch.ones(b, 0, dtype=torch.bool)),
                       dim=1)
    scene = Scene(
        position=torch.cat(all_pos, dim=1).float(),
        size=torch.cat(all_size, dim=1).float(),
        shape=torch.cat([shape] + [s[:, None] for s in c_shape], dim=1),
        rgb=rgb.float(), active=active, view=view.float(), light=light.float(),
        ground_tint=torch.full((b,), float(spec.ground_tint)),
    )
    labels = {"position": pos.float(), "size": size[..., None].float(), "color": color,
              "shape": shape, "view": view.float(), "light": light.float()}
    if n == 1 and not spec.sequential:
        for key in ("position", "size", "color", "shape"):
            labels[key] = labels[key][:, 0]
    return scene, labels


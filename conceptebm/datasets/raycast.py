"""Analytic ray casting against a batch of object slots, dense or in screen-space windows.

One routine covers all three shapes. Each object is the intersection of an axis-aligned box
and a quadric ``(x - cx)^2 + (y - cy)^2 + m (z - cz)^2 <= r^2``:

======== ============== ================================= ===============================
shape    box half-size  quadric                            why
======== ============== ================================= ===============================
sphere   (s, s, s)      m = 1, r = s: a sphere             the box is redundant
cylinder (s, s, s)      m = 0, r = s: a vertical cylinder  the box cuts its caps
cube     (s, s, s)      m = 0, r = 1.5 s                   the cylinder contains the box
======== ============== ================================= ===============================

so a ray enters an object at ``max(box entry, quadric entry)`` and leaves at the smaller exit
(both volumes are convex). Objects rest on the ground: centre ``(x, y, s)``.

Two evaluation strategies give the same answer (tested): *dense* tests every pixel against
every slot, tensors ``(B, P, K)``; *windowed* tests each slot only against the pixels of a
screen rectangle that must contain it (the projection of its bounding box; for shadows, of the
box swept down to the ground along the light), tensors ``(B, K, W)`` with ``W`` a few percent
of ``P`` at the default camera. Results are scattered back into per-pixel buffers.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

from conceptebm.datasets.scene import Scene, project_with_depth

__all__ = ["Slots", "primary_hits", "occluded"]

CUBE_QUADRIC = 1.5  # cube quadric radius / s: > sqrt(2), so the cylinder contains the box
SHADOW_EPS = 1e-3  # world units: occluders nearer than this along a shadow ray are ignored
WINDOW_SHARE = 0.5  # use windows while they cover less than this share of the dense work


class Slots:
    """Per-slot geometry ``(B, K)``; ``shaped(dense)`` views it for broadcasting."""

    def __init__(self, scene: Scene, dtype):
        s = scene.size.to(dtype)
        self.s = s
        self.cx, self.cy = scene.position[..., 0].to(dtype), scene.position[..., 1].to(dtype)
        self.cz = s  # every object rests on the ground
        self.mz = (scene.shape == 0).to(dtype)  # the quadric uses z only for spheres
        radius = s * torch.where(scene.shape == 1, CUBE_QUADRIC, 1.0)
        self.r2 = radius * radius
        self.active = scene.active

    def shaped(self, dense: bool) -> SimpleNamespace:
        """Fields as ``(B, 1, K)`` (dense: against pixels) or ``(B, K, 1)`` (windows)."""
        f = (lambda x: x[:, None, :]) if dense else (lambda x: x[..., None])
        return SimpleNamespace(**{k: f(getattr(self, k)) for k in
                                  ("s", "cx", "cy", "cz", "mz", "r2", "active")})

    def box_corners(self) -> Tensor:
        """The 8 corners of every slot's bounding box, ``(B, K, 8, 3)``."""
        sign = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)],
                            dtype=self.s.dtype, device=self.s.device) * 2 - 1  # (8, 3)
        centre = torch.stack((self.cx, self.cy, self.cz), dim=-1)  # (B, K, 3)
        return centre[:, :, None, :] + sign * self.s[..., None, None]


def _box_and_quadric(o, d, g):
    """Entry, exit and real-root mask of rays ``o + t d`` (triples of tensors) into slots ``g``."""
    enter = exit_ = None
    for oa, da, ca in zip(o, d, (g.cx, g.cy, g.cz), strict=True):
        inv = 1.0 / da  # +-inf for axis-parallel rays is what the slab test wants
        t1 = (ca - g.s - oa) * inv
        t2 = (ca + g.s - oa) * inv
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        enter = near if enter is None else torch.maximum(enter, near)
        exit_ = far if exit_ is None else torch.minimum(exit_, far)
    rx, ry, rz = o[0] - g.cx, o[1] - g.cy, o[2] - g.cz  # ray origin relative to the centre
    qa = d[0] * d[0] + d[1] * d[1] + g.mz * (d[2] * d[2])
    qb = d[0] * rx + d[1] * ry + (g.mz * d[2]) * rz  # half the linear coefficient
    qc = rx * rx + ry * ry + g.mz * (rz * rz) - g.r2
    disc = qb * qb - qa * qc
    sq = disc.clamp_min(0).sqrt()
    inv_a = 1.0 / qa.clamp_min(1e-12)  # a vertical ray inside a cylinder: roots at -/+ inf
    enter = torch.maximum(enter, (-qb - sq) * inv_a)
    exit_ = torch.minimum(exit_, (sq - qb) * inv_a)
    return enter, exit_, disc >= 0


def _windows(points: Tensor, active: Tensor, view: Tensor, n: int) -> Tensor | None:
    """Pixel indices ``(B, K, W)`` of a rectangle per slot holding the projection of its
    ``points (B, K, M, 3)``; ``None`` if windows would not pay off or a point is behind the
    camera. All windows of a chunk share one size and lie inside the image."""
    b, k, m, _ = points.shape
    pix, depth = project_with_depth(points.reshape(b, k * m, 3), view, n)
    if bool((depth <= 1e-3).any()):
        return None
    pix = pix.reshape(b, k, m, 2)
    lo = (pix.amin(2).floor() - 1).clamp(0, n - 1)  # (B, K, 2) as (col, row); 1 px margin
    hi = (pix.amax(2).ceil() + 1).clamp(0, n - 1)
    span = torch.where(active[..., None], hi - lo + 1, torch.ones_like(lo))
    wc, wr = (int(v) for v in span.flatten(0, 1).amax(0).tolist())
    if wc * wr > WINDOW_SHARE * n * n:
        return None
    last = torch.tensor([n - wc, n - wr], dtype=lo.dtype, device=lo.device)
    start = torch.minimum(lo, last).long()  # shift windows back inside the image
    cols = start[..., 0, None] + torch.arange(wc, device=lo.device)  # (B, K, wc)
    rows = start[..., 1, None] + torch.arange(wr, device=lo.device)  # (B, K, wr)
    return (rows[..., :, None] * n + cols[..., None, :]).reshape(b, k, wr * wc)


def primary_hits(eye: Tensor, d: Tensor, sl: Slots, view: Tensor, n: int,
                 dense: bool | None = None) -> tuple[Tensor, Tensor]:
    """Nearest object distance ``(B, P)`` (inf: none) and its slot ``(B, P)`` per camera ray.

    ``eye (B, 3)``; ``d (Bv, P, 3)`` unit directions with ``Bv`` 1 (shared camera) or ``B``.
    """
    b, k = sl.s.shape
    p = d.shape[1]
    idx = None if dense else _windows(sl.box_corners(), sl.active, view, n)
    if idx is None and dense is False:
        raise ValueError("windowed ray casting is not possible for this scene batch")
    o = tuple(eye[:, None, None, a] for a in range(3))  # (B, 1, 1) each
    if idx is None:
        dd = tuple(d[..., a, None] for a in range(3))  # (Bv, P, 1) each
        g = sl.shaped(dense=True)
        enter, exit_, real = _box_and_quadric(o, dd, g)
        hit = real & (enter <= exit_) & (enter > 0) & g.active
        t = torch.where(hit, enter, torch.full_like(enter, float("inf")))  # (B, P, K)
        return t.min(-1)
    if d.shape[0] == 1:
        dw = d[0][idx]  # (B, K, W, 3)
    else:
        dw = d.reshape(-1, 3)[idx + torch.arange(b, device=d.device)[:, None, None] * p]
    dd = tuple(dw.permute(3, 0, 1, 2).contiguous())
    g = sl.shaped(dense=False)
    enter, exit_, real = _box_and_quadric(o, dd, g)
    hit = real & (enter <= exit_) & (enter > 0) & g.active
    t = torch.where(hit, enter, torch.full_like(enter, float("inf")))  # (B, K, W)
    flat, t_flat = idx.reshape(b, -1), t.reshape(b, -1)
    t_full = torch.full((b, p), float("inf"), dtype=t.dtype, device=t.device)
    t_full.scatter_reduce_(1, flat, t_flat, "amin")
    wins = (t_flat == t_full.gather(1, flat)) & torch.isfinite(t_flat)
    slot_ids = torch.arange(k, device=t.device)[None, :, None].expand_as(idx).reshape(b, -1)
    slot = torch.zeros(b, p + 1, dtype=torch.long, device=t.device)  # column p: discard
    slot.scatter_(1, torch.where(wins, flat, p), slot_ids)
    return t_full, slot[:, :p]


def occluded(p: tuple[Tensor, Tensor, Tensor], to_light: Tensor, sl: Slots, view: Tensor,
             n: int, dense: bool | None = None) -> Tensor:
    """Whether the ray from each point ``p`` (three ``(B, P)``) towards the light is blocked."""
    b, k = sl.s.shape
    dd = tuple(to_light[:, None, None, a] for a in range(3))  # (B, 1, 1) each
    idx = None
    if not dense:
        corners = sl.box_corners()  # (B, K, 8, 3)
        lz = to_light[:, None, None, 2:3]
        on_ground = corners - corners[..., 2:3] / lz * to_light[:, None, None, :]
        idx = _windows(torch.cat((corners, on_ground), dim=2), sl.active, view, n)
        if idx is None and dense is False:
            raise ValueError("windowed shadows are not possible for this scene batch")
    if idx is None:
        o = tuple(x[..., None] for x in p)  # (B, P, 1) each
        g = sl.shaped(dense=True)
        enter, exit_, real = _box_and_quadric(o, dd, g)
        return (real & (enter <= exit_) & (exit_ > SHADOW_EPS) & g.active).any(-1)
    flat = idx.reshape(b, -1)
    o = tuple(x.gather(1, flat).reshape(idx.shape) for x in p)  # (B, K, W) each
    g = sl.shaped(dense=False)
    enter, exit_, real = _box_and_quadric(o, dd, g)
    blocked = real & (enter <= exit_) & (exit_ > SHADOW_EPS) & g.active  # (B, K, W)
    out = torch.zeros(b, p[0].shape[1], dtype=torch.uint8, device=flat.device)
    out.scatter_reduce_(1, flat, blocked.reshape(b, -1).to(torch.uint8), "amax")
    return out.bool()

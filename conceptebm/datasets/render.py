"""Vectorised ray caster for :class:`~conceptebm.datasets.scene.Scene` batches.

Every pixel of every image casts one ray (``antialias = k`` casts ``k x k`` and averages);
rays are intersected analytically with every object slot at once, as tensors shaped
``(B, pixels, K)``: no Python loop over pixels, objects or images (only over memory chunks).

One intersection routine covers all three shapes. Each object is the intersection of an
axis-aligned box and a quadric ``sum_i m_i (p_i - c_i)^2 <= r^2``:

======== ============== ===================== ==========================
shape    box half-size  quadric mask ``m``    radius ``r``
======== ============== ===================== ==========================
sphere   (s, s, s)      (1, 1, 1) (a sphere)  s   (the box is redundant)
cylinder (s, s, s)      (1, 1, 0) (infinite   s   (the box cuts the caps)
                        vertical cylinder)
cube     (s, s, s)      (1, 1, 0)             1.5 s (contains the box: redundant)
======== ============== ===================== ==========================

so a ray enters the object at ``max(box entry, quadric entry)`` and leaves at the minimum of the
exits (both volumes are convex). Shading is Lambertian plus a Blinn-Phong highlight under one
directional light and an ambient term; shadows come from a second occlusion test from the hit
point towards the light.

Example:
    >>> from conceptebm.datasets import make_dataset
    >>> scene = make_dataset("position", size=4, seed=0).scenes([0, 1])
    >>> render(scene, 32).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from conceptebm.datasets.scene import GROUND_RGB, SKY_RGB, Scene, camera_frame, direction

__all__ = ["render", "camera_rays"]

SPECULAR = 0.35  # highlight strength of objects (the ground is matte)
SHININESS = 24.0  # Blinn-Phong exponent
CUBE_QUADRIC = 1.5  # cube quadric radius / s: > sqrt(2), so the cylinder contains the box
_SHADOW_EPS = 1e-3  # world units: occluders nearer than this along the shadow ray are ignored
_F_CENTRE, _F_HALF, _F_MASK, _F_RADIUS, _F_RGB, _F_SPEC = (
    slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10), slice(10, 13), slice(13, 14))


def camera_rays(view: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Camera position ``(B, 3)`` and unit ray directions ``(B, n*n, 3)`` in row-major order."""
    eye, forward, right, up, tan = camera_frame(view)
    ticks = (torch.arange(n, device=view.device, dtype=view.dtype) + 0.5) * (2.0 / n) - 1.0
    sx = ticks[None, :, None]  # (1, n, 1): columns, left to right
    sy = -ticks[:, None, None]  # (n, 1, 1): rows, top to bottom
    t = tan[:, None, None, None]
    d = (forward[:, None, None, :] + t * sx * right[:, None, None, :]
         + t * sy * up[:, None, None, :])  # (B, n, n, 3)
    d = d.reshape(view.shape[0], n * n, 3)
    return eye, d / d.norm(dim=-1, keepdim=True)


def _geometry(scene: Scene) -> Tensor:
    """Per-slot features ``(B, K, 14)``: centre, box half-size, quadric mask, radius, rgb, spec."""
    s = scene.size.to(scene.position.dtype)  # (B, K)
    b, k = s.shape
    centre = torch.cat((scene.position, s[..., None]), dim=-1)  # resting on the ground
    half = s[..., None].expand(b, k, 3)
    sphere = (scene.shape == 0)[..., None]
    mask = torch.ones_like(centre)
    mask[..., 2] = sphere[..., 0].to(mask.dtype)
    cube = (scene.shape == 1).to(s.dtype)
    radius = (s * (1 + (CUBE_QUADRIC - 1) * cube))[..., None]
    spec = torch.full_like(radius, SPECULAR)
    return torch.cat((centre, half, mask, radius, scene.rgb.to(s.dtype), spec), dim=-1)


def _interval(enter: Tensor, exit_: Tensor, lo: Tensor, hi: Tensor, inv: Tensor):
    """Intersect running ``[enter, exit]`` with one slab axis: ``t in [lo, hi] * inv``."""
    t1 = lo * inv
    t2 = hi * inv
    near = torch.minimum(t1, t2)
    far = torch.maximum(t1, t2)
    if enter is None:
        return near, far
    return torch.maximum(enter, near), torch.minimum(exit_, far)


def _quadric_roots(qa: Tensor, qb: Tensor, qc: Tensor):
    """Roots of ``qa t^2 + 2 qb t + qc = 0`` and whether they are real."""
    disc = qb * qb - qa * qc
    sq = disc.clamp_min(0).sqrt()
    qa = qa.clamp_min(1e-12)  # a vertical ray along a cylinder: roots at -/+ infinity
    return (-qb - sq) / qa, (-qb + sq) / qa, disc >= 0


def _hits_from_eye(eye: Tensor, d: Tensor, geo: Tensor, active: Tensor) -> Tensor:
    """Entry distance ``(B, P, K)`` of primary rays into each slot (inf where missed)."""
    centre, half, mask = geo[..., _F_CENTRE], geo[..., _F_HALF], geo[..., _F_MASK]
    oc = eye[:, None, :] - centre  # (B, K, 3)
    inv = 1.0 / d  # (B, P, 3); +-inf for axis-parallel rays is what the slab test wants
    enter = exit_ = None
    for a in range(3):
        enter, exit_ = _interval(enter, exit_, (-half[..., a] - oc[..., a])[:, None, :],
                                 (half[..., a] - oc[..., a])[:, None, :], inv[..., a, None])
    qa = torch.bmm(d * d, mask.transpose(1, 2))  # (B, P, K)
    qb = torch.bmm(d, (mask * oc).transpose(1, 2))  # (B, P, K)
    qc = (mask * oc * oc).sum(-1) - geo[..., _F_RADIUS.start] ** 2  # (B, K)
    t0, t1, real = _quadric_roots(qa, qb, qc[:, None, :])
    enter = torch.maximum(enter, t0)
    exit_ = torch.minimum(exit_, t1)
    hit = real & (enter <= exit_) & (enter > 0) & active[:, None, :]
    return torch.where(hit, enter, torch.full_like(enter, float("inf")))


def _occluded(p: Tensor, light_dir: Tensor, geo: Tensor, active: Tensor) -> Tensor:
    """Whether the ray from each point ``p (B, P, 3)`` towards the light hits a slot ``(B, P)``."""
    centre, half, mask = geo[..., _F_CENTRE], geo[..., _F_HALF], geo[..., _F_MASK]
    inv = 1.0 / light_dir  # (B, 3)
    enter = exit_ = None
    for a in range(3):
        pa = p[..., a, None]  # (B, P, 1)
        enter, exit_ = _interval(enter, exit_, (centre[..., a] - half[..., a])[:, None, :] - pa,
                                 (centre[..., a] + half[..., a])[:, None, :] - pa,
                                 inv[:, None, a, None])
    ml = mask * light_dir[:, None, :]  # (B, K, 3)
    qa = (ml * light_dir[:, None, :]).sum(-1)[:, None, :]  # (B, 1, K)
    qb = torch.bmm(p, ml.transpose(1, 2)) - (ml * centre).sum(-1)[:, None, :]  # (B, P, K)
    qc = (torch.bmm(p * p, mask.transpose(1, 2)) - 2 * torch.bmm(p, (mask * centre).transpose(1, 2))
          + ((mask * centre * centre).sum(-1) - geo[..., _F_RADIUS.start] ** 2)[:, None, :])
    t0, t1, real = _quadric_roots(qa, qb, qc)
    enter = torch.maximum(enter, t0)
    exit_ = torch.minimum(exit_, t1)
    blocked = real & (enter <= exit_) & (exit_ > _SHADOW_EPS) & active[:, None, :]
    return blocked.any(-1)


def _normals(p: Tensor, feats: Tensor, ground: Tensor) -> Tensor:
    """Outward unit normals ``(B, P, 3)`` at hit points ``p`` of the gathered slot features."""
    rel = p - feats[..., _F_CENTRE]  # (B, P, 3)
    mask = feats[..., _F_MASK]
    radial = mask * rel
    q_ratio = radial.norm(dim=-1) / feats[..., _F_RADIUS.start]  # 1 on the quadric surface
    box_ratio = rel.abs() / feats[..., _F_HALF]  # max is 1 on a box face
    b_ratio, axis = box_ratio.max(-1)
    box_n = F.one_hot(axis, 3).to(p.dtype) * rel.sign()
    use_quadric = (q_ratio >= b_ratio - 1e-4)[..., None]
    n = torch.where(use_quadric, radial, box_n)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    up = torch.zeros_like(n)
    up[..., 2] = 1.0
    return torch.where(ground[..., None], up, n)


def _render_chunk(scene: Scene, n: int) -> Tensor:
    b, k = scene.size.shape
    dtype, device = scene.position.dtype, scene.position.device
    eye, d = camera_rays(scene.view.to(dtype), n)  # (B, 3), (B, P, 3)
    geo = _geometry(scene)  # (B, K, 14)
    t_obj = _hits_from_eye(eye, d, geo, scene.active)  # (B, P, K)
    dz = d[..., 2]
    t_ground = torch.where(dz < 0, -eye[:, None, 2] / dz.clamp_max(-1e-12),
                           torch.full_like(dz, float("inf")))  # (B, P)
    t, idx = torch.cat((t_obj, t_ground[..., None]), dim=-1).min(-1)  # (B, P)
    sky = torch.isinf(t)
    ground = idx == k
    t = torch.where(sky, torch.zeros_like(t), t)
    p = eye[:, None, :] + t[..., None] * d  # (B, P, 3)

    ground_row = torch.zeros(b, 1, geo.shape[-1], dtype=dtype, device=device)
    ground_row[..., _F_HALF] = 1.0
    ground_row[..., _F_RADIUS] = 1.0
    ground_row[..., _F_RGB] = torch.tensor(GROUND_RGB, dtype=dtype, device=device)
    table = torch.cat((geo, ground_row), dim=1)  # (B, K+1, 14)
    feats = table.gather(1, idx[..., None].expand(b, idx.shape[1], table.shape[-1]))

    normal = _normals(p, feats, ground)  # (B, P, 3)
    albedo = feats[..., _F_RGB]
    tint = scene.ground_tint.to(dtype)[:, None, None]
    if bool((tint != 0).any()):
        gx, gy = torch.tanh(p[..., 0:1] / 2), torch.tanh(p[..., 1:2] / 2)
        shift = torch.cat((gx, gy, -gx), dim=-1) * tint  # (B, P, 3)
        albedo = torch.where(ground[..., None], (albedo + shift).clamp(0, 1), albedo)

    light = scene.light.to(dtype)
    to_light = direction(light[:, 0], light[:, 1])  # (B, 3)
    lit = ~_occluded(p + 1e-4 * normal, to_light, geo, scene.active)  # (B, P)
    cos = (normal * to_light[:, None, :]).sum(-1).clamp_min(0) * lit  # (B, P)
    half_vec = to_light[:, None, :] - d
    half_vec = half_vec / half_vec.norm(dim=-1, keepdim=True)
    spec = feats[..., _F_SPEC.start] * (normal * half_vec).sum(-1).clamp_min(0) ** SHININESS
    spec = spec * (cos > 0)
    strength = light[:, 2, None, None] * light[:, None, 4:7]  # (B, 1, 3)
    rgb = (albedo * (light[:, 3, None, None] + strength * cos[..., None])
           + strength * spec[..., None])  # (B, P, 3)
    sky_rgb = torch.tensor(SKY_RGB, dtype=dtype, device=device)
    rgb = torch.where(sky[..., None], sky_rgb, rgb).clamp(0, 1)
    return rgb.transpose(1, 2).reshape(b, 3, n, n)


def render(scene: Scene, image_size: int = 32, *, antialias: int = 1,
           max_elements: int = 1 << 20) -> Tensor:
    """Render a batch of scenes to float32 images ``(B, 3, image_size, image_size)`` in [0, 1].

    Args:
        scene: the scenes (see :class:`~conceptebm.datasets.scene.Scene`).
        image_size: side in pixels (any size >= 4; 32 is the default of the datasets).
        antialias: cast ``antialias^2`` rays per pixel and average (1 = off).
        max_elements: memory bound: images are rendered in chunks so that one
            ``(chunk, pixels, slots)`` tensor holds at most this many numbers.

    The result is a deterministic function of ``scene`` (no randomness inside).
    """
    if int(image_size) != image_size or image_size < 4:
        raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
    if int(antialias) != antialias or antialias < 1:
        raise ValueError(f"antialias must be an integer >= 1, got {antialias!r}")
    scene.validate()
    n = image_size * antialias
    b, k = scene.size.shape
    out = torch.empty(b, 3, n, n, dtype=scene.position.dtype, device=scene.position.device)
    chunk = max(1, max_elements // (n * n * (k + 1)))
    for start in range(0, b, chunk):
        part = scene.select(slice(start, start + chunk))
        out[start:start + chunk] = _render_chunk(part, n)
    if antialias > 1:
        out = F.avg_pool2d(out, antialias)
    return out.float()

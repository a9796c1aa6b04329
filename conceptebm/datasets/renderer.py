"""Vectorised torch renderer for :class:`~conceptebm.datasets.scene.Scene` batches.

Every pixel casts one ray (``antialias = k`` casts ``k x k`` and averages), intersected
analytically with the objects (:mod:`conceptebm.datasets.raycast`); the only Python loop is
over memory chunks of images. Shading: Lambertian plus a Blinn-Phong highlight under one
directional light and an ambient term; cast shadows come from a second ray from each visible
point towards the light. The ground is matte and faces up, so its shading is one colour per
image (lit or in shadow); full shading runs only on the few percent of pixels on objects.

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

from conceptebm.datasets.raycast import Slots, occluded, primary_hits
from conceptebm.datasets.scene import GROUND_RGB, SKY_RGB, Scene, camera_frame, direction

__all__ = ["render", "camera_rays", "GROUND_TILE"]

SPECULAR = 0.25  # highlight strength of objects (the ground is matte)
SHININESS = 24.0  # Blinn-Phong exponent
GROUND_TILE = 0.5  # side of the squares of a checkerboard ground (render's ground option)
_LIFT = 1e-4  # shadow rays start this far back along the view ray, off the surface


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


def _ground_albedo(ground: Tensor, p: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Ground albedo ``(B, 3, P)`` at the ground points ``p`` of :func:`render`'s ``ground``:
    one colour ``(B, 3)`` or a checkerboard ``(B, 2, 3)`` of squares :data:`GROUND_TILE` wide."""
    if ground.dim() == 2:
        return ground[:, :, None].expand(-1, -1, p[0].shape[1])
    cell = (torch.floor(p[0] / GROUND_TILE) + torch.floor(p[1] / GROUND_TILE)).remainder(2)
    return torch.where(cell[:, None, :] > 0.5, ground[:, 1, :, None], ground[:, 0, :, None])


def _object_normals(p: Tensor, slot: Tensor, sl: Slots, bi: Tensor) -> Tensor:
    """Outward unit normals ``(N, 3)`` at hit points ``p (N, 3)`` on slots ``slot`` of ``bi``."""
    c = torch.stack((sl.cx[bi, slot], sl.cy[bi, slot], sl.cz[bi, slot]), dim=-1)  # (N, 3)
    s, mz, r2 = sl.s[bi, slot], sl.mz[bi, slot], sl.r2[bi, slot]
    rel = p - c
    radial = rel.clone()
    radial[:, 2] *= mz
    q_ratio = ((radial * radial).sum(-1) / r2).sqrt()  # 1 on the quadric surface
    box_ratio, axis = (rel.abs() / s[:, None]).max(-1)  # 1 on a box face
    box_n = F.one_hot(axis, 3).to(p.dtype) * rel.sign()
    n = torch.where((q_ratio >= box_ratio - 1e-4)[:, None], radial, box_n)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _render_chunk(scene: Scene, n: int, dense: bool | None, out: Tensor,
                  ground_albedo: Tensor | None = None) -> None:
    """Render ``scene`` into ``out`` ``(B, 3, n, n)`` (contiguous); ``ground_albedo``: see
    :func:`render`'s ``ground`` (this chunk's rows)."""
    scene = scene.drop_empty_slots()
    b, k = scene.size.shape
    dtype, device = scene.position.dtype, scene.position.device
    view, light = scene.view.to(dtype), scene.light.to(dtype)
    shared = bool((view == view[:1]).all())  # one camera for the whole chunk
    eye_v, d = camera_rays(view[:1] if shared else view, n)  # (Bv, 3), (Bv, P, 3)
    eye = eye_v.expand(b, 3)
    sl = Slots(scene, dtype)
    dz = d[..., 2]
    t_ground = torch.where(dz < 0, -eye_v[:, None, 2] / dz.clamp_max(-1e-12),
                           torch.full_like(dz, float("inf"))).expand(b, -1)  # (B, P)
    if k:
        t_obj, slot = primary_hits(eye, d, sl, view, n, dense)  # (B, P)
        on_obj = t_obj < t_ground
        t = torch.where(on_obj, t_obj, t_ground)
    else:
        on_obj = torch.zeros_like(t_ground, dtype=torch.bool)
        t = t_ground
    sky = torch.isinf(t)
    t = torch.where(sky, torch.zeros_like(t), t) - _LIFT  # shadow rays start just outside
    p = tuple(eye[:, None, a] + t * d[..., a] for a in range(3))  # (B, P) each
    to_light = direction(light[:, 0], light[:, 1])  # (B, 3)
    lit = ~occluded(p, to_light, sl, view, n, dense) if k else torch.ones_like(sky)  # (B, P)

    strength = light[:, 2, None] * light[:, 4:7]  # (B, 3)
    ambient = light[:, 3, None]  # (B, 1)
    sun = strength * to_light[:, 2, None]  # (B, 3): the ground faces up
    rgb = out.view(b, 3, n * n)  # written in place, channels first
    ground = torch.tensor(GROUND_RGB, dtype=dtype, device=device)
    if ground_albedo is not None:  # another ground: plain colour or checkerboard per image
        ground = _ground_albedo(ground_albedo.to(dtype), p)  # (B, 3, P)
        if bool((scene.ground_tint != 0).any()):
            gx, gy = torch.tanh(p[0] / 2), torch.tanh(p[1] / 2)
            tint = scene.ground_tint.to(dtype)[:, None, None]
            ground = (ground + torch.stack((gx, gy, -gx), dim=1) * tint).clamp(0, 1)
        light_in = ambient[..., None] + sun[..., None] * lit[:, None, :]  # (B, 3, P)
        torch.mul(ground, light_in, out=rgb)
        rgb.clamp_(0, 1)
    elif bool((scene.ground_tint != 0).any()):
        gx, gy = torch.tanh(p[0] / 2), torch.tanh(p[1] / 2)  # (B, P)
        tint = scene.ground_tint.to(dtype)[:, None, None]
        ground = (ground[None, :, None] + torch.stack((gx, gy, -gx), dim=1) * tint).clamp(0, 1)
        light_in = ambient[..., None] + sun[..., None] * lit[:, None, :]  # (B, 3, P)
        torch.mul(ground, light_in, out=rgb)
        rgb.clamp_(0, 1)
    else:  # one colour per image in light, one in shadow
        lit_rgb = (ground * (ambient + sun)).clamp(0, 1)[..., None]  # (B, 3, 1)
        shade_rgb = (ground * ambient).clamp(0, 1)[..., None]
        torch.where(lit[:, None, :], lit_rgb, shade_rgb, out=rgb)
    if bool(sky.any()):
        sky_rgb = torch.tensor(SKY_RGB, dtype=dtype, device=device)[None, :, None]
        torch.where(sky[:, None, :], sky_rgb, rgb, out=rgb)

    bi, pi = on_obj.nonzero(as_tuple=True)  # object pixels only (a few percent)
    if bi.numel():
        ks = slot[bi, pi]
        di = d[bi if d.shape[0] == b else torch.zeros_like(bi), pi]  # (N, 3)
        hit = torch.stack([x[bi, pi] for x in p], dim=-1)
        normal = _object_normals(hit, ks, sl, bi)  # (N, 3)
        lvec = to_light[bi]
        cos = (normal * lvec).sum(-1).clamp_min(0) * lit[bi, pi]  # (N,)
        half = lvec - di
        half = half / half.norm(dim=-1, keepdim=True)
        spec = SPECULAR * (normal * half).sum(-1).clamp_min(0) ** SHININESS * (cos > 0)
        albedo = scene.rgb.to(dtype)[bi, ks]
        rgb[bi, :, pi] = (albedo * (ambient[bi] + strength[bi] * cos[:, None])
                          + strength[bi] * spec[:, None]).clamp(0, 1)


def render(scene: Scene, image_size: int = 32, *, antialias: int = 1,
           max_elements: int = 1 << 19, dense: bool | None = None,
           ground: Tensor | None = None) -> Tensor:
    """Render a batch of scenes to float32 images ``(B, 3, image_size, image_size)`` in [0, 1].

    Args:
        scene: the scenes (see :class:`~conceptebm.datasets.scene.Scene`).
        image_size: side in pixels (any size >= 4; 32 is the default of the datasets).
        antialias: cast ``antialias^2`` rays per pixel and average (1 = off).
        max_elements: memory bound: images are rendered in chunks so that one
            ``(chunk, pixels, slots)`` tensor holds at most this many numbers.
        dense: ``None`` (default) picks the faster ray-casting strategy per chunk;
            ``True`` / ``False`` force dense / windowed casting (same images; for tests).
        ground: ``None`` (default) renders the ground of every dataset (:data:`GROUND_RGB`);
            ``(B, 3)`` albedos give each image a plain ground of its own colour, ``(B, 2, 3)``
            a checkerboard of two albedos in squares of :data:`GROUND_TILE` world units
            (robustness tests: a background no model was trained on; the objects, their
            shading and shadows are unchanged).

    The result is a deterministic function of ``scene`` (no randomness inside).
    """
    if int(image_size) != image_size or image_size < 4:
        raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
    if int(antialias) != antialias or antialias < 1:
        raise ValueError(f"antialias must be an integer >= 1, got {antialias!r}")
    scene.validate()
    if ground is not None and (ground.dim() not in (2, 3) or ground.shape[0] != scene.batch_size
                               or ground.shape[-1] != 3 or ground.dim() == 3
                               and ground.shape[1] != 2):
        raise ValueError(f"ground must have shape (B, 3) or (B, 2, 3) with B = "
                         f"{scene.batch_size}, got {tuple(ground.shape)}")
    n = image_size * antialias
    b, k = scene.size.shape
    out = torch.empty(b, 3, n, n, dtype=scene.position.dtype, device=scene.position.device)
    chunk = max(1, max_elements // (n * n * (k + 1)))
    for start in range(0, b, chunk):
        part = scene.select(slice(start, start + chunk))
        _render_chunk(part, n, dense, out[start:start + chunk],
                      None if ground is None else ground[start:start + chunk]
                      .to(out.device))
    if antialias > 1:
        out = F.avg_pool2d(out, antialias)
    return out.float()

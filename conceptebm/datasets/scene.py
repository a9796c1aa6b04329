"""What a scene is made of: palette, shapes, sizes, the camera and the light, as tensors.

World frame: the ground is the plane ``z = 0``, ``z`` points up; labelled positions ``(x, y)``
lie in ``[-1, 1]^2``. Every object rests on the ground, centred at ``(x, y, s)`` where ``s`` is
its *size*: the radius of a sphere, the half-edge of a cube (axis aligned) or the radius and
half-height of a cylinder (vertical axis). So an object of size ``s`` is ``2 s`` wide and tall.

Camera (``view`` label, 4 floats): ``(azimuth_deg, elevation_deg, distance, fov_deg)``. The camera
sits at ``distance`` from the origin, looks at the origin, at ``elevation`` above the ground, and
at ``azimuth`` measured counter-clockwise (seen from above) from the ``-y`` side:

    camera = distance * (cos(el) sin(az), -cos(el) cos(az), sin(el))

so its height is ``distance * sin(el)``; ``fov`` is the full field of view of the square image.
At ``azimuth = 0`` (every dataset but the multi-view ones) **world +x is image right and world +y
is image up** (away from the camera). Images are row-major with row 0 at the top.

Light (``light`` label, 7 floats): ``(azimuth_deg, elevation_deg, intensity, ambient, r, g, b)``:
a directional light shining from the direction ``(azimuth, elevation)`` (same angles as the
camera: azimuth 0 lights the scene from the camera's side), with ``intensity`` times colour
``(r, g, b)``, plus an ambient term ``ambient`` times the albedo.

Example:
    >>> view = torch.tensor([DEFAULT_VIEW])
    >>> col, row = project(torch.tensor([[[1.0, 0.0, 0.0]]]), view, 32)[0, 0].tolist()
    >>> col > 15.5 and abs(row - 15.5) < 3   # +x is to the right of the centre
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "PALETTE", "SHAPES", "SIZE_RANGE", "POSITION_RANGE", "POSITION_TOLERANCES",
    "DEFAULT_VIEW", "DEFAULT_LIGHT",
    "GROUND_RGB", "SKY_RGB", "Scene", "camera_frame", "project", "project_with_depth", "direction",
    "palette_tensor",
]

# Eight colours spread around the hue circle at high saturation, so that after Lambertian
# shading (which scales brightness) each one is still nearest to itself in chromaticity.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "orange": (0.98, 0.52, 0.05),
    "yellow": (0.92, 0.86, 0.10),
    "green": (0.12, 0.72, 0.16),
    "cyan": (0.08, 0.78, 0.85),
    "blue": (0.10, 0.25, 0.95),
    "purple": (0.52, 0.16, 0.85),
    "magenta": (0.92, 0.12, 0.70),
}
SHAPES: tuple[str, ...] = ("sphere", "cube", "cylinder")
SIZE_RANGE = (0.25, 0.45)  # object size s (radius / half-edge), world units
POSITION_RANGE = (-1.0, 1.0)  # labelled (x, y), each coordinate
# A generated position is correct within Euclidean distance 0.4 (the paper's tolerance,
# section 4.2: ~20% of the scene width); we also report a stricter 0.15.
POSITION_TOLERANCES = (0.4, 0.15)

# Default camera: straight from the -y side, 60 degrees above the ground. At 32x32 it shows all
# of [-1.45, 1.45]^2 (positions plus the largest object) and an object 2s wide covers about
# 4-8.5 px (tested in tests/datasets/test_renderer.py).
DEFAULT_VIEW = (0.0, 60.0, 7.2, 30.0)
DEFAULT_LIGHT = (-35.0, 55.0, 0.7, 0.3, 1.0, 1.0, 1.0)
GROUND_RGB = (0.70, 0.68, 0.64)  # warm light grey: neither a palette colour nor clutter grey
SKY_RGB = (0.80, 0.85, 0.92)


def direction(azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
    """Unit vector ``(..., 3)`` pointing *towards* a camera / light at these angles."""
    az = torch.deg2rad(azimuth_deg)
    el = torch.deg2rad(elevation_deg)
    return torch.stack((el.cos() * az.sin(), -el.cos() * az.cos(), el.sin()), dim=-1)


def camera_frame(view: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Camera position, forward, right, up (each ``(B, 3)``) and ``tan(fov / 2)`` ``(B,)``."""
    eye = view[:, 2:3] * direction(view[:, 0], view[:, 1])  # (B, 3)
    forward = -eye / eye.norm(dim=-1, keepdim=True)
    z_up = torch.zeros_like(forward)
    z_up[:, 2] = 1.0
    right = torch.linalg.cross(forward, z_up)
    right = right / right.norm(dim=-1, keepdim=True)
    up = torch.linalg.cross(right, forward)
    tan = torch.tan(torch.deg2rad(view[:, 3]) / 2)
    return eye, forward, right, up, tan


def project(points: Tensor, view: Tensor, image_size: int) -> Tensor:
    """Pixel coordinates ``(B, N, 2)`` as (column, row) of world points ``(B, N, 3)``.

    Pixel ``(row i, col j)`` has its centre at ``(j, i)``; ``(0, 0)`` is the top-left pixel.
    This is the exact inverse of the renderer's ray generation.
    """
    return project_with_depth(points, view, image_size)[0]


def project_with_depth(points: Tensor, view: Tensor, image_size: int) -> tuple[Tensor, Tensor]:
    """:func:`project` plus each point's depth ``(B, N)`` along the viewing direction."""
    eye, forward, right, up, tan = camera_frame(view)
    rel = points - eye[:, None, :]  # (B, N, 3)
    depth = (rel * forward[:, None, :]).sum(-1)
    sx = (rel * right[:, None, :]).sum(-1) / (depth * tan[:, None])
    sy = (rel * up[:, None, :]).sum(-1) / (depth * tan[:, None])
    col = (sx + 1) * image_size / 2 - 0.5
    row = (1 - sy) * image_size / 2 - 0.5
    return torch.stack((col, row), dim=-1), depth


@dataclass
class Scene:
    """A batch of ``B`` scenes with ``K`` object slots each (labelled objects first).

    Attributes (all tensors on one device):
        position: ``(B, K, 2)`` ground position ``(x, y)`` of each object.
        size: ``(B, K)`` size ``s`` (see the module docstring).
        shape: ``(B, K)`` long, index into :data:`SHAPES`.
        rgb: ``(B, K, 3)`` albedo in ``[0, 1]``.
        active: ``(B, K)`` bool; inactive slots are not drawn.
        view: ``(B, 4)`` camera; light: ``(B, 7)`` light (see the module docstring).
        ground_tint: ``(B,)`` strength of a faint colour gradient on the ground that tells
            the world axes apart (0 = plain ground; used by the multi-view sets).
    """

    position: Tensor
    size: Tensor
    shape: Tensor
    rgb: Tensor
    active: Tensor
    view: Tensor
    light: Tensor
    ground_tint: Tensor

    @property
    def batch_size(self) -> int:
        return self.position.shape[0]

    def select(self, index) -> Scene:
        """The scenes at ``index`` (a slice or an index tensor) along the batch."""
        return Scene(*(getattr(self, f)[index] for f in _FIELDS))

    def without_objects(self) -> Scene:
        """The same scenes with every object removed (ground, camera, light kept)."""
        out = self.select(slice(None))
        out.active = torch.zeros_like(self.active)
        return out

    def drop_empty_slots(self) -> Scene:
        """The same scenes without the slots that are inactive in every scene."""
        keep = self.active.any(0)
        if bool(keep.all()):
            return self
        out = self.select(slice(None))
        for f in _SLOT_FIELDS:
            setattr(out, f, getattr(self, f)[:, keep])
        return out

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field if shapes or values are not renderable."""
        b, k = self.size.shape
        want = {"position": (b, k, 2), "shape": (b, k), "rgb": (b, k, 3), "active": (b, k),
                "view": (b, 4), "light": (b, 7), "ground_tint": (b,)}
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Scene.{name} must have shape {shape}, got {got}")
        if ((self.size <= 0) & self.active).any():
            raise ValueError("Scene.size must be > 0 for active objects")
        el = self.view[:, 1]
        if ((el <= 0) | (el >= 90)).any():
            raise ValueError(f"view elevation must be in (0, 90) degrees, got {el.tolist()}")
        if ((self.view[:, 3] <= 0) | (self.view[:, 3] >= 180)).any():
            raise ValueError("view fov must be in (0, 180) degrees")
        if (self.light[:, 1] <= 0).any():
            raise ValueError("light elevation must be > 0 degrees (the light is above ground)")


_SLOT_FIELDS = ("position", "size", "shape", "rgb", "active")
_FIELDS = ("position", "size", "shape", "rgb", "active", "view", "light", "ground_tint")


def palette_tensor(device=None) -> Tensor:
    """The palette's RGB table ``(len(PALETTE), 3)`` in :data:`PALETTE` order."""
    return torch.tensor(list(PALETTE.values()), device=device)


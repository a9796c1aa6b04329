"""Late-conditioned energy nets: an image trunk that ignores ``c``, and a cheap head over ``c``.

``E(x|c) = head(features(x), c)``. Concept inference evaluates one image against hundreds of
concept values (a 17x17 grid, then Adam refinement; a 48x48 energy map is 2,304 values);
:class:`~conceptebm.energies.nets.ConvEnergyNet` feeds ``c`` into its first layer (label maps,
FiLM), so every value costs a full pass over the image. Here the trunk runs once per image and
each value costs a small MLP, and gradients with respect to ``c`` never touch the trunk. The
inference engine uses the split through :meth:`ConditionalEnergy.features` /
:meth:`~ConditionalEnergy.energy_from_features` without knowing the net type.

Two readouts of the trunk:

* ``"spatial"`` (2-D continuous concepts: a position): the trunk is a local conv net (CoordConv
  input, one stride-2 conv, ``layers`` 3x3 convs; receptive field 17 pixels at the default
  3) giving a ``K``-channel map at H/2 x W/2; the head reads it where the candidate lies in the
  image (bilinear ``grid_sample`` at a learned affine map of ``c``: start it at the camera's
  projection, as ``benchmarks/late_model.py`` does) and feeds the ``K`` values and ``c`` to an
  MLP. The map is local, so several objects give several basins (one per object); a trunk
  that saw the whole image (a U-Net down to 4x4) was as accurate on one object but found both
  objects of a two-object scene in 0.105 of scenes.
  The readout is piecewise linear between map cells; ``c`` itself also enters the MLP so the
  energy can vary smoothly inside a cell (sub-cell precision).
* ``"pooled"`` (any concept: categories, a size, joint concepts): the map is averaged to a
  ``K`` vector and the MLP reads ``[vector, c]``.

``camera=True`` (spatial readout; views from any camera, ``make_dataset("multiview")``): where
a value is read depends on the view's camera, which the net estimates from the image. A small
MLP reads moments of the feature map (its mean and its mean weighted by ``x``, ``y``, ``x^2``,
``y^2``, ``xy`` of the map's grid: what way the ground's colour gradient runs across the image)
and gives the camera ``(cos az, sin az, (elevation - 55) / 20, distance - 8.5)`` (degrees,
world units; :meth:`LateEnergyNet.camera_target` turns a rendered view into these); the world
point ``(c_x, c_y, h)`` (``h`` learned, started at 0.35, the mid object centre height) is
projected through that pinhole camera (field of view ``camera_fov``) to the map, then through
``where`` (started at the identity), and the camera also enters the head. Training can
supervise the camera on rendered views (``benchmarks/late_multiview.py``); inference needs only
the images.

Example:
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> net = LateEnergyNet(Concept.continuous("position", dim=2), width=4, features=8)
    >>> x = torch.rand(2, 3, 32, 32)
    >>> f = net.features(x)  # once per image: (2, 8, 16, 16)
    >>> net.energy_from_features(f, torch.zeros(2, 5, 2)).shape  # 5 candidates each
    torch.Size([2, 5])
    >>> torch.allclose(net(x, torch.zeros(2, 2)),
    ...                net.energy_from_features(f, torch.zeros(2, 1, 2))[:, 0])
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conceptebm.concepts import Concept
from conceptebm.energies.base import ConditionalEnergy
from conceptebm.energies.nets import JointConcept, check_net_options, concept_scaling

__all__ = ["LateEnergyNet"]

READOUTS = ("spatial", "pooled")
#: the camera the ``camera=True`` head predicts: ``(cos az, sin az, (el - 55) / 20, dist - 8.5)``
CAMERA_CENTER = (55.0, 8.5)  # elevation (degrees), distance: the multiview set's mid range
CAMERA_SCALE = (20.0, 1.0)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.SiLU())


class LateEnergyNet(ConditionalEnergy):
    """Late-conditioned energy ``E(x|c) = MLP([readout(trunk(x), c), c])`` for images in [0, 1].

    Args:
        concept: a :class:`~conceptebm.concepts.Concept` or a
            :class:`~conceptebm.energies.nets.JointConcept`.
        image_size: H = W, a power of two >= 16.
        channels: image channels.
        width: trunk channels at full resolution (2 * width at H/2); cost grows as width**2.
        layers: 3x3 convs at H/2 after the stride-2 one (receptive field 5 + 4 * layers px).
        features: ``K``, channels of the feature map the head reads.
        hidden: width of the head MLP's two hidden layers.
        readout: ``"spatial"`` (default for a 2-D continuous concept) or ``"pooled"`` (default
            otherwise); see the module docstring.
        center_input: feed pixels as ``2x - 1``.
        context: also feed the head the spatial mean of the feature map (spatial readout
            only): a little global context (the scene's light, what else it holds) beside
            the local evidence where ``c`` is read; computed once per image.
        camera: read the map where the view's camera, estimated from the image, puts ``c``
            (spatial readout of a world position; see the module docstring).
        camera_fov: the cameras' field of view in degrees (``camera=True``).
        sampler: recommended image-generation settings (see ConditionalEnergy).

    ``config`` rebuilds the net with :func:`~conceptebm.energies.nets.build_energy_net`.
    """

    def __init__(self, concept: Concept | Sequence[Concept], *, image_size: int = 32,
                 channels: int = 3, width: int = 24, layers: int = 3, features: int = 32,
                 hidden: int = 64,
                 readout: str | None = None, center_input: bool = True,
                 context: bool = False, camera: bool = False, camera_fov: float = 30.0,
                 sampler=None):
        if not isinstance(concept, Concept):
            concept = JointConcept.of(concept)
        super().__init__(concept, sampler=sampler)
        check_net_options("LateEnergyNet", (("image_size", image_size, 16),
                                            ("channels", channels, 1), ("width", width, 1),
                                            ("layers", layers, 0), ("features", features, 1),
                                            ("hidden", hidden, 1)))
        spatial_ok = not concept.is_categorical and concept.kind != "joint" and concept.dim == 2
        readout = readout or ("spatial" if spatial_ok else "pooled")
        if readout not in READOUTS:
            raise ValueError(f"LateEnergyNet: readout must be one of {READOUTS}, got {readout!r}")
        if readout == "spatial" and not spatial_ok:
            raise ValueError(f"LateEnergyNet: readout='spatial' reads a map at a 2-D position; "
                             f"concept {concept.name!r} is not a 2-D continuous concept: use "
                             f"readout='pooled'")
        if context and readout != "spatial":
            raise ValueError("LateEnergyNet: context=True adds the pooled map to a spatial "
                             "readout; a pooled readout already reads it: drop context")
        if camera and readout != "spatial":
            raise ValueError("LateEnergyNet: camera=True projects a world position into a "
                             "spatial readout's map; use readout='spatial' or drop camera")
        if camera and not 0 < float(camera_fov) < 180:
            raise ValueError(f"LateEnergyNet: camera_fov must be in (0, 180) degrees, got "
                             f"{camera_fov!r}")
        self.config = {"type": "LateEnergyNet", "concept": concept.to_dict(),
                       "image_size": int(image_size), "channels": int(channels),
                       "width": int(width), "layers": int(layers), "features": int(features),
                       "hidden": int(hidden),
                       "readout": readout, "center_input": bool(center_input),
                       **({"context": True} if context else {}),
                       **({"camera": True, "camera_fov": float(camera_fov)} if camera else {})}
        self.image_size, self.channels = int(image_size), int(channels)
        self.readout, self.center_input = readout, bool(center_input)
        self.context = bool(context)
        self.camera_aware = bool(camera)
        scale, shift = concept_scaling(concept)
        self.register_buffer("c_scale", scale, persistent=False)
        self.register_buffer("c_shift", shift, persistent=False)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, image_size),
                                torch.linspace(-1, 1, image_size), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)  # (1,2,H,W)

        w = int(width)
        # A local trunk (receptive field 5 + 4 * layers pixels): what the map says at a place
        # depends on what is near it, so two objects give two basins, as two maps would.
        self.stem = _conv(channels + 2, w)  # (B, w, H, W)
        self.down = _conv(w, 2 * w, 2)  # (B, 2w, H/2, W/2)
        self.body = nn.Sequential(*[_conv(2 * w, 2 * w) for _ in range(int(layers))])
        self.out = nn.Conv2d(2 * w, features, 1)  # (B, K, H/2, W/2)
        # Where a value c is read in the map: an affine map of c in [-1, 1], learned from the
        # identity (a rendered position need not fill the image).
        self.where = nn.Linear(2, 2) if readout == "spatial" else None
        if self.where is not None:
            nn.init.eye_(self.where.weight)
            nn.init.zeros_(self.where.bias)
        n_in = features * (2 if self.context else 1) + concept.dim + (4 if camera else 0)
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(),
                                  nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        if camera:  # after the head: nets without a camera draw the same initial weights
            n = image_size // 2
            gy, gx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n),
                                    indexing="ij")
            weights = torch.stack([torch.ones_like(gx), gx, gy, gx * gx, gy * gy, gx * gy])
            self.register_buffer("moment_maps", weights / (n * n), persistent=False)
            self.camera_head = nn.Sequential(nn.Linear(6 * features, hidden), nn.SiLU(),
                                             nn.Linear(hidden, hidden), nn.SiLU(),
                                             nn.Linear(hidden, 4))
            self.height = nn.Parameter(torch.tensor(0.35))
            self.register_buffer("tan_half_fov",
                                 torch.tensor(math.tan(math.radians(camera_fov) / 2)),
                                 persistent=False)

    def start_readout(self, images: Tensor, values: Tensor, *, min_r2: float = 0.3,
                      background: str = "image", trim: float = 0.5) -> bool:
        """Start the readout where the camera puts each value: fit ``where`` (an affine map of
        the normalised value to the image point) by least squares to the centroids of the
        pixels of ``images (N, C, H, W)`` that differ from the background, against their
        ``values (N, 2)``. ``background="image"``: each image's median colour (a light that
        changes from image to image moves the whole ground, which a shared background would
        count as object: on a renderer variant with another camera and light the fit then
        explained 0.80 of the centroids' variance, against 0.97 per image); ``"dataset"``:
        the per-pixel median image of the batch (how ``position_late`` was started). Call it
        before training, on about 1,000 training images of one object each: a local trunk
        cannot see an object that lies farther from where its value is read than its receptive
        field, and a gradient does not flip a wrong sign
        (started at the identity, the default camera's downward image y never trained out).

        The fit is accepted when it explains ``min_r2`` of the centroids' variance (grey
        clutter and shadows pull centroids off the object: on the nuisance-randomised
        "position_robust" set 0.49, against 0.99 on clean scenes and about 0 on noise), then
        refitted ``3`` times on the ``1 - trim`` of images it explains best (there the fitted
        scale grew from 0.32 to 0.39 of the clean fit's 0.55; what matters is the sign and the
        rough place, which training refines).

        Returns whether it was applied: not for a pooled readout, nor when the fit explains
        less than ``min_r2`` of the centroids' variance (no single object per image, or a
        value that is not a place in the image); ``where`` is then left as it is.

        Example:
            >>> net = LateEnergyNet(Concept.continuous("position", dim=2), width=4, features=8)
            >>> x = torch.zeros(64, 3, 32, 32)
            >>> v = torch.rand(64, 2) * 2 - 1
            >>> for i, (a, b) in enumerate(((v + 1) * 12).long().tolist()):
            ...     x[i, :, 27 - b:30 - b, a + 2:a + 5] = 1.0  # a 3x3 square, y upward
            >>> net.start_readout(x, v), net.where.weight.diag().sign().tolist()
            (True, [1.0, -1.0])
        """
        if self.where is None or self.camera_aware:  # a camera net projects from the start
            return False
        x = images.detach().float()
        if background not in ("image", "dataset"):
            raise ValueError(f"start_readout: background must be 'image' or 'dataset', got "
                             f"{background!r}")
        bg = (x.flatten(2).median(2).values[:, :, None, None] if background == "image"
              else x.median(0).values)  # (N, C, 1, 1) or (C, H, W)
        mask = ((x - bg).abs().sum(1) > 0.3).float()  # (N, H, W)
        axis = torch.linspace(-1, 1, x.shape[-1], device=x.device)
        count = mask.sum((1, 2))
        keep = count > 0
        if int(keep.sum()) < 10:
            return False
        centre = torch.stack([(mask.sum(1) * axis).sum(1), (mask.sum(2) * axis).sum(1)],
                             1)[keep] / count[keep, None]  # (n, 2): (x right, y down)
        cn = self.normalise(values.detach().float().to(x.device))[keep]  # (n, 2)
        design = torch.cat([cn, torch.ones_like(cn[:, :1])], 1)  # (n, 3)
        sol = torch.linalg.lstsq(design, centre).solution  # (3, 2)
        resid = (design @ sol - centre).pow(2).sum()
        r2 = 1 - resid / (centre - centre.mean(0)).pow(2).sum().clamp(min=1e-12)
        for _ in range(3 if trim else 0):  # refit on the images the fit explains best
            best = (design @ sol - centre).norm(dim=1).argsort()[:max(3, int(len(centre)
                                                                          * (1 - trim)))]
            sol = torch.linalg.lstsq(design[best], centre[best]).solution
        if not r2 >= min_r2:
            return False
        with torch.no_grad():
            self.where.weight.copy_(sol[:2].T)
            self.where.bias.copy_(sol[2])
        return True

    def normalise(self, c: Tensor) -> Tensor:
        """Encoded concept -> head input: continuous parts in [-1, 1]."""
        return c * self.c_scale.to(c) + self.c_shift.to(c)

    def features(self, x: Tensor) -> Tensor:
        """The trunk: ``(N, C, H, W) -> (N, K, H/2, W/2)`` (spatial) or ``(N, K)`` (pooled)."""
        if x.dim() != 4 or x.shape[1:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                f"{self!r} was built for images of shape ({self.channels}, {self.image_size}, "
                f"{self.image_size}), got {tuple(x.shape[1:])}; build a net with "
                f"image_size={x.shape[-1]} or resize the images")
        b = x.shape[0]
        h = torch.cat([x * 2.0 - 1.0 if self.center_input else x,
                       self.coords.to(x).expand(b, -1, -1, -1)], dim=1)  # (B, C+2, H, W)
        h = self.stem(h)  # (B, w, H, W)
        f = self.out(self.body(self.down(h)))  # (B, K, H/2, W/2)
        return f if self.readout == "spatial" else f.mean((2, 3))  # (B, K)

    def camera(self, f: Tensor) -> Tensor:
        """The camera of each view estimated from spatial features ``f (N, K, h, w)``:
        ``(N, 4)`` as :meth:`camera_target` (``camera=True`` nets)."""
        if not self.camera_aware:
            raise ValueError("LateEnergyNet.camera: this net was built without camera=True")
        m = torch.einsum("nkhw,mhw->nkm", f, self.moment_maps.to(f))  # (N, K, 6)
        return self.camera_head(m.flatten(1))  # (N, 4)

    @staticmethod
    def camera_target(view: Tensor) -> Tensor:
        """A rendered view's camera ``(N, 4)``: (azimuth, elevation, distance, fov) in degrees
        and world units, the dataset's ``"view"`` label -> ``(cos az, sin az, (el - 55) / 20,
        dist - 8.5)``, what :meth:`camera` estimates."""
        az = torch.deg2rad(view[:, 0])
        return torch.stack([az.cos(), az.sin(), (view[:, 1] - CAMERA_CENTER[0]) / CAMERA_SCALE[0],
                            (view[:, 2] - CAMERA_CENTER[1]) / CAMERA_SCALE[1]], dim=1)

    def project(self, c: Tensor, cam: Tensor) -> Tensor:
        """World points ``(c_x, c_y, height)`` for ``c (N, R, 2)`` seen by cameras ``cam (N, 4)``
        (:meth:`camera`) -> ``(N, R, 2)`` points of the feature map in ``grid_sample``'s
        ``align_corners=True`` frame (the renderer's pinhole camera, looking at the origin)."""
        a = cam[:, :2] / cam[:, :2].norm(dim=1, keepdim=True).clamp_min(1e-6)  # cos, sin az
        el = torch.deg2rad(CAMERA_CENTER[0] + CAMERA_SCALE[0] * cam[:, 2]).clamp(0.05, 1.52)
        dist = (CAMERA_CENTER[1] + CAMERA_SCALE[1] * cam[:, 3]).clamp_min(2.0)
        ce, se = el.cos(), el.sin()
        forward = torch.stack([-ce * a[:, 1], ce * a[:, 0], -se], 1)  # (N, 3), unit
        right = torch.stack([a[:, 0], a[:, 1], torch.zeros_like(ce)], 1)
        up = torch.linalg.cross(right, forward)
        eye = -dist[:, None] * forward
        p = torch.cat([c, self.height.to(c).expand(*c.shape[:2], 1)], -1)  # (N, R, 3)
        rel = p - eye[:, None]
        depth = (rel * forward[:, None]).sum(-1).clamp_min(0.1)
        t = self.tan_half_fov.to(c)
        sx = (rel * right[:, None]).sum(-1) / (depth * t)  # image x in [-1, 1], right
        sy = (rel * up[:, None]).sum(-1) / (depth * t)  # image y in [-1, 1], up
        s = self.image_size
        half = s // 2 - 1  # the stride-2 map's cell j sits on image pixel 2j
        gx = ((sx + 1) * s / 2 - 0.5) / 2 / half * 2 - 1
        gy = ((1 - sy) * s / 2 - 0.5) / 2 / half * 2 - 1
        return torch.stack([gx, gy], -1)

    def energy_from_features(self, f: Tensor, c: Tensor) -> Tensor:
        n, k = f.shape[0], self.config["features"]
        single = c.dim() == 2
        if single:
            c = c[:, None]  # (N, 1, dim)
        if c.dim() != 3 or c.shape[0] != n or c.shape[2] != self.concept.dim:
            raise ValueError(f"{self.concept.name} energy: c must have shape (N, "
                             f"{self.concept.dim}) or (N, R, {self.concept.dim}) for features of "
                             f"N = {n} items, got {tuple(c.shape)}")
        cn = self.normalise(c.to(f))  # (N, R, dim)
        cam = self.camera(f) if self.camera_aware else None  # (N, 4)
        if cam is not None:
            loc = self.where(self.project(c.to(f), cam))  # (N, R, 2)
        elif self.readout == "spatial":
            loc = self.where(cn)  # (N, R, 2): (x, y) in grid_sample's [-1, 1] frame
        if self.readout == "spatial":
            read = F.grid_sample(f, loc[:, :, None], mode="bilinear", padding_mode="border",
                                 align_corners=True)  # (N, K, R, 1)
            read = read[..., 0].transpose(1, 2)  # (N, R, K)
            if self.context:  # the map's spatial mean, the same for every candidate
                pooled = f.mean((2, 3))[:, None].expand(n, c.shape[1], k)  # (N, R, K)
                read = torch.cat([read, pooled], dim=-1)  # (N, R, 2K)
        else:
            read = f[:, None].expand(n, c.shape[1], k)  # (N, R, K)
        parts = [read, cn]
        if cam is not None:  # the camera enters the head too
            parts.append(cam[:, None].expand(n, c.shape[1], 4))
        e = self.head(torch.cat(parts, dim=-1))[..., 0]  # (N, R)
        return e[:, 0] if single else e

    def energy(self, x: Tensor, c: Tensor) -> Tensor:
        return self.energy_from_features(self.features(x), c)  # (B,)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

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

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conceptebm.concepts import Concept
from conceptebm.energies.base import ConditionalEnergy
from conceptebm.energies.nets import JointConcept, check_net_options, concept_scaling

__all__ = ["LateEnergyNet"]

READOUTS = ("spatial", "pooled")


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
        sampler: recommended image-generation settings (see ConditionalEnergy).

    ``config`` rebuilds the net with :func:`~conceptebm.energies.nets.build_energy_net`.
    """

    def __init__(self, concept: Concept | Sequence[Concept], *, image_size: int = 32,
                 channels: int = 3, width: int = 24, layers: int = 3, features: int = 32,
                 hidden: int = 64,
                 readout: str | None = None, center_input: bool = True,
                 context: bool = False, sampler=None):
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
        self.config = {"type": "LateEnergyNet", "concept": concept.to_dict(),
                       "image_size": int(image_size), "channels": int(channels),
                       "width": int(width), "layers": int(layers), "features": int(features),
                       "hidden": int(hidden),
                       "readout": readout, "center_input": bool(center_input),
                       **({"context": True} if context else {})}
        self.image_size, self.channels = int(image_size), int(channels)
        self.readout, self.center_input = readout, bool(center_input)
        self.context = bool(context)
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
        n_in = features * (2 if self.context else 1) + concept.dim
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(),
                                  nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

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
        if self.where is None:
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
        if self.readout == "spatial":
            loc = self.where(cn)  # (N, R, 2): (x, y) in grid_sample's [-1, 1] frame
            read = F.grid_sample(f, loc[:, :, None], mode="bilinear", padding_mode="border",
                                 align_corners=True)  # (N, K, R, 1)
            read = read[..., 0].transpose(1, 2)  # (N, R, K)
            if self.context:  # the map's spatial mean, the same for every candidate
                pooled = f.mean((2, 3))[:, None].expand(n, c.shape[1], k)  # (N, R, K)
                read = torch.cat([read, pooled], dim=-1)  # (N, R, 2K)
        else:
            read = f[:, None].expand(n, c.shape[1], k)  # (N, R, K)
        e = self.head(torch.cat([read, cn], dim=-1))[..., 0]  # (N, R)
        return e[:, 0] if single else e

    def energy(self, x: Tensor, c: Tensor) -> Tensor:
        return self.energy_from_features(self.features(x), c)  # (B,)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

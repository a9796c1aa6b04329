"""Is an image of the kind a model was trained on? A density check on cheap image statistics.

The energy checks of :mod:`conceptebm.evaluate.calibration` ask whether an image's best energy
and its energy contrast look like those of real images. A photograph of a cat can pass them:
an energy net has never seen such an image, and where it puts its energy there is anybody's
guess. This module asks a question that does not depend on the net: do the image's coarse
statistics look like those of the images it was trained on?

:func:`scene_features` summarises an image in 240 numbers (for 3 channels): an 8x8 colour
thumbnail (the layout: where ground, sky and objects lie), the mean horizontal and vertical
gradient magnitudes on a 4x4 grid (how much texture, and where), and 8-bin histograms of
saturation and brightness (how many colours). :func:`fit_familiarity` fits a Gaussian to those
features of the training images, kept low-rank as probabilistic PCA (``components`` principal
directions, one shared variance for the rest), and sets a threshold on the Mahalanobis
distance: the ``quantile`` of held-out training images' distances times ``margin``.
:func:`familiarity` gives each image's distance over that threshold (``<= 1``: familiar) and
:func:`familiar` the verdict. The fitted record is plain JSON (about 16,000 numbers) and is
stored in a model's record as ``"familiarity"`` (its arrays as base64 float32, about 85 KB),
where :func:`~conceptebm.evaluate.calibration.object_found` uses it when given the images.

A second, one-sided check asks for what every object of a known kind has when its training
images have it: a patch whose colour stands out. :func:`colour_contrast` averages the image on
an 8x8 grid, takes each cell's chroma (its colour minus its grey level) and returns the largest
distance of a cell's chroma from the image's median chroma: a coloured object of a few pixels
on a plain ground lifts it, pixel noise averages out, and an image of one colour all over (a
grey photograph, a micrograph, text, a brown wood or stone texture) keeps it near 0. The
record's ``colour_floor`` is its :data:`COLOUR_QUANTILE` quantile over the fitted images; an
image below the floor is unfamiliar (``familiarity`` then reports ``colour_floor / contrast``
when that is the larger) and :func:`colourless`. A model trained on grey images has a floor
near 0 and the check passes everything; a record without ``colour_floor`` skips it.

The defaults (the features, 64 components, the 99.5 % quantile, margin 1, the colour floor
at the 0.2 % quantile) were chosen on validation images only: rendered scenes of every kind the
shipped position readers meet (clean, noisy, JPEG, blurred, grey clutter, unseen light, two
objects, other grounds and cameras; seed 31337) against photographs, crops, grey photographs,
texture patches, terrain maps, drawings, procedural textures, pages of text and digits made
from files that ship with matplotlib and scikit-learn (:mod:`conceptebm.datasets.nonscenes`;
``benchmarks/photographs.py --validation``). The test sets are photographs never used to
choose anything (``benchmarks/photographs.py``).

Example (images in two families: dark noise is familiar, a bright one is not):
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> train = torch.rand(400, 3, 16, 16, generator=g) * 0.3
    >>> record = fit_familiarity(train, components=8)
    >>> record["n"], record["components"]
    (400, 8)
    >>> new = torch.cat([torch.rand(2, 3, 16, 16, generator=g) * 0.3,
    ...                  0.7 + torch.rand(2, 3, 16, 16, generator=g) * 0.3])
    >>> familiar(record, new).tolist()
    [True, True, False, False]
"""

from __future__ import annotations

import base64

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["scene_features", "colour_contrast", "fit_familiarity", "familiarity", "familiar",
           "colourless",
           "FEATURES", "COMPONENTS", "QUANTILE", "MARGIN", "COLOUR_QUANTILE"]

#: the version of :func:`scene_features` a record was fitted with
FEATURES = "thumb8-grad4-hist8/v1"
COMPONENTS = 64
QUANTILE = 0.995
MARGIN = 1.0
COLOUR_QUANTILE = 0.002
_BINS = 8


def scene_features(images: Tensor) -> Tensor:
    """``(N, C, H, W)`` images in [0, 1] -> ``(N, 64 C + 48)`` features (see the module
    docstring): an 8x8 thumbnail per channel, 4x4 mean gradient magnitudes along x and y
    (averaged over channels), and 8-bin histograms of saturation (max - min over channels)
    and brightness (max over channels)."""
    if images.dim() != 4:
        raise ValueError(f"scene_features: images must have shape (N, C, H, W), got "
                         f"{tuple(images.shape)}")
    x = images.float()
    thumb = F.adaptive_avg_pool2d(x, 8).flatten(1)  # (N, 64 C)
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(1, keepdim=True)  # (N, 1, H, W-1)
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(1, keepdim=True)  # (N, 1, H-1, W)
    grads = [F.adaptive_avg_pool2d(g, 4).flatten(1) for g in (gx, gy)]  # 2 x (N, 16)
    top, low = x.max(1).values, x.min(1).values  # (N, H, W)
    hists = []
    for t in (top - low, top):
        idx = (t.clamp(0, 1) * _BINS).long().clamp(max=_BINS - 1).flatten(1)  # (N, HW)
        h = torch.zeros(x.shape[0], _BINS).scatter_add_(1, idx, torch.ones_like(idx,
                                                                              dtype=torch.float))
        hists.append(h / idx.shape[1])
    return torch.cat([thumb, *grads, *hists], dim=1)


def colour_contrast(images: Tensor) -> Tensor:
    """``(N, C, H, W)`` images in [0, 1] -> ``(N,)``: on the image averaged to an 8x8 grid,
    the largest distance of a cell's chroma (its RGB minus its mean over channels) from the
    median chroma of the cells. About 0 for an image of one colour all over (grey, or one tint
    of a texture); lifted by a patch of another colour a cell wide (4x4 pixels at 32x32), while
    pixel noise averages out."""
    if images.dim() != 4:
        raise ValueError(f"colour_contrast: images must have shape (N, C, H, W), got "
                         f"{tuple(images.shape)}")
    p = F.adaptive_avg_pool2d(images.float(), 8)
    chroma = (p - p.mean(1, keepdim=True)).flatten(2)  # (N, C, 64)
    median = chroma.median(2, keepdim=True).values
    return (chroma - median).norm(dim=1).max(1).values


def _pack(t: Tensor) -> dict:
    """A float tensor as JSON: its shape and its float32 bytes (little-endian) in base64."""
    a = t.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4")
    return {"shape": list(a.shape), "float32": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: dict) -> Tensor:
    a = np.frombuffer(base64.b64decode(d["float32"]), dtype="<f4").reshape(d["shape"])
    return torch.from_numpy(a.copy())


def _distance(record: dict, feats: Tensor) -> Tensor:
    mean, basis, var = (_unpack(record[k]) for k in ("mean", "basis", "variance"))
    xc = feats.double() - mean.double()
    proj = xc @ basis.double().T  # (N, k)
    rest = ((xc ** 2).sum(1) - (proj ** 2).sum(1)).clamp_min(0)
    return (proj ** 2 / var.double()).sum(1) + rest / float(record["residual"])  # (N,)


def fit_familiarity(images: Tensor, heldout: Tensor | None = None, *,
                    components: int = COMPONENTS, quantile: float = QUANTILE,
                    margin: float = MARGIN, colour_quantile: float = COLOUR_QUANTILE) -> dict:
    """Fit the check on ``images (N, C, H, W)`` of the training distribution; the threshold
    comes from ``heldout`` images of the same distribution (default: every fifth of
    ``images``, the rest fitted), the colour floor from the fitted images' ``colour_quantile``
    quantile of :func:`colour_contrast` (``colour_quantile=0`` turns that check off). Returns a
    JSON-ready record."""
    if heldout is None:
        keep = torch.arange(images.shape[0]) % 5 != 4
        images, heldout = images[keep], images[~keep]
    if images.shape[0] < 20 or heldout.shape[0] < 5:
        raise ValueError(f"fit_familiarity needs >= 20 images to fit and >= 5 held out, got "
                         f"{images.shape[0]} and {heldout.shape[0]}")
    feats = scene_features(images).double()  # (N, D)
    n, d = feats.shape
    k = max(1, min(int(components), n // 4, d - 1))
    mean = feats.mean(0)
    _, s, vh = torch.linalg.svd(feats - mean, full_matrices=False)
    var = s ** 2 / (n - 1)  # (min(n, D),) eigenvalues of the covariance
    floor = 1e-6 * float(var[0])  # no direction counts as exactly flat
    residual = max(float(var[k:].sum()) / max(d - k, 1), floor)
    record = {"features": FEATURES, "n": int(images.shape[0] + heldout.shape[0]),
              "components": k, "quantile": float(quantile), "margin": float(margin),
              "mean": _pack(mean), "basis": _pack(vh[:k]),
              "variance": _pack(var[:k].clamp_min(floor)), "residual": residual}
    dist = _distance(record, scene_features(heldout))
    record["threshold"] = float(torch.quantile(dist, quantile)) * float(margin)
    floor = (float(torch.quantile(colour_contrast(images), colour_quantile)) if colour_quantile
             else 0.0)
    record.update(colour_quantile=float(colour_quantile), colour_floor=floor)
    return record


def familiarity(record: dict, images: Tensor) -> Tensor:
    """``(N,)`` distance of each image (``(N, C, H, W)``; ``(S, V, C, H, W)`` sets give the
    largest over each set's views) from the fitted distribution, in units of the threshold:
    above 1 is unlike the training images."""
    if record.get("features") != FEATURES:
        raise ValueError(f"familiarity record made with features {record.get('features')!r}, "
                         f"this version computes {FEATURES!r}: refit it")
    if images.dim() == 5:
        s, v = images.shape[:2]
        return familiarity(record, images.flatten(0, 1)).reshape(s, v).max(1).values
    score = _distance(record, scene_features(images)) / float(record["threshold"])
    floor = float(record.get("colour_floor") or 0.0)
    if floor > 0:  # below the floor: no patch of colour where the training images had one
        score = torch.maximum(score, floor / colour_contrast(images).double().clamp_min(1e-6))
    return score.float()


def colourless(record: dict, images: Tensor) -> Tensor:
    """``(N,)`` bools: does each image (a set: any of its views) lack the patch of colour the
    training images have (its :func:`colour_contrast` below the record's ``colour_floor``)?
    Such an image holds no object of a kind the model knows. All ``False`` for a record with
    no floor."""
    if images.dim() == 5:
        s, v = images.shape[:2]
        return colourless(record, images.flatten(0, 1)).reshape(s, v).any(1)
    floor = float(record.get("colour_floor") or 0.0)
    return colour_contrast(images) < floor if floor > 0 else torch.zeros(images.shape[0],
                                                                         dtype=torch.bool)


def familiar(record: dict, images: Tensor) -> Tensor:
    """``(N,)`` bools: is each image (or set of views) like the training images?"""
    return familiarity(record, images) <= 1.0

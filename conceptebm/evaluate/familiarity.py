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

The defaults (the features, 64 components, the 99.5 % quantile, margin 1) were chosen on
validation images only: rendered scenes of every kind the shipped position readers meet
(clean, noisy, grey clutter, unseen light, two objects; seed 31337) against photographs,
crops, terrain maps, drawings and digits that ship with matplotlib and scikit-learn
(``benchmarks/photographs.py --validation``); the photographs of scikit-image are the test set.

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

__all__ = ["scene_features", "fit_familiarity", "familiarity", "familiar", "FEATURES",
           "COMPONENTS", "QUANTILE", "MARGIN"]

#: the version of :func:`scene_features` a record was fitted with
FEATURES = "thumb8-grad4-hist8/v1"
COMPONENTS = 64
QUANTILE = 0.995
MARGIN = 1.0
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
                    margin: float = MARGIN) -> dict:
    """Fit the check on ``images (N, C, H, W)`` of the training distribution; the threshold
    comes from ``heldout`` images of the same distribution (default: every fifth of
    ``images``, the rest fitted). Returns a JSON-ready record."""
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
    return (_distance(record, scene_features(images)) / float(record["threshold"])).float()


def familiar(record: dict, images: Tensor) -> Tensor:
    """``(N,)`` bools: is each image (or set of views) like the training images?"""
    return familiarity(record, images) <= 1.0

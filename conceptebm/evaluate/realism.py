"""How real do generated images look? The Fréchet distance in the judges' feature space.

Accuracy tables say whether a generated image shows the asked-for concepts; they do not say
whether it looks like a scene (colour speckle, smeared edges). :func:`realism` fits a Gaussian
to the judges' penultimate features (the 128-wide layer every head reads) of the generated
images and of real renders, and reports the Fréchet distance between the two,

    FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g^1/2 S_r S_g^1/2)^1/2),

the statistic of the Fréchet Inception Distance computed with our judges instead of an
Inception net (no downloaded weights; the judges were trained on our scenes, so their
features see what matters here). The estimate is biased upward at finite ``n``, so it comes
with its floor: the same statistic between two disjoint real sets of the same size, what a
perfect generator would score. Compare values only at equal ``n``.

Example:
    >>> import torch
    >>> from conceptebm.datasets import make_dataset
    >>> real = make_dataset("general", seed=5).batch(torch.arange(256))[0]
    >>> noise = torch.rand(128, 3, 32, 32)
    >>> r = realism(noise, real)
    >>> r["n"], bool(r["fid"] > 3 * r["fid_floor"])
    (128, True)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["frechet_distance", "judge_features", "realism"]


@torch.no_grad()
def judge_features(images: Tensor, judges=None, *, batch_size: int = 512) -> Tensor:
    """The judges' shared penultimate features ``(B, hidden)`` of ``images (B, 3, S, S)`` in
    [0, 1], computed in chunks of ``batch_size`` on the judges' device (float64 on return)."""
    if judges is None:
        from conceptebm.evaluate.checkpoint import load_judges
        judges = load_judges()
    judges.check_images(images)
    net = judges.net
    out = []
    for chunk in images.split(batch_size):
        chunk = chunk.to(judges.device, torch.float32)
        out.append(net.fc(net.trunk(chunk * 2.0 - 1.0)).double().cpu())  # as JudgeNet.forward
    return torch.cat(out)


def _sqrt_psd(m: Tensor) -> Tensor:
    """Symmetric square root of a positive semi-definite matrix (negative round-off -> 0)."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a (n, d)`` and ``b (m, d)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(4000, 2, generator=g, dtype=torch.float64)
        >>> round(frechet_distance(a, a + torch.tensor([3.0, 4.0], dtype=torch.float64)), 3)
        25.0
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (n, d) and (m, d), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 rows to estimate a covariance")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrt_psd(s_a)
    cross = _sqrt_psd(root_a @ s_b @ root_a)
    fd = (mu_a - mu_b).square().sum() + torch.trace(s_a + s_b - 2 * cross)
    return float(fd.clamp_min(0))


def realism(generated: Tensor, real: Tensor, *, judges=None, batch_size: int = 512) -> dict:
    """Fréchet distance of ``generated (n, 3, S, S)`` to ``real`` renders in the judges'
    feature space, with its finite-sample floor.

    ``real`` must hold at least ``2 n`` images: the first ``n`` are the reference for
    ``fid``; ``fid_floor`` compares them with the next ``n`` (real vs real, same size), what
    a generator indistinguishable from the renderer would score. Returns ``{"fid", "fid_floor",
    "n"}``.
    """
    n = len(generated)
    if len(real) < 2 * n:
        raise ValueError(f"realism needs at least 2 x {n} real images (a reference set and a "
                         f"floor set of the generated size), got {len(real)}; render more")
    if judges is None:
        from conceptebm.evaluate.checkpoint import load_judges
        judges = load_judges()
    f_gen = judge_features(generated, judges, batch_size=batch_size)
    f_real = judge_features(real[:2 * n], judges, batch_size=batch_size)
    return {"fid": frechet_distance(f_gen, f_real[:n]),
            "fid_floor": frechet_distance(f_real[n:], f_real[:n]), "n": n}

"""Analytic energies with closed-form answers, for tests, teaching and notebooks."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from conceptebm.energies.base import Energy

__all__ = ["Gaussian", "GaussianMixture"]


def _as_cov(mean: Tensor, cov) -> Tensor:
    d = mean.shape[-1]
    cov = torch.as_tensor(cov, dtype=mean.dtype)
    if cov.dim() == 0:
        cov = cov * torch.eye(d, dtype=mean.dtype)
    elif cov.dim() == 1:
        cov = torch.diag(cov)
    if cov.shape != (d, d):
        raise ValueError(f"cov must be a scalar, ({d},) or ({d}, {d}), got {tuple(cov.shape)}")
    if not torch.allclose(cov, cov.T, atol=1e-10):
        raise ValueError("cov must be symmetric")
    try:
        torch.linalg.cholesky(cov)
    except RuntimeError:
        raise ValueError("cov must be positive definite") from None
    return cov


def _check_x(x: Tensor, d: int, who: str) -> None:
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"{who} of dimension {d} expects x of shape (batch, {d}), "
                         f"got {tuple(x.shape)}")


class Gaussian(Energy):
    """``E(x) = 0.5 (x - mean)^T cov^{-1} (x - mean)`` (+ log normalizer if ``normalized``).

    Args:
        mean: ``(d,)``.
        cov: scalar variance, ``(d,)`` diagonal, or full ``(d, d)`` covariance.
        normalized: add ``0.5 log det(2 pi cov)`` so exp(-E) is the normalized density.

    Example:
        >>> g = Gaussian(torch.zeros(2, dtype=torch.float64), 1.0)
        >>> g(torch.ones(3, 2, dtype=torch.float64))
        tensor([1., 1., 1.], dtype=torch.float64)
    """

    def __init__(self, mean, cov, normalized: bool = False):
        super().__init__()
        mean = torch.as_tensor(mean)
        if not mean.is_floating_point():
            mean = mean.to(torch.get_default_dtype())
        mean = mean.reshape(-1)
        cov = _as_cov(mean, cov)
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("precision", torch.linalg.inv(cov))
        self.normalized = normalized

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def log_partition(self) -> float:
        """log Z of the unnormalized density exp(-0.5 * Mahalanobis^2)."""
        return 0.5 * float(torch.logdet(2 * math.pi * self.cov))

    def energy(self, x: Tensor) -> Tensor:
        _check_x(x, self.dim, "Gaussian")
        diff = x - self.mean.to(x)  # (batch, d)
        e = 0.5 * torch.einsum("bi,ij,bj->b", diff, self.precision.to(x), diff)
        return e + self.log_partition() if self.normalized else e

    def __repr__(self) -> str:
        m = ",".join(f"{v:.3g}" for v in self.mean.tolist())
        return f"Gaussian({m})"


class GaussianMixture(Energy):
    """``E(x) = -log sum_k w_k N(x; mean_k, cov_k)`` (a normalized density).

    Args:
        means: ``(K, d)``.
        covs: ``(K, d, d)``, ``(K, d)`` diagonals, or ``(K,)`` scalar variances.
        weights: ``(K,)`` positive, normalized internally (default uniform).
    """

    def __init__(self, means, covs, weights=None):
        super().__init__()
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        covs = torch.as_tensor(covs, dtype=means.dtype)
        k = means.shape[0]
        if covs.shape[0] != k:
            raise ValueError(f"{covs.shape[0]} covariances for {k} components")
        covs = torch.stack([_as_cov(means[i], covs[i]) for i in range(k)])
        w = torch.full((k,), 1.0 / k, dtype=means.dtype) if weights is None else \
            torch.as_tensor(weights, dtype=means.dtype)
        if w.shape != (k,) or not (w > 0).all():
            raise ValueError(f"weights must be {k} positive numbers, got {w.tolist()}")
        self.register_buffer("means", means)
        self.register_buffer("covs", covs)
        self.register_buffer("log_weights", torch.log(w / w.sum()))
        self.register_buffer("precisions", torch.linalg.inv(covs))
        self.register_buffer("log_norms", 0.5 * torch.logdet(2 * math.pi * covs))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def energy(self, x: Tensor) -> Tensor:
        _check_x(x, self.dim, "GaussianMixture")
        diff = x[:, None, :] - self.means.to(x)[None]  # (batch, K, d)
        maha = torch.einsum("bki,kij,bkj->bk", diff, self.precisions.to(x), diff)
        logp = self.log_weights.to(x) - self.log_norms.to(x) - 0.5 * maha  # (batch, K)
        return -torch.logsumexp(logp, dim=1)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.means.shape[0]}, d={self.dim})"

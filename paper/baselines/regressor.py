"""A supervised baseline of the same size as a concept EBM: the discriminative yardstick.

:class:`ConceptRegressor` is :class:`~conceptebm.energies.nets.ConvEnergyNet`'s conv trunk
(coordinate channels, 4x4/2 stem to ``width``, 3x3 conv to ``2 width``, 4x4/2 convs down to
4x4, flatten) without the label inputs, with a linear head that outputs the concept directly:
its value rescaled to [-1, 1] (continuous, trained with MSE) or logits (categorical, cross
entropy). Same layers, same width, so "EBM vs regressor" compares objectives, not capacity.
``paper/benchmarks/user_data.py`` trains it on the same images as the EBM and scores both, clean
and under pixel noise.

Example:
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> level = Concept.continuous("level", 1, 0.0, 1.0)
    >>> x = torch.rand(64, 1, 1, 1).expand(64, 3, 8, 8)
    >>> model = fit_regressor(x, x[:, 0, 0, :1], level, iterations=300, width=4, seed=0)
    >>> bool(regressor_metrics(model, x, x[:, 0, 0, :1])["level_mae"].value < 0.05)
    True
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from conceptebm.concepts import Concept
from conceptebm.evaluate.augment import add_pixel_noise
from conceptebm.evaluate.metrics import Metric, score_predictions

__all__ = ["ConceptRegressor", "fit_regressor", "regressor_metrics"]


class ConceptRegressor(nn.Module):
    """``forward(images (B, 3, S, S)) -> (B, dim)`` head outputs; ``predict`` gives values
    ``(B, dim)`` in the concept's range or class indices ``(B,)``."""

    def __init__(self, concept: Concept, *, image_size: int = 32, width: int = 16):
        super().__init__()
        self.concept, self.image_size = concept, int(image_size)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, image_size),
                                torch.linspace(-1, 1, image_size), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        layers = [nn.Conv2d(5, width, 4, stride=2, padding=1), nn.SiLU(),
                  nn.Conv2d(width, 2 * width, 3, padding=1), nn.SiLU()]
        c, res, level = 2 * width, image_size // 2, 1
        while res > 4:
            c_out = width * min(2 ** level, 4)
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), nn.SiLU()]
            c, res, level = c_out, res // 2, level + 1
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * res * res, concept.dim)

    def forward(self, x: Tensor) -> Tensor:
        coords = self.coords.to(x).expand(x.shape[0], -1, -1, -1)  # (B, 2, S, S)
        return self.head(self.trunk(torch.cat([x, coords], dim=1)))  # (B, dim)

    @torch.no_grad()
    def predict(self, x: Tensor, chunk: int = 1024) -> Tensor:
        out = torch.cat([self(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)])
        if self.concept.is_categorical:
            return out.argmax(-1)  # (B,)
        lo, hi = self.concept.low, self.concept.high
        return (lo + (out.clamp(-1, 1) + 1) * 0.5 * (hi - lo))  # (B, dim)


def fit_regressor(images: Tensor, targets, concept: Concept, *, iterations: int = 3000,
                  batch_size: int = 32, lr: float = 1e-3, width: int = 16, seed: int = 0,
                  time_limit_s: float | None = None) -> ConceptRegressor:
    """Train a :class:`ConceptRegressor` on ``images (n, 3, S, S)`` and raw ``targets``."""
    torch.manual_seed(seed)
    model = ConceptRegressor(concept, image_size=images.shape[-1], width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    y = torch.as_tensor(targets)
    if concept.is_categorical:
        y = y.long()
    else:  # rescale to [-1, 1]
        y = (y.float().reshape(len(y), -1) - concept.low) / (concept.high - concept.low) * 2 - 1
    t0 = time.time()
    for _ in range(iterations):
        idx = torch.randint(images.shape[0], (batch_size,), generator=gen)
        out = model(images[idx])  # (B, dim)
        loss = (nn.functional.cross_entropy(out, y[idx]) if concept.is_categorical
                else (out - y[idx]).pow(2).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if time_limit_s is not None and time.time() - t0 > time_limit_s:
            break
    return model.eval()


def regressor_metrics(model: ConceptRegressor, images: Tensor, targets, *,
                      noise_sigma: float = 0.0, seed: int = 0) -> dict[str, Metric]:
    """The same metrics as :func:`~conceptebm.evaluate.heldout_map.heldout_map_metrics`."""
    concept = model.concept
    if noise_sigma > 0:
        sigma = torch.full((images.shape[0],), float(noise_sigma))
        images = add_pixel_noise(images, sigma, generator=torch.Generator().manual_seed(seed))
    pred = model.predict(images)
    targets = torch.as_tensor(targets)
    if not concept.is_categorical:
        targets = targets.reshape(pred.shape)  # (n,) labels of a 1-d concept: (n, 1)
    # the metrics follow the concept's declaration (kind, dimension, tolerances)
    return score_predictions({concept.name: pred}, {concept.name: targets},
                             {concept.name: concept})

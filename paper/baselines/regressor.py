"""A supervised baseline of the same size as a concept EBM: the discriminative yardstick.

:class:`ConceptRegressor` is :class:`~conceptebm.energies.nets.ConvEnergyNet`'s conv trunk
(coordinate channels, 4x4/2 stem to ``width``, 3x3 conv to ``2 width``, 4x4/2 convs down to
4x4, flatten) without the label inputs, with a linear head that outputs the concept directly:
its value rescaled to [-1, 1] (continuous, trained with MSE) or logits (categorical, cross
entropy). Same layers, same width, so "EBM vs regressor" compares objectives, not capacity.
It is the one supervised baseline of the reproduction: ``paper/benchmarks/user_data.py``
(the foreign fixture), ``paper/benchmarks/digits.py`` (a classifier and the reader of the
generated digits) and ``paper/benchmarks/inference.py`` (the shipped position models) all
train it with :func:`fit_regressor`.

A fair comparison gives it what the EBM had: the same training images, the same pixel-noise
augmentation (``augment_noise``: sigma ~ U(0, this) per image,
:func:`conceptebm.train.augment.augment_real`, as ``conceptebm train --augment-noise``), a
budget of updates or of CPU seconds (``iterations``, ``time_limit_s`` with ``clock="cpu"``), and
its own checkpoint selection on the validation split (``val``: the snapshot with the lowest
validation error, or the highest accuracy, is kept). ``model.record`` says what it got.

Example:
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> level = Concept.continuous("level", 1, 0.0, 1.0)
    >>> x = torch.rand(64, 1, 1, 1).expand(64, 3, 8, 8)
    >>> model = fit_regressor(x, x[:, 0, 0, :1], level, iterations=300, width=4, seed=0)
    >>> bool(regressor_metrics(model, x, x[:, 0, 0, :1])["level_mae"].value < 0.05)
    True
    >>> picked = fit_regressor(x, x[:, 0, 0, :1], level, iterations=200, width=4, seed=0,
    ...                        augment_noise=0.1, val=(x[:16], x[:16, 0, 0, :1]), eval_every=50)
    >>> picked.record["selected_on"], picked.record["best_iteration"] in (50, 100, 150, 200)
    ('validation', True)
"""

from __future__ import annotations

import copy
import time

import torch
from torch import Tensor, nn

from conceptebm.concepts import Concept
from conceptebm.evaluate.augment import add_pixel_noise
from conceptebm.evaluate.metrics import Metric, score_predictions
from conceptebm.train.augment import augment_real

__all__ = ["ConceptRegressor", "fit_regressor", "regressor_metrics", "validation_score"]


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


def _targets(y, concept: Concept) -> Tensor:
    """Raw labels as the head's targets: class indices, or values rescaled to [-1, 1]."""
    y = torch.as_tensor(y)
    if concept.is_categorical:
        return y.long()
    return (y.float().reshape(len(y), -1) - concept.low) / (concept.high - concept.low) * 2 - 1


def validation_score(model: ConceptRegressor, images: Tensor, targets) -> float:
    """Higher is better: accuracy, or minus the mean absolute error (the selection score)."""
    pred = model.predict(images)
    targets = torch.as_tensor(targets)
    if model.concept.is_categorical:
        return (pred == targets).double().mean().item()
    return -(pred - targets.reshape(pred.shape).to(pred)).abs().mean().item()


def fit_regressor(images, targets, concept: Concept, *, iterations: int | None = 3000,
                  batch_size: int = 32, lr: float = 1e-3, width: int = 16, seed: int = 0,
                  time_limit_s: float | None = None, clock: str = "wall",
                  augment_noise: float = 0.0, val: tuple | None = None,
                  eval_every: int = 250) -> ConceptRegressor:
    """Train a :class:`ConceptRegressor` on ``images (n, 3, S, S)`` and raw ``targets``.

    ``images`` may also be a dataset (``len`` and ``batch(indices) -> (images, labels)``, as
    the scene datasets, rendered as they are drawn) with ``targets`` the label's name.
    Training stops after ``iterations`` updates or ``time_limit_s`` seconds of ``clock``
    (``"wall"`` or ``"cpu"``: this process's CPU time), whichever comes first (``iterations``
    None: the time alone). ``augment_noise``: pixel noise on each training batch, as the EBM's
    ``--augment-noise``. ``val = (images, targets)``: scored every ``eval_every`` updates and
    at the end; the best snapshot is returned. ``model.record`` holds ``iterations``,
    ``seconds``, ``cpu_seconds``, ``best_iteration``, ``val_score`` and ``selected_on``.
    """
    if iterations is None and time_limit_s is None:
        raise ValueError("fit_regressor needs iterations or time_limit_s (a budget)")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    torch.manual_seed(seed)
    dataset = None if isinstance(images, Tensor) else images
    size = dataset.batch([0])[0].shape[-1] if dataset is not None else images.shape[-1]
    model = ConceptRegressor(concept, image_size=size, width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(dataset) if dataset is not None else images.shape[0]
    y = None if dataset is not None else _targets(targets, concept)
    best, best_it, best_state = -float("inf"), 0, None

    def evaluate(it: int) -> None:
        nonlocal best, best_it, best_state
        model.eval()
        score = validation_score(model, *val)
        model.train()
        if score > best:
            best, best_it, best_state = score, it, copy.deepcopy(model.state_dict())

    t0, c0 = time.time(), time.process_time()
    it = 0
    while iterations is None or it < iterations:
        idx = torch.randint(n, (batch_size,), generator=gen)
        if dataset is not None:
            xb, labels = dataset.batch(idx.tolist())
            yb = _targets(labels[targets], concept)
        else:
            xb, yb = images[idx], y[idx]
        xb = augment_real(xb, noise=augment_noise, generator=gen)  # (B, 3, S, S)
        out = model(xb)  # (B, dim)
        loss = (nn.functional.cross_entropy(out, yb) if concept.is_categorical
                else (out - yb).pow(2).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if val is not None and it % eval_every == 0:
            evaluate(it)
        spent = time.process_time() - c0 if clock == "cpu" else time.time() - t0
        if time_limit_s is not None and spent > time_limit_s:
            break
    if val is not None and it % eval_every:
        evaluate(it)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.record = {"iterations": it, "seconds": time.time() - t0,
                    "cpu_seconds": time.process_time() - c0,
                    "best_iteration": best_it if val is not None else it,
                    "val_score": best if val is not None else None,
                    "selected_on": "validation" if val is not None else "last update",
                    "augment_noise": augment_noise, "batch_size": batch_size, "lr": lr,
                    "width": width, "params": sum(p.numel() for p in model.parameters())}
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

"""MAP concept inference: ``c* = argmin_c E(x|c)`` for many observations at once.

The recipe: evaluate a grid (the
energy map), keep the best grid points of each observation as starts, refine them all at
once with Adam (projected onto the box) or LBFGS, and return each observation's best
candidate. The optimisation runs on the energy in the concept's own space: a MAP estimate
must not include the Jacobian of a change of variables (it would pull estimates toward the
centre of the box).

What is solved is a :class:`ConceptProblem`: ``B`` observations, the energy of ``R``
candidate values for each, and the default box, dimension, dtype and device.
:func:`concept_energy` makes one from a conditional energy and observed images (evaluated by
:class:`ConceptEnergy`); :func:`~conceptebm.infer.pyro.pyro_map` makes one from a Pyro model;
a plain callable passed to :func:`map_estimate` becomes one from its ``batch_size``.

Categorical concepts are inferred exactly by enumeration (:func:`map_categorical`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.infer.energy_map import (
    box_bounds,
    candidate_energies,
    concept_grid,
    energy_map,
    image_features,
)

__all__ = ["MAPResult", "CategoricalMAP", "ConceptProblem", "ConceptEnergy", "concept_energy",
           "map_estimate", "map_categorical"]

OPTIMIZERS = ("adam", "lbfgs")


class MAPResult(NamedTuple):
    """Result of :func:`map_estimate`.

    Attributes:
        c: ``(B, dim)`` best concept value per observation.
        energy: ``(B,)`` its energy.
        candidates: ``(B, R, dim)`` every refined start.
        candidate_energy: ``(B, R)`` their energies.
        starts: ``(B, R, dim)`` where the refinements started (grid points, init, random).
    """

    c: Tensor
    energy: Tensor
    candidates: Tensor
    candidate_energy: Tensor
    starts: Tensor


class CategoricalMAP(NamedTuple):
    """Result of :func:`map_categorical`: ``index (B,)``, ``names`` (B strings) and the
    ``energies (B, K)`` of every category, in ``concept.values`` order."""

    index: Tensor
    names: list[str]
    energies: Tensor


@dataclass(frozen=True, repr=False)
class ConceptProblem:
    """``B`` independent concept-inference problems: what :func:`map_estimate` solves.

    The energy of ``R`` candidate concept values for each of ``B`` observations, and what
    the optimizer needs to know about it. :func:`concept_energy` makes one from a conditional
    energy and observed images; :func:`~conceptebm.infer.pyro.pyro_map` from a Pyro model.
    A plain callable given to :func:`map_estimate` becomes one from its ``batch_size``.

    Attributes:
        energy: ``c (B, R, dim) -> (B, R)``. Candidates must not interact: the energy of a
            candidate depends on that candidate only (its gradient is taken through the sum).
        batch_size: ``B``, the number of observations.
        dim: coordinates of ``c``; ``None`` reads it from the bounds, ``init`` or ``grid``.
        bounds: the default search box, a continuous :class:`~conceptebm.concepts.Concept` or
            ``(low, high)`` (numbers or per coordinate); ``None``: ``map_estimate`` needs
            ``bounds=``.
        dtype, device: of the concept values (grid, starts and iterates).

    Example:
        >>> target = torch.tensor([[0.3, -0.5], [0.9, 1.0]])  # (B, dim)
        >>> problem = ConceptProblem(lambda c: ((c - target[:, None]) ** 2).sum(-1),
        ...                          batch_size=2, dim=2, bounds=([-1, -1], [1, 1]))
        >>> problem(torch.zeros(2, 5, 2)).shape  # (B, R)
        torch.Size([2, 5])
        >>> torch.allclose(map_estimate(problem, grid=9).c, target, atol=1e-3)
        True
    """

    energy: Callable[[Tensor], Tensor]
    batch_size: int
    dim: int | None = None
    bounds: object = None
    dtype: torch.dtype = torch.float32
    device: torch.device | str = "cpu"

    def __post_init__(self):
        if not callable(self.energy):
            raise TypeError(f"energy must be callable c (B, R, dim) -> (B, R), got "
                            f"{type(self.energy).__name__}")
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size or \
                self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (the number of "
                             f"observations), got {self.batch_size!r}")
        if self.dim is not None and (int(self.dim) != self.dim or self.dim < 1):
            raise ValueError(f"dim must be None or an integer >= 1, got {self.dim!r}")

    def __call__(self, c: Tensor) -> Tensor:
        return self.energy(c)  # (B, R)

    def __repr__(self) -> str:
        return f"{self.energy!r} ({self.batch_size} observations, dim {self.dim})"


class ConceptEnergy:
    """``c (B, R, dim) -> (B, R)``: a conditional energy ``E(x|c)`` with observations fixed.

    The one place where concept inference evaluates the conditional energy: the image
    features (:func:`~conceptebm.infer.energy_map.image_features`) are computed once per
    image, then every call reads each observation's ``R`` candidates from them
    (:func:`~conceptebm.infer.energy_map.candidate_energies`: a cheap head for a
    late-conditioned net, one batch of ``B * R`` (``* V`` with views) full passes otherwise).
    :func:`concept_energy` wraps it in the :class:`ConceptProblem` that :func:`map_estimate`
    takes.

    Attributes:
        cond_energy: the :class:`~conceptebm.energies.ConditionalEnergy` (or callable
            ``(x (N, *event), c (N, dim)) -> (N,)``).
        x: ``(B, *event)`` observations, or ``(B, V, *event)`` with ``views``.
        views: whether ``x`` holds ``V`` views per observation, whose energies add (eq. 11).
    """

    def __init__(self, cond_energy, x: Tensor, views: bool = False,
                 event_dim: int | None = None):
        lead = 1 + int(views)
        want = "(B, V, *event)" if views else "(B, *event)"
        if event_dim is not None and x.dim() != event_dim + lead:
            raise ValueError(f"x must have shape {want} with {event_dim} event dims, "
                             f"got {tuple(x.shape)}")
        if x.dim() < lead + 1:
            raise ValueError(f"x must have shape {want}, got {tuple(x.shape)}")
        self.cond_energy, self.x, self.views = cond_energy, x, bool(views)
        self._features = None

    @property
    def features(self) -> Tensor:
        """``image_features`` of the ``B (* V)`` images, computed once, on first use. Without
        a graph unless ``x`` requires grad: gradients w.r.t. ``c`` never touch the trunk."""
        if self._features is None:
            flat = self.x.reshape(-1, *self.x.shape[1 + self.views:])  # (B [* V], *event)
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.x.requires_grad):
                self._features = image_features(self.cond_energy, flat)  # (B [* V], *feat)
        return self._features

    def __call__(self, c: Tensor) -> Tensor:
        b = self.x.shape[0]
        if c.dim() != 3 or c.shape[0] != b:
            raise ValueError(f"c must have shape ({b}, R, dim) for {b} observations, "
                             f"got {tuple(c.shape)}")
        if not self.views:
            return candidate_energies(self.cond_energy, self.features, c)  # (B, R)
        v, r = self.x.shape[1], c.shape[1]
        cv = c[:, None].expand(b, v, r, c.shape[-1]).reshape(b * v, r, c.shape[-1])
        e = candidate_energies(self.cond_energy, self.features, cv)  # (B * V, R)
        return e.reshape(b, v, r).sum(1)  # eq. (11): views add their energies

    def __repr__(self) -> str:
        v = f", {self.x.shape[1]} views" if self.views else ""
        return f"concept_energy({self.cond_energy!r}, {self.x.shape[0]} observations{v})"


def concept_energy(cond_energy, x: Tensor, views: bool = False, *,
                   event_dim: int | None = None) -> ConceptProblem:
    """Turn ``E(x|c)`` and observed ``x`` into the :class:`ConceptProblem` of inferring ``c``.

    Args:
        cond_energy: a :class:`~conceptebm.energies.ConditionalEnergy` or a callable
            ``(x (N, *event), c (N, dim)) -> (N,)``.
        x: ``(B, *event)`` observations, or ``(B, V, *event)`` with ``views=True``: the energy of
            an observation is then the sum over its ``V`` views (paper eq. 11).
        event_dim: if given, checks that ``x`` has this many event dimensions.

    The problem's energy is a :class:`ConceptEnergy`: ``c (B, R, dim) -> (B, R)``, the image
    features computed once, each call evaluating the ``R`` candidates of every observation.
    Its ``bounds`` and ``dim`` are those of ``cond_energy.concept`` when it has one; its
    dtype and device those of ``x``.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> from conceptebm.energies import ConditionalEnergy
        >>> class Dist(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return ((x - c) ** 2).sum(-1)
        >>> views = torch.tensor([[[0.2, 0.0], [0.4, 0.2]]])  # (B=1, V=2, 2)
        >>> f = concept_energy(Dist(Concept.continuous("p", dim=2)), views, views=True)
        >>> f.batch_size, f.dim, f(torch.zeros(1, 3, 2)).shape  # (B, R)
        (1, 2, torch.Size([1, 3]))
        >>> map_estimate(f, grid=5, optimizer="lbfgs").c  # the views' mean
        tensor([[0.3000, 0.1000]])
    """
    energy = ConceptEnergy(cond_energy, x, views, event_dim)
    concept = getattr(cond_energy, "concept", None)
    return ConceptProblem(energy, batch_size=x.shape[0],
                          dim=concept.dim if concept is not None else None,
                          bounds=concept, dtype=x.dtype, device=x.device)


def _as_problem(energy_of_c, batch_size, init: Tensor | None,
                grid: Tensor | None) -> ConceptProblem:
    """The :class:`ConceptProblem` given, or a plain callable made into one."""
    if isinstance(energy_of_c, ConceptProblem):
        if batch_size is not None and batch_size != energy_of_c.batch_size:
            raise ValueError(f"batch_size={batch_size} disagrees with the problem's "
                             f"{energy_of_c.batch_size} observations; leave batch_size out")
        return energy_of_c
    if not callable(energy_of_c):
        raise TypeError(f"energy_of_c must be a ConceptProblem or a callable c (B, R, dim) -> "
                        f"(B, R), got {type(energy_of_c).__name__}")
    b = batch_size
    if b is None and init is not None and init.dim() >= 2:
        b = init.shape[0]
    if b is None:
        raise ValueError("cannot tell the number of observations: pass batch_size=B, an init "
                         "of shape (B, dim), or a ConceptProblem (e.g. from concept_energy())")
    # The working dtype/device: from the init or the grid.
    like = next((t for t in (init, grid) if t is not None and t.is_floating_point()),
                torch.empty(0))
    return ConceptProblem(energy_of_c, batch_size=b, dtype=like.dtype, device=like.device)


def _check_energies(e: Tensor, shape: tuple, where: str, energy_of_c) -> Tensor:
    if e.shape != shape:
        hint = " (a (B, R, 1) output? reduce the last dim)" if e.shape == (*shape, 1) else ""
        raise ValueError(f"energy_of_c {energy_of_c!r} returned shape {tuple(e.shape)} {where}; "
                         f"expected {shape} = (observations, candidates){hint}")
    if torch.isnan(e).any():
        bad = torch.isnan(e).any(-1).nonzero().flatten()[:8].tolist()
        raise FloatingPointError(f"energy_of_c returned NaN {where} for observations {bad}: "
                                 "check the energy (and the concept values it is given)")
    return e


def _grid_energies(energy_of_c, grid: Tensor, b: int, chunk_size: int,
                   progress: bool) -> Tensor:
    """Energies ``(B, G)`` of every observation at every grid point, under no_grad."""
    g = grid.shape[0]
    per_call = max(1, chunk_size // b)  # grid points per call: B * per_call pairs
    out = []
    with torch.no_grad():
        for s in tqdm(range(0, g, per_call), desc="MAP grid", disable=not progress, leave=False):
            c = grid[s:s + per_call].expand(b, -1, -1)  # (B, g, dim)
            out.append(_check_energies(energy_of_c(c), c.shape[:2], "on the grid", energy_of_c))
    return torch.cat(out, dim=1)  # (B, G)


def _starts(init, grid_e, grid, restarts, b, low, high, like, generator) -> Tensor:
    parts = []
    if grid is not None:
        if restarts > grid.shape[0]:
            raise ValueError(f"restarts={restarts} exceeds the {grid.shape[0]} grid points")
        best = torch.topk(-grid_e, restarts, dim=1).indices  # (B, restarts)
        parts.append(grid[best])  # (B, restarts, dim)
    if init is not None:
        init = torch.as_tensor(init).to(like)
        if init.dim() == 1:
            init = init.expand(b, 1, -1)
        elif init.dim() == 2:
            init = init[:, None]
        if init.dim() != 3 or init.shape[0] != b or init.shape[2] != low.numel():
            raise ValueError(f"init must have shape ({low.numel()},), ({b}, {low.numel()}) or "
                             f"({b}, R, {low.numel()}), got {tuple(init.shape)}")
        if ((init < low) | (init > high)).any() or not torch.isfinite(init).all():
            raise ValueError(f"init must lie inside bounds low={low.tolist()}, "
                             f"high={high.tolist()}; got min {init.min().item():.4g}, "
                             f"max {init.max().item():.4g}")
        parts.append(init)
    if not parts:  # neither grid nor init: uniform random starts in the box
        u = torch.rand((b, restarts, low.numel()), generator=generator, dtype=like.dtype,
                       device=generator.device if generator is not None else like.device)
        parts.append(low + (high - low) * u.to(like))
    return torch.cat(parts, dim=1)  # (B, R, dim)


def _adam(energy_of_c, starts, low, high, steps, lr, progress):
    c = starts.clone().requires_grad_(True)
    # The objective is deterministic, so little momentum is needed, and the default
    # beta1 = 0.9 rings around the minimum: on quadratic-plus-quartic wells started from a
    # 5-point grid, the worst error after 50 / 100 steps was 1e-2 / 1e-3 with beta1 = 0.9 and
    # 4e-7 / 2e-13 with beta1 = 0.5. Cosine decay to lr/100 settles the last steps.
    # The update is torch.optim.Adam's (betas (0.5, 0.999), eps 1e-8) under CosineAnnealingLR,
    # written out op for op (same numbers, bit for bit): constructing torch's optimizer imports
    # torch._dynamo, which costs every `conceptebm infer` process about 1.5 CPU seconds.
    adam = _AdamCosine(c, lr=lr, t_max=max(steps, 1))
    best_c, best_e = starts.clone(), None
    for k in tqdm(range(steps + 1), desc="MAP adam", disable=not progress, leave=False):
        last = k == steps  # the final iterate is only evaluated
        with torch.set_grad_enabled(not last):
            e = _check_energies(energy_of_c(c), c.shape[:2], "during Adam", energy_of_c)
            if not last:
                # Candidates are independent, so the sum's gradient is per candidate.
                # autograd.grad, not backward(): the network's parameter gradients stay alone.
                (grad,) = torch.autograd.grad(e.sum(), c)
        e = e.detach()
        better = e < best_e if best_e is not None else torch.ones_like(e, dtype=torch.bool)
        best_e = torch.where(better, e, best_e) if best_e is not None else e
        best_c = torch.where(better[..., None], c.detach(), best_c)
        if last:
            break
        with torch.no_grad():
            adam.step(grad)
            c.copy_(torch.maximum(torch.minimum(c, high), low))  # projection onto the box
    return best_c, best_e


class _AdamCosine:
    """Adam on one tensor with a cosine-annealed learning rate (to ``lr / 100`` at ``t_max``).

    The same arithmetic as ``torch.optim.Adam(betas=(0.5, 0.999))`` stepped by
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` (its recursive form), so results match
    bit for bit (``tests/infer/test_optimize.py`` checks it against torch's pair).
    """

    beta1, beta2, eps = 0.5, 0.999, 1e-8

    def __init__(self, param: Tensor, *, lr: float, t_max: int):
        self.param, self.lr, self.t_max = param, float(lr), t_max
        self.eta_min = self.lr / 100
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    def step(self, grad: Tensor) -> None:
        self.t += 1
        self.m.lerp_(grad, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step = float(self.t)
        correction1 = 1 - self.beta1 ** step
        correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
        denom = (self.v.sqrt() / correction2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-(self.lr / correction1))
        # the scheduler's recursive cosine step, taken after the optimizer's
        k, t_max = self.t, self.t_max
        self.lr = ((1 + math.cos(math.pi * k / t_max)) / (1 + math.cos(math.pi * (k - 1) / t_max))
                   * (self.lr - self.eta_min) + self.eta_min)


def _lbfgs(energy_of_c, starts, low, high, steps, lr, progress):
    # LBFGS has no bounds, so it minimises the box problem extended to all of R^dim:
    #   F(c) = E(proj(c)) + 0.5 * |(c - proj(c)) / width|^2,
    # which equals E inside the box and is larger than E(proj(c)) outside, so its minimisers
    # are exactly the box-constrained minimisers (no reparameterisation, no Jacobian). A
    # minimum on a face is a kink of F; the answer is reported at proj(c), exactly on the face.
    # (A sigmoid reparameterisation would have vanishing gradients at grid points on faces.)
    width = high - low
    c = starts.clone().requires_grad_(True)  # (B, R, dim)
    opt = torch.optim.LBFGS([c], lr=lr, max_iter=max(steps, 1), line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20)
    best = {"c": starts.clone(), "e": None}
    bar = tqdm(total=steps, desc="MAP lbfgs", disable=not progress, leave=False)

    def closure():
        p = torch.maximum(torch.minimum(c, high), low)  # proj(c)
        e = _check_energies(energy_of_c(p), c.shape[:2], "during LBFGS", energy_of_c)
        ed = e.detach()
        better = ed < best["e"] if best["e"] is not None else torch.ones_like(ed, dtype=bool)
        best["e"] = ed if best["e"] is None else torch.where(better, ed, best["e"])
        best["c"] = torch.where(better[..., None], p.detach(), best["c"])
        loss = e.sum() + 0.5 * (((c - p) / width) ** 2).sum()
        (c.grad,) = torch.autograd.grad(loss, c)  # leaves the network's parameters alone
        loss = loss.detach()
        bar.update(1)
        return loss

    with torch.enable_grad():
        if steps > 0:
            opt.step(closure)
        else:
            closure()
    bar.close()
    return best["c"], best["e"]


def map_estimate(energy_of_c, *, bounds=None, init=None, grid=None, restarts: int = 1,
                 optimizer: str = "adam", steps: int = 100, lr: float | None = None,
                 batch_size: int | None = None, chunk_size: int = 4096,
                 generator: torch.Generator | None = None, progress: bool = False) -> MAPResult:
    """Per-observation MAP ``argmin_c E(c)`` inside a box, batched over observations.

    Args:
        energy_of_c: a :class:`ConceptProblem` (e.g. :func:`concept_energy` of a conditional
            energy and images), or a plain callable ``c (B, R, dim) -> (B, R)`` (B
            observations with R candidates each; then pass ``batch_size`` or a ``(B, dim)``
            init, and ``bounds``). Candidates must not interact (energies of one candidate
            depend on that candidate only).
        bounds: the box, a continuous Concept or ``(low, high)`` (numbers or per-coordinate);
            defaults to the problem's ``bounds`` (for :func:`concept_energy`, the concept's
            range).
        init: starts ``(dim,)`` (shared), ``(B, dim)`` or ``(B, R0, dim)``, inside the box.
        grid: grid initialisation: points per coordinate (int, a :func:`concept_grid`) or a
            ``(G, dim)`` tensor. The ``restarts`` best grid points of each observation become
            starts (``init`` is added to them). Without grid and init, ``restarts`` starts are
            drawn uniformly in the box with ``generator``.
        optimizer: ``"adam"`` (projected onto the box after every step, cosine-decayed lr,
            candidates fully independent) or ``"lbfgs"`` (strong-Wolfe line search on the
            box problem extended by projection; all candidates share one line search and
            history, so run it to convergence, and prefer Adam for large rough batches).
        steps: Adam steps or LBFGS iterations; 0 returns the best start (pure grid search).
        lr: Adam learning rate (default 0.05, suited to concepts of range ~1; Adam moves about
            ``lr`` per step, so far starts need more steps: use a grid) or LBFGS initial step
            (default 1).
        batch_size: number of observations B, for a plain callable; read from ``init`` when
            not given (a :class:`ConceptProblem` carries its own).
        chunk_size: at most ``max(B, chunk_size)`` (observation, grid point) pairs per energy call
            while evaluating the grid.

    Returns:
        :class:`MAPResult` with ``c (B, dim)``, ``energy (B,)`` and every candidate. Each
        candidate's result is the best iterate it visited, so never worse than its start.

    Example:
        >>> target = torch.tensor([[0.3, -0.5], [0.9, 1.0]])  # (B, dim); 2nd at the boundary
        >>> f = lambda c: ((c - target[:, None]) ** 2).sum(-1)  # (B, R, 2) -> (B, R)
        >>> r = map_estimate(f, bounds=([-1, -1], [1, 1]), grid=9, batch_size=2)
        >>> torch.allclose(r.c, target, atol=1e-3)
        True
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps}")
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
    lr = (0.05 if optimizer == "adam" else 1.0) if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    init_t = init if init is None or isinstance(init, Tensor) else torch.as_tensor(init)
    grid_t = grid if isinstance(grid, Tensor) else None
    problem = _as_problem(energy_of_c, batch_size, init_t, grid_t)
    like = torch.empty(0, dtype=problem.dtype, device=problem.device)
    if bounds is None:
        bounds = problem.bounds
        if bounds is None:
            raise ValueError("bounds are required: (low, high) or a continuous Concept")
    dim = problem.dim
    for t in (init_t, grid_t):
        if dim is None and isinstance(t, Tensor) and t.dim() >= 1:
            dim = t.shape[-1]
    low, high = box_bounds(bounds, dim, dtype=like.dtype, device=like.device)
    b = problem.batch_size

    grid_e = None
    if grid is not None:
        if not isinstance(grid, Tensor):
            grid = concept_grid((low, high), grid, dim=low.numel())
        grid = grid.to(like)
        if grid.dim() != 2 or grid.shape[1] != low.numel():
            raise ValueError(f"grid must have shape (G, {low.numel()}), got {tuple(grid.shape)}")
        if ((grid < low) | (grid > high)).any():
            raise ValueError("grid points must lie inside the bounds")
        grid_e = _grid_energies(problem, grid, b, int(chunk_size), progress)

    starts = _starts(init_t, grid_e, grid, int(restarts), b, low, high, like, generator)
    refine = _adam if optimizer == "adam" else _lbfgs
    cand, cand_e = refine(problem, starts, low, high, int(steps), lr, progress)
    best = cand_e.argmin(dim=1)  # (B,)
    rows = torch.arange(b, device=best.device)
    return MAPResult(cand[rows, best], cand_e[rows, best], cand, cand_e, starts)


def map_categorical(cond_energy, x: Tensor, *, views: bool = False, event_dim: int = 3,
                    chunk_size: int = 4096) -> CategoricalMAP:
    """MAP of a categorical concept by enumeration: ``argmin_k E(x | one_hot(k))``.

    Args:
        cond_energy: a ConditionalEnergy over a categorical :class:`~conceptebm.concepts.Concept`.
        x: ``(B, *event)`` or, with ``views=True``, ``(B, V, *event)`` (energies summed over
            views); a single observation without the batch dimension also works.

    Exact (no optimisation): every category is evaluated, in ``chunk_size`` pieces.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> from conceptebm.energies import ConditionalEnergy
        >>> class Match(ConditionalEnergy):
        ...     def energy(self, x, c):
        ...         return -(x * c).sum(-1)
        >>> color = Match(Concept.categorical("color", ["red", "green", "blue"]))
        >>> map_categorical(color, torch.tensor([[0.1, 0.9, 0.2]]), event_dim=1).names
        ['green']
    """
    concept = getattr(cond_energy, "concept", None)
    if concept is None or not concept.is_categorical:
        raise ValueError(f"map_categorical needs a ConditionalEnergy over a categorical concept,"
                         f" got {cond_energy!r}; use map_estimate for continuous concepts")
    grid = concept_grid(concept, dtype=x.dtype, device=x.device)  # (K, K) one-hots
    e = energy_map(cond_energy, x, grid, chunk_size=chunk_size, event_dim=event_dim,
                   views=views)
    e = e if e.dim() == 2 else e[None]  # (B, K)
    index = e.argmin(dim=1)
    return CategoricalMAP(index, [concept.values[i] for i in index.tolist()], e)

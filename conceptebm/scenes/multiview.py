"""Multi-view concept estimation (paper eq. 11) as a Pyro model, with posterior intervals.

Several images ``x_1..x_V`` of one object position, taken with different cameras, sizes,
shapes and lighting, share one concept value ``c``:

    p(c | x_1..x_V)  ∝  p(c) * exp(-sum_v E(x_v | c))          (eq. 11, flat prior on the box)

:func:`multiview_model` writes that as a Pyro model: one latent ``c`` with a ``Uniform`` prior
on the concept's box and one energy factor per view inside a ``views`` plate. Its MAP is
:func:`~conceptebm.scenes.inference.infer_concept` with ``views=True`` (the energy in the
concept's own space, no Jacobian); :func:`multiview_posterior` runs Pyro's NUTS on it,
started at that MAP, and reports equal-tailed credible intervals; :func:`grid_posterior` is
the exact posterior of a low-dimensional concept on a grid, to check NUTS against and to
measure calibration cheaply; :func:`fit_temperature` finds the temperature that makes its
intervals cover held-out truths at their nominal rate.

A ``temperature`` T divides every energy (``poutine.scale(1/T)`` around the factors only):
an EBM trained by contrastive divergence has no reason to have a likelihood's scale, so its
intervals may be too narrow or too wide; T is the one knob that recalibrates them.

Example (an analytic stand-in whose "views" are noisy 2-D readings of the position):
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Reading(ConditionalEnergy):
    ...     def energy(self, x, c):
    ...         return ((x - c) ** 2).sum(-1) / (2 * 0.1 ** 2)
    >>> model = Reading(Concept.continuous("position", dim=2))
    >>> views = torch.tensor([[0.30, -0.20], [0.40, -0.10]])    # (V, 2)
    >>> post = multiview_posterior(model, views, num_samples=200, warmup_steps=100, seed=0,
    ...                            check_range=False, event_dim=1)
    >>> [round(v, 2) for v in post.map.tolist()]  # the views' mean
    [0.35, -0.15]
    >>> bool((post.interval[0] < post.map).all() and (post.map < post.interval[1]).all())
    True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor

from conceptebm.evaluate.posterior import chain_stats
from conceptebm.infer.chain import mala
from conceptebm.infer.energy_map import concept_grid, energy_map
from conceptebm.infer.optimize import concept_energy
from conceptebm.infer.posterior_grid import (
    REFINE_DELTA,
    GridPosterior,
    check_level,
    check_temperature,
    fit_temperature,
    grid_posterior_of,
    interval_coverage,
    regrid_temperature,
)
from conceptebm.infer.pyro import energy_factor
from conceptebm.infer.pyro.inference import nuts_posterior
from conceptebm.infer.settings import MAP_CHUNK
from conceptebm.scenes.inference import check_images, concept_of, infer_concept

__all__ = ["Posterior", "GridPosterior", "multiview_model", "multiview_posterior",
           "multiview_posteriors", "posterior_temperature", "coordinate_names",
           "grid_posterior", "regrid_temperature", "equal_tailed_interval",
           "interval_coverage", "fit_temperature"]


class Posterior(NamedTuple):
    """Result of :func:`multiview_posterior` (one multi-view set, several chains).

    Attributes:
        samples: ``(chains * S, dim)`` every chain's draws after warm-up, chain after chain.
        mean: ``(dim,)`` posterior mean.
        interval: ``(2, dim)`` equal-tailed ``level`` credible interval (low row, high row).
        map: ``(dim,)`` the MAP the chains started around.
        level: the interval's probability (0.9 = 5%..95% quantiles).
        ess: ``(dim,)`` bulk effective sample size of each coordinate over all chains
            (ArviZ's; Pyro's multi-chain ESS where ArviZ is not installed).
        mcmc: the last chain's ``pyro.infer.MCMC`` for ``sampler="nuts"``, else ``None``.
        draws: ``(chains, S, dim)`` the draws by chain.
        stats: per-draw sampler statistics ``{name: (chains, S)}`` (ArviZ's names):
            ``energy`` (the model's summed energy at the draw, before the temperature),
            ``lp`` (``-energy / T``), ``acceptance_rate``, ``step_size``, and ``accepted``
            (MALA) or ``diverging`` and ``tree_depth`` (NUTS).
        diagnostics: per coordinate ``rhat`` (rank-normalised split R-hat), ``ess_bulk``,
            ``ess_tail``, ``mcse_mean``, ``mcse_sd`` (ArviZ's own; ``source`` says whose),
            and ``divergences`` (NUTS).
        warnings: one line per coordinate whose R-hat > 1.01 or ESS < 100 (and divergences).
        sampler: ``"mala"`` or ``"nuts"``; temperature: the ``T`` of ``exp(-E / T)``.
        concept: the :class:`~conceptebm.concepts.Concept`; observed: what was observed
            (image paths or view indices), for :meth:`to_arviz`.
    """

    samples: Tensor
    mean: Tensor
    interval: Tensor
    map: Tensor
    level: float
    ess: Tensor
    mcmc: object
    draws: Tensor | None = None
    stats: dict | None = None
    diagnostics: dict | None = None
    warnings: tuple = ()
    sampler: str = "nuts"
    temperature: float = 1.0
    concept: object = None
    observed: tuple | None = None

    @property
    def coords(self) -> list[str]:
        """Names of the concept's coordinates (``x``, ``y``, ``z``; numbers beyond 3)."""
        return coordinate_names(self.samples.shape[-1])

    def to_arviz(self):
        """The draws as an ``arviz.InferenceData``: ``posterior`` (the concept, dims
        ``chain, draw, {name}_dim``), ``sample_stats`` and ``observed_data`` (the images).
        Raises :class:`~conceptebm.evaluate.posterior.ArvizMissing` (one line) without
        arviz. Save with ``.to_netcdf(path)``; read with ``arviz.from_netcdf``."""
        from conceptebm.evaluate.posterior import to_inference_data

        name = self.concept.name if self.concept is not None else "c"
        draws = self.draws if self.draws is not None else self.samples[None]
        attrs = {"sampler": self.sampler, "temperature": float(self.temperature),
                 "level": float(self.level), "map": self.map.tolist()}
        return to_inference_data(draws, name, coords=self.coords, sample_stats=self.stats,
                                 observed=self.observed, attrs=attrs)

    def report(self) -> dict:
        """The JSON-able summary the CLI prints: mean, interval, diagnostics, warnings
        (``samples``: draws per chain)."""
        draws = self.draws if self.draws is not None else self.samples[None]
        return {"mean": self.mean.tolist(), "level": self.level,
                "interval": self.interval.tolist(), "ess": self.ess.tolist(),
                "samples": int(draws.shape[1]), "chains": int(draws.shape[0]),
                "sampler": self.sampler, "temperature": float(self.temperature),
                "diagnostics": self.diagnostics, "warnings": list(self.warnings)}


def _check_views(model, views: Tensor, check_range: bool, event_dim: int) -> Tensor:
    if isinstance(views, Tensor) and views.dim() == event_dim + 2:
        raise ValueError(f"views must be one multi-view set (V, *event), got "
                         f"{tuple(views.shape)}; call once per set (views[i])")
    check_images(views[None] if isinstance(views, Tensor) else views, model, views=True,
                 check_range=check_range, event_dim=event_dim)
    return views


_check_level, _check_temperature = check_level, check_temperature


def multiview_model(model, views: Tensor, *, temperature: float = 1.0,
                    check_range: bool = True, event_dim: int = 3):
    """The Pyro model of eq. 11 for one multi-view set: latent ``model.concept.name``.

    Args:
        model: a :class:`~conceptebm.energies.ConditionalEnergy` over a continuous concept.
        views: ``(V, C, H, W)`` images of one concept value (or ``(V, *event)`` data for
            non-image energies, with ``event_dim`` and ``check_range=False``).
        temperature: energies are divided by it (see the module docstring).

    Returns a function of no arguments: ``c ~ Uniform(low, high)`` (a ``(dim,)`` vector),
    then ``pyro.factor(-E(x_v | c) / T)`` for each view inside ``pyro.plate("views", V)``.
    """
    concept = concept_of(model)
    if concept.is_categorical:
        raise ValueError(f"multiview_model needs a continuous concept, got the categorical "
                         f"{concept.name!r}; infer it by enumeration "
                         "(infer_concept(model, views[None], views=True))")
    views = _check_views(model, views, check_range, event_dim)
    t = _check_temperature(temperature)
    low = torch.full((concept.dim,), concept.low, dtype=views.dtype, device=views.device)
    high = torch.full((concept.dim,), concept.high, dtype=views.dtype, device=views.device)

    # The views are fixed: their image features are computed once here, and every potential
    # evaluation (NUTS takes hundreds) runs only the concept-dependent head on them. For an
    # early-conditioned net the features are the views themselves (the full pass, as before).
    with torch.no_grad():
        feats = model.features(views)  # (V, *feat)
    head = model.on_features()

    def pyro_model():
        c = pyro.sample(concept.name, dist.Uniform(low, high).to_event(1))  # (dim,)
        with pyro.plate("views", views.shape[0]), poutine.scale(scale=1.0 / t):
            energy_factor("view_energy", head, feats, c, event_dim=feats.dim() - 1)  # (V,)

    pyro_model.concept = concept
    return pyro_model


def equal_tailed_interval(samples: Tensor, level: float = 0.9) -> Tensor:
    """``(2, dim)`` quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of ``(S, dim)``."""
    level = _check_level(level)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype,
                     device=samples.device)
    return torch.quantile(samples, q, dim=0)


SAMPLERS = ("mala", "nuts")


def coordinate_names(dim: int) -> list[str]:
    """``x``, ``y``, ``z`` for a concept of up to 3 coordinates, else ``0 .. dim - 1``."""
    return list("xyz"[:dim]) if dim <= 3 else [str(i) for i in range(dim)]


def posterior_temperature(model, views: int | None = None, default: float = 1.0) -> float:
    """The posterior temperature stored in the model's record, else ``default``.

    ``"posterior_temperature"`` was fitted on the model's validation images
    (:mod:`conceptebm.scenes.temperature`); a model fitted at several counts of views
    (``posterior_calibration["by_views"]``) gives, for ``views`` images, the temperature of
    the nearest fitted count (on a log scale: 3 views take 2's or 4's)."""
    record = getattr(model, "record", None) or {}
    t = record.get("posterior_temperature")
    by_views = (record.get("posterior_calibration") or {}).get("by_views")
    if views is not None and by_views:
        counts = sorted(int(k) for k in by_views)
        near = min(counts, key=lambda k: (abs(math.log(k) - math.log(views)), k))
        t = by_views[str(near)]
    return float(t) if t is not None else float(default)


def _diagnostics(draws: Tensor, name: str) -> tuple[dict, Tensor]:
    """ArviZ's diagnostics of ``draws (chains, S, dim)``; Pyro's split R-hat and ESS (no
    tail ESS or MCSE) where ArviZ is missing. Returns ``(diagnostics, bulk ESS (dim,))``."""
    from conceptebm.evaluate.posterior import ArvizMissing, diagnose, to_inference_data

    coords = coordinate_names(draws.shape[-1])
    try:
        d = diagnose(to_inference_data(draws, name, coords=coords), name)
        d["source"] = f"arviz {d.pop('arviz')}"
    except ArvizMissing:
        from pyro.ops.stats import effective_sample_size, split_gelman_rubin

        x = draws.double()
        ess = effective_sample_size(x, chain_dim=0, sample_dim=1)
        rhat = split_gelman_rubin(x, chain_dim=0, sample_dim=1) if x.shape[1] >= 4 else \
            torch.full_like(ess, float("nan"))
        nan = [float("nan")] * draws.shape[-1]
        d = {"rhat": rhat.tolist(), "ess_bulk": ess.tolist(), "ess_tail": nan,
             "mcse_mean": nan, "mcse_sd": nan, "chains": int(draws.shape[0]),
             "draws": int(draws.shape[1]),
             "source": "pyro (pip install 'conceptebm[posterior]' for ArviZ's)"}
    ess = torch.nan_to_num(torch.tensor(d["ess_bulk"], dtype=torch.float64), nan=1.0)
    return d, ess  # a chain that never moved: one effective sample


STARTS = ("map", "grid")


def _starts(model, sets: Tensor, init: Tensor, chains: int, t: float, how: str,
            spread: float, concept, generator, event_dim: int) -> Tensor:
    """``(B, chains, dim)`` starting points; chain 0 at the MAP ``init (B, dim)``.

    ``how="map"``: the others at ``N(0, spread)`` around the MAP (concept units), inside its
    basin: R-hat then checks the chains' mixing within that basin. ``how="grid"``: the others
    drawn from the posterior at ``spread`` times the temperature on a coarse grid (17 points
    a coordinate), each jittered within its cell: over-dispersed, so chains that end in
    different basins are flagged; a narrow basin between grid points is missed by the coarse
    grid, and a chain started in a spurious basin of a learned energy stays there (flagged).
    """
    b, d = init.shape
    eps = 1e-3 * (concept.high - concept.low)
    if chains == 1:
        return init[:, None]
    if how == "map" or d > 3:
        noise = torch.randn(b, chains, d, generator=generator, dtype=init.dtype) * spread
        noise[:, 0] = 0
        return (init[:, None] + noise.to(init.device)).clamp(concept.low + eps,
                                                             concept.high - eps)
    n = {1: 101, 2: 17, 3: 9}[d]
    grid = concept_grid(concept, n, dtype=sets.dtype, device=sets.device)  # (G, d)
    with torch.no_grad():
        e = energy_map(model, sets, grid, views=True, event_dim=event_dim)  # (B, G)
    probs = torch.softmax(-e.double() / (spread * t), dim=-1).cpu()
    pick = torch.multinomial(probs, chains - 1, replacement=True, generator=generator)
    cell = (concept.high - concept.low) / (n - 1)
    jitter = (torch.rand(b, chains - 1, d, generator=generator, dtype=init.dtype) - 0.5) * cell
    others = grid[pick.to(grid.device)] + jitter.to(grid.device)  # (B, chains - 1, d)
    return torch.cat([init[:, None], others], dim=1).clamp(concept.low + eps,
                                                           concept.high - eps)


def _summary(model_name, draws, stats, init, level, sampler, t, concept, observed,
             mcmc=None) -> Posterior:
    from conceptebm.evaluate.posterior import diagnostic_warnings

    samples = draws.reshape(-1, draws.shape[-1])
    diag, ess = _diagnostics(draws, model_name)
    lines = diagnostic_warnings(diag, coordinate_names(draws.shape[-1]),
                                what=f"{model_name} ")
    if "diverging" in stats:
        n = int(stats["diverging"].sum())
        diag["divergences"] = n
        if n:
            lines.append(f"{model_name}: {n} divergent NUTS transitions: the posterior has "
                         "regions NUTS cannot follow at its step size")
    return Posterior(samples, samples.mean(0), equal_tailed_interval(samples, level),
                     init.reshape(-1).detach(), level, ess, mcmc, draws, stats, diag,
                     tuple(lines), sampler, t, concept, observed)


def multiview_posteriors(model, sets: Tensor, *, num_samples: int = 1000,
                         warmup_steps: int = 500, chains: int = 4, level: float = 0.9,
                         init: Tensor | None = None, temperature: float | None = None,
                         sampler: str = "mala", seed: int | None = None,
                         starts: str = "map", init_spread: float | None = None,
                         map_kwargs: dict | None = None,
                         observed: list | None = None, check_range: bool = True,
                         event_dim: int = 3, progress: bool = False,
                         **nuts_kwargs) -> list[Posterior]:
    """Posteriors of ``B`` multi-view sets ``(B, V, *event)``, ``chains`` chains each.

    ``sampler="mala"`` (default): the engine's Metropolis-adjusted Langevin
    (:func:`~conceptebm.infer.mala`) with every chain of every set in one ``(B * chains, dim)``
    tensor, one network call per step for all of them, and per-chain step sizes adapted
    during ``warmup_steps`` (then frozen: exact MCMC), restricted to the concept's box (the
    flat prior). ``sampler="nuts"``: Pyro's NUTS, one chain after the other (Pyro runs
    several chains only as separate processes, and NUTS trajectories differ in length per
    chain, so they do not share one tensor), with divergences and tree depths.

    Chain 0 starts at the MAP (``init``, default :func:`infer_concept`). ``starts="map"``
    (default): the others at ``N(0, init_spread)`` around it (default 0.02 of the half-box,
    about a calibrated posterior's sd), so R-hat and ESS check mixing within the MAP's basin;
    other basins are the energy map's or :func:`grid_posterior`'s to show. ``starts="grid"``:
    over-dispersed starts drawn from a coarse grid posterior at ``init_spread`` (default 4)
    times the temperature: chains that end in different basins are flagged (and a learned
    energy's spurious basins hold the chains started in them: flagged too).
    ``temperature=None`` uses the model's :func:`posterior_temperature`. ``observed``: one
    list of names per set (image paths), for ``observed_data``; default the view indices.
    """
    level = _check_level(level)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    for what, v, least in (("num_samples", num_samples, 1), ("warmup_steps", warmup_steps, 0),
                           ("chains", chains, 1)):
        if isinstance(v, bool) or int(v) != v or v < least:
            raise ValueError(f"{what} must be an integer >= {least}, got {v!r}")
    t = _check_temperature(posterior_temperature(model, views=sets.shape[1])
                           if temperature is None else temperature)
    concept = concept_of(model)
    if concept.is_categorical:
        raise ValueError(f"multiview_posteriors needs a continuous concept, got the "
                         f"categorical {concept.name!r}")
    check_images(sets, model, views=True, check_range=check_range, event_dim=event_dim)
    b, v = sets.shape[0], sets.shape[1]
    if init is None:
        init = infer_concept(model, sets, views=True, check_range=check_range,
                             event_dim=event_dim, **(map_kwargs or {})).value  # (B, dim)
    init = torch.as_tensor(init).to(sets).reshape(b, -1)
    concept.check_range(init)
    observed = observed or [list(range(v))] * b
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if starts not in STARTS:
        raise ValueError(f"starts must be one of {STARTS}, got {starts!r}")
    spread = float(init_spread if init_spread is not None else
                   (0.02 * (concept.high - concept.low) / 2 if starts == "map" else 4.0))
    x0 = _starts(model, sets, init, int(chains), t, starts, spread, concept, gen,
                 event_dim)  # (B, C, dim)
    problem = concept_energy(model, sets, views=True)
    n, d = int(num_samples), concept.dim
    out = []
    if sampler == "mala":
        def energy(x):  # (B * C, dim) -> (B * C,): every chain of every set in one call
            return problem(x.reshape(b, chains, d)).reshape(-1) / t

        _, res = mala(energy, x0.reshape(b * chains, d), num_steps=warmup_steps + n,
                      step_size=1e-3 * (concept.high - concept.low) ** 2,
                      bounds=(concept.low, concept.high), boundary="reject",
                      adapt_steps=warmup_steps, generator=gen, progress=progress,
                      return_trace=True)
        traj = res.trajectory[warmup_steps:].detach()  # (S, B * C, dim)
        draws = traj.reshape(n, b, chains, d).permute(1, 2, 0, 3)  # (B, C, S, dim)
        stats = chain_stats(res, warmup_steps)  # (B * C, S) each
        stats["energy"] = stats["energy"] * t
        for i in range(b):
            s_i = {k: x.reshape(b, chains, n)[i].detach() for k, x in stats.items()}
            out.append(_summary(concept.name, draws[i], s_i, init[i], level, "mala", t,
                                concept, tuple(observed[i])))
        return out
    for i in range(b):
        pyro_model = multiview_model(model, sets[i], temperature=t, check_range=check_range,
                                     event_dim=event_dim)
        per_chain, kept = [], {k: [] for k in ("acceptance_rate", "step_size", "diverging",
                                                "tree_depth")}
        for c in range(int(chains)):
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(int(seed) + 1000 * i + c)
                mcmc = nuts_posterior(pyro_model, num_samples=n, warmup_steps=warmup_steps,
                                      init={concept.name: _inside_box(x0[i, c], concept)},
                                      progress=progress, **nuts_kwargs)
            per_chain.append(mcmc.get_samples()[concept.name].detach())  # (S, dim)
            for k in kept:
                kept[k].append(torch.tensor(mcmc.kernel.stats[k][warmup_steps:]))
        draws = torch.stack(per_chain)  # (C, S, dim)
        stats = {k: torch.stack(x) for k, x in kept.items()}
        with torch.no_grad():  # the model's energy at every draw, one call
            e = concept_energy(model, sets[i:i + 1], views=True)(
                draws.reshape(1, -1, d))[0].reshape(chains, n)
        stats["energy"], stats["lp"] = e, -e / t
        out.append(_summary(concept.name, draws, stats, init[i], level, "nuts", t, concept,
                            tuple(observed[i]), mcmc))
    return out


def _inside_box(c: Tensor, concept) -> Tensor:
    eps = 1e-6 * (concept.high - concept.low)
    return c.clamp(concept.low + eps, concept.high - eps)


def multiview_posterior(model, views: Tensor, *, num_samples: int = 1000,
                        warmup_steps: int = 500, level: float = 0.9, init: Tensor | None = None,
                        temperature: float | None = None, seed: int | None = None,
                        map_kwargs: dict | None = None, check_range: bool = True,
                        event_dim: int = 3, progress: bool = False, chains: int = 4,
                        sampler: str = "mala", starts: str = "map",
                        init_spread: float | None = None,
                        observed: list | None = None, **nuts_kwargs) -> Posterior:
    """Posterior of the shared concept of one multi-view set, ``chains`` chains (default 4)
    started around its MAP; :func:`multiview_posteriors` for the samplers and many sets.

    Args:
        views: ``(V, C, H, W)``: one set (many sets: :func:`multiview_posteriors`, batched).
        init: the MAP ``(dim,)``; default from
            :func:`~conceptebm.scenes.inference.infer_concept` (``map_kwargs`` go there).
        temperature: ``T`` of ``exp(-E / T)``; ``None``: the model's record
            (:func:`posterior_temperature`), else 1.
        seed: seeds the starts and the chains (a seeded call leaves torch's global random
            stream untouched).
        sampler: ``"mala"`` (the engine's, chains batched) or ``"nuts"`` (Pyro's NUTS; then
            ``nuts_kwargs`` go to ``pyro.infer.NUTS``: ``target_accept_prob``,
            ``max_tree_depth``, ...).

    The result's ``diagnostics`` (R-hat, bulk / tail ESS, MCSE: ArviZ's) and ``warnings``
    say whether the chains can be trusted; :meth:`Posterior.to_arviz` gives ArviZ data. No
    chain crosses between well separated modes: a multimodal posterior needs the grid
    (:func:`grid_posterior`) or the energy map.
    """
    views = _check_views(model, views, check_range, event_dim)
    if init is not None:
        init = torch.as_tensor(init).to(views).reshape(1, -1)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return multiview_posteriors(
            model, views[None], num_samples=num_samples, warmup_steps=warmup_steps,
            chains=chains, level=level, init=init, temperature=temperature, sampler=sampler,
            seed=seed, starts=starts, init_spread=init_spread, map_kwargs=map_kwargs,
            observed=None if observed is None else [list(observed)], check_range=check_range,
            event_dim=event_dim, progress=progress, **nuts_kwargs)[0]


def grid_posterior(model, views: Tensor, points: int = 64, *, level: float = 0.9,
                   temperature: float | None = None, refine: int = 1,
                   refine_temperature: float | None = None,
                   refine_delta: float = REFINE_DELTA, chunk_size: int = MAP_CHUNK,
                   check_range: bool = True, event_dim: int = 3,
                   progress: bool = False) -> GridPosterior:
    """The exact posterior of eq. 11 on a grid, for ``B`` multi-view sets at once.

    Args:
        views: ``(B, V, C, H, W)`` (or ``(B, V, *event)`` for non-image energies).
        points: grid points per coordinate (``points ** dim`` energies per view: keep
            ``dim <= 3``).
        temperature: ``T`` of ``exp(-E / T)``; ``None``: the model's fitted one for this
            count of views (:func:`posterior_temperature`), else 1.
        refine: ``k > 1`` refines the cells that hold the mass ``k`` times a coordinate
            (:func:`~conceptebm.infer.posterior_grid.refine_grid`; where the mass lies at
            ``refine_temperature``, default ``temperature``): a sharp posterior's
            intervals then follow its energy rather than the coarse cells.

    Intervals are equal-tailed quantiles of each coordinate's marginal, interpolated within
    grid cells (:func:`~conceptebm.infer.posterior_grid.marginal_quantile`). The math is the
    engine's :func:`~conceptebm.infer.posterior_grid.grid_posterior_of`; this adds the image
    checks and the record's temperature.
    """
    concept = concept_of(model)
    if concept.is_categorical or concept.dim > 3:
        raise ValueError(f"grid_posterior needs a continuous concept of dim <= 3, got "
                         f"{concept.name!r} ({concept.kind}, dim {concept.dim})")
    if temperature is None:
        temperature = posterior_temperature(model, views=views.shape[1])
    level, t = _check_level(level), _check_temperature(temperature)
    check_images(views, model, views=True, check_range=check_range, event_dim=event_dim)
    return grid_posterior_of(model, views, points, level=level, temperature=t, refine=refine,
                             refine_temperature=refine_temperature,
                             refine_delta=refine_delta, chunk_size=chunk_size,
                             event_dim=event_dim, progress=progress)

"""Posterior draws as ArviZ data, and ArviZ's own convergence diagnostics.

Several chains of one posterior (``draws (chains, draws, dim)``, with per-draw sampler
statistics) become an ``arviz.InferenceData`` (:func:`to_inference_data`): a ``posterior``
group whose variable is the concept, with a named coordinate dimension (``position_dim``:
``x``, ``y``), ``sample_stats`` (``energy``, ``lp``, ``acceptance_rate``, ``step_size``,
``diverging``, ``tree_depth`` where the sampler has them) and ``observed_data`` (the image
paths or indices). :func:`diagnose` reads split R-hat (rank-normalised), bulk and tail ESS
and the MCSE of the mean and of the standard deviation from ArviZ itself, one value per
coordinate; :func:`diagnostic_warnings` names any coordinate with R-hat above 1.01 or an
ESS below 100 (the thresholds of Vehtari et al. 2021). :func:`chain_to_arviz` does the same
for a chain of the engine (:func:`~conceptebm.infer.mala` with ``return_trace=True``).

ArviZ is an optional dependency (``pip install 'conceptebm[posterior]'``); without it these
functions raise :class:`ArvizMissing`, one line saying how to install it. ``sample_stats``'s
``energy`` is the target's potential energy ``E(x | c) / T`` at each draw (what the EBM
reads), not a Hamiltonian: ``arviz.bfmi`` does not apply to it.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> draws = torch.randn(4, 500, 2, generator=g)            # 4 chains of iid draws
    >>> idata = to_inference_data(draws, "position", coords=["x", "y"])
    >>> dict(idata.posterior["position"].sizes)
    {'chain': 4, 'draw': 500, 'position_dim': 2}
    >>> d = diagnose(idata, "position")
    >>> bool(max(d["rhat"]) < 1.01), bool(min(d["ess_bulk"]) > 1000)
    (True, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArvizMissing", "require_arviz", "to_inference_data", "diagnose",
           "diagnostic_warnings", "chain_stats", "chain_to_arviz", "map_to_arviz", "RHAT_MAX",
           "ESS_MIN",
           "INSTALL_HINT"]

#: A coordinate is flagged above this split R-hat, or below ``ESS_MIN`` bulk or tail ESS.
RHAT_MAX = 1.01
ESS_MIN = 100
INSTALL_HINT = ("ArviZ output needs the optional package arviz: pip install "
                "'conceptebm[posterior]' (or pip install 'arviz>=0.17,<0.24')")


class ArvizMissing(ImportError):
    """ArviZ is not installed; the message is one line saying how to install it."""


def require_arviz():
    """Import and return ``arviz``, or raise :class:`ArvizMissing` (one line)."""
    try:
        with warnings.catch_warnings():  # 0.23 warns on import of its coming refactor
            warnings.simplefilter("ignore", FutureWarning)
            import arviz
    except ImportError as err:
        raise ArvizMissing(INSTALL_HINT) from err
    return arviz


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)


def to_inference_data(draws: Tensor, name: str, *, coords: Sequence[str] | None = None,
                      sample_stats: dict | None = None, observed: Sequence | None = None,
                      observed_dim: str = "image", warmup_draws: Tensor | None = None,
                      attrs: dict | None = None):
    """``arviz.InferenceData`` of ``draws (chains, draws, dim)`` of a concept ``name``.

    Args:
        coords: names of the ``dim`` coordinates (default ``0..dim-1``); the dimension is
            ``{name}_dim``.
        sample_stats: ``{stat: (chains, draws)}`` per-draw sampler statistics (ArviZ names:
            ``energy``, ``lp``, ``acceptance_rate``, ``step_size``, ``diverging``,
            ``tree_depth``).
        observed: what was observed (image paths, or indices), stored in ``observed_data``
            along ``observed_dim``.
        warmup_draws: ``(chains, warmup, dim)`` kept as ``warmup_posterior`` if given.
        attrs: written on every group (sampler, temperature, model, ...): numbers or strings.
    """
    az = require_arviz()
    if draws.dim() != 3:
        raise ValueError(f"draws must be (chains, draws, dim), got {tuple(draws.shape)}")
    dim = draws.shape[-1]
    names = [str(c) for c in (coords if coords is not None else range(dim))]
    if len(names) != dim:
        raise ValueError(f"{len(names)} coordinate names for {dim} coordinates")
    cdim = f"{name}_dim"
    kw = {"posterior": {name: _np(draws)}, "coords": {cdim: names}, "dims": {name: [cdim]}}
    if sample_stats:
        kw["sample_stats"] = {k: _np(v) for k, v in sample_stats.items() if v is not None}
    if observed is not None:
        obs = list(observed)
        kw["observed_data"] = {observed_dim: np.asarray(obs if obs and not isinstance(
            obs[0], str) else [str(o) for o in obs])}
        kw["coords"][f"{observed_dim}_index"] = np.arange(len(obs))
        kw["dims"][observed_dim] = [f"{observed_dim}_index"]
    if warmup_draws is not None:
        kw["warmup_posterior"] = {name: _np(warmup_draws)}
        kw["save_warmup"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        idata = az.from_dict(**kw)
    for group in idata.groups():
        idata[group].attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
    return idata


def diagnose(idata, name: str) -> dict:
    """ArviZ's diagnostics of variable ``name``, one value per coordinate.

    Returns ``{"rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"}`` (lists of floats;
    ``rhat`` is the rank-normalised split R-hat, NaN with one draw per chain), plus
    ``"chains"``, ``"draws"`` and ``"arviz"`` (its version).
    """
    az = require_arviz()
    var = [name]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a chain that never moved: NaN, reported as such
        out["rhat"] = az.rhat(idata, var_names=var)[name].values
        out["ess_bulk"] = az.ess(idata, var_names=var, method="bulk")[name].values
        out["ess_tail"] = az.ess(idata, var_names=var, method="tail")[name].values
        out["mcse_mean"] = az.mcse(idata, var_names=var, method="mean")[name].values
        out["mcse_sd"] = az.mcse(idata, var_names=var, method="sd")[name].values
    out = {k: [float(x) for x in np.atleast_1d(v).ravel()] for k, v in out.items()}
    sizes = idata.posterior[name].sizes
    out.update(chains=int(sizes["chain"]), draws=int(sizes["draw"]), arviz=az.__version__)
    return out


def diagnostic_warnings(diagnostics: dict, coords: Sequence[str], *, what: str = "",
                        rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> list[str]:
    """One line per coordinate whose R-hat exceeds ``rhat_max`` or whose bulk or tail ESS is
    below ``ess_min`` (a NaN counts as failing): the interval of that coordinate should not
    be trusted until the chains are run longer."""
    lines = []
    for i, c in enumerate(coords):
        r, eb, et = (diagnostics[k][i] for k in ("rhat", "ess_bulk", "ess_tail"))
        bad = []
        if not r <= rhat_max:
            bad.append(f"R-hat {r:.3f} > {rhat_max}")
        if not min(eb, et) >= ess_min:
            bad.append(f"ESS bulk {eb:.0f} / tail {et:.0f} < {ess_min:g}")
        if bad:
            lines.append(f"{what}{c}: {', '.join(bad)}: the chains have not converged or "
                         "mixed; its interval is not to be trusted (more --samples / "
                         "--warmup, or see the energy map for several basins)")
    return lines


def chain_stats(result, warmup: int = 0) -> dict:
    """Per-draw statistics ``{name: (chains, steps - warmup)}`` of an engine chain run with
    ``return_trace=True``: ``energy`` (the target's, at each draw), ``lp`` (its negative),
    ``acceptance_rate`` (of the step that led to the draw), ``accepted`` and ``step_size``."""
    if result.accept_trace is None:
        raise ValueError("the chain kept no trace: run it with return_trace=True")
    w = int(warmup)
    # energy_trace[k] is the energy where step k started, i.e. at draw k - 1; the energy of
    # the last draw is the final state's
    last = result.state.energy  # None after unadjusted steps that never evaluated it
    if last is None:
        last = torch.full_like(result.energy_trace[0], float("nan"))
    e = torch.cat([result.energy_trace[1:], last.detach()[None]])  # (steps, chains)
    return {"energy": e[w:].T, "lp": -e[w:].T,
            "acceptance_rate": result.accept_trace[w:].T,
            "accepted": result.accepted_trace[w:].T,
            "step_size": result.step_size_trace[w:].T}


def chain_to_arviz(result, *, name: str = "x", warmup: int = 0,
                   coords: Sequence[str] | None = None, observed: Sequence | None = None,
                   attrs: dict | None = None):
    """ArviZ data of an engine chain run with ``return_trace=True`` (:func:`~conceptebm.infer.mala`,
    :func:`~conceptebm.infer.langevin`), the first ``warmup`` steps dropped.

    The trajectory ``(steps, chains, *event)`` becomes ``posterior[name]`` with dims
    ``(chain, draw, {name}_dim)`` (events flattened); ``sample_stats`` holds the energy at
    each draw, the acceptance probability of the step that led to it, whether it moved
    and the step size it used.
    """
    if result.trajectory is None or result.accept_trace is None:
        raise ValueError("the chain kept no trace: run it with return_trace=True")
    traj = result.trajectory  # (kept, chains, *event)
    if traj.shape[0] != result.accept_trace.shape[0]:
        raise ValueError("the trajectory must keep every step (keep_every=1) for ArviZ draws")
    w = int(warmup)
    if not 0 <= w < traj.shape[0]:
        raise ValueError(f"warmup must lie in [0, {traj.shape[0]}), got {warmup}")
    draws = traj[w:].flatten(2).transpose(0, 1)  # (chains, draws, D)
    return to_inference_data(draws, name, coords=coords, sample_stats=chain_stats(result, w),
                             observed=observed, attrs=attrs)


def map_to_arviz(result, *, name: str = "c", coords: Sequence[str] | None = None,
                 observed: Sequence | None = None, attrs: dict | None = None):
    """ArviZ data of a multi-start MAP (a :class:`~conceptebm.infer.MAPResult`): every start's
    end point and energy, not draws of a posterior.

    Two groups outside ArviZ's posterior scheme: ``map`` (``{name}`` ``(observation,
    {name}_dim)`` the best value of each observation and its ``energy``) and ``map_starts``
    (``{name}`` ``(observation, start, {name}_dim)`` where each refinement ended, ``energy``
    there, and ``began``: where it started); ``observed_data`` as :func:`to_inference_data`.
    Saved and read back with ``to_netcdf`` / ``arviz.from_netcdf`` like any other.
    """
    az = require_arviz()
    import xarray as xr

    b, r, d = result.candidates.shape
    names = [str(c) for c in (coords if coords is not None else range(d))]
    cdim = f"{name}_dim"
    crd = {"observation": np.arange(b), "start": np.arange(r), cdim: names}
    best = xr.Dataset({name: (("observation", cdim), _np(result.c)),
                       "energy": (("observation",), _np(result.energy))},
                      coords={k: crd[k] for k in ("observation", cdim)})
    starts = xr.Dataset({name: (("observation", "start", cdim), _np(result.candidates)),
                         "energy": (("observation", "start"), _np(result.candidate_energy)),
                         "began": (("observation", "start", cdim), _np(result.starts))},
                        coords=crd)
    groups = {"map": best, "map_starts": starts}
    if observed is not None:
        obs = [str(o) for o in observed]
        groups["observed_data"] = xr.Dataset({"image": (("observation",), np.asarray(obs))},
                                             coords={"observation": np.arange(len(obs))})
    for g in groups.values():
        g.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the two groups are not in ArviZ's scheme
        return az.InferenceData(**groups)


"""Posterior temperatures fitted on validation scenes and stored in a model's record.

A model trained by contrastive divergence or the concept-contrastive loss has no reason for
``exp(-E(x | c))`` to have a likelihood's scale: its 90 % intervals may cover the truth far
more or less often than 90 %. One temperature ``T`` (``p(c | x) ∝ exp(-E(x | c) / T)``)
recalibrates them. :func:`fit_posterior_temperature` fits it on validation sets with known
truth, on the exact grid posterior of a position (:func:`~conceptebm.scenes.multiview.
grid_posterior`, cheap for 2-D: its energies are computed once and reused for every trial
``T``); :func:`store_posterior_temperature` writes it into the checkpoint's record (the
safetensors metadata and the JSON twin alike) as ``"posterior_temperature"`` (the number) and
``"posterior_calibration"`` (how it was fitted: data, seed, counts of views, coverage), and
:func:`~conceptebm.scenes.multiview.posterior_temperature` reads it, so ``conceptebm infer
--posterior`` and :func:`~conceptebm.scenes.multiview.multiview_posterior` use it by
default. :func:`coverage` measures intervals on fresh sets: per-coordinate coverage with
its standard error, and the mean width.

A multi-view model gets one temperature per number of views it was fitted at
(``posterior_calibration["by_views"]``): summed energies of views that are not independent
given the position need a count-dependent ``T``.

    conceptebm calibrate position_late position_contrastive --posterior-temperature --write
    conceptebm calibrate position_multiview --posterior-temperature --views 1 2 4 8 --write

Example (an analytic reading whose data are twice as noisy as its energy claims: the fitted
temperature is 2 ** 2 = 4):
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class Reading(ConditionalEnergy):
    ...     def energy(self, x, c):
    ...         return ((x - c) ** 2).sum(-1) / (2 * 0.05 ** 2)
    >>> model = Reading(Concept.continuous("position", dim=2))
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = torch.rand(400, 2, generator=g) * 1.2 - 0.6
    >>> x = (truth + 0.1 * torch.randn(400, 2, generator=g))[:, None]   # (B, V=1, 2)
    >>> fit = fit_posterior_temperature(model, x, truth, check_range=False, event_dim=1)
    >>> round(fit["temperature"])
    4
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from conceptebm.checkpoints import read_record, update_record
from conceptebm.infer.posterior_grid import (
    calibrate_temperature,
    fit_temperature,
    half_split_check,
    summarise_grid,
)
from conceptebm.scenes.inference import check_images
from conceptebm.scenes.multiview import (
    grid_posterior,
    interval_coverage,
    regrid_temperature,
)

__all__ = ["VALIDATION_SEED", "TEST_SEED", "scene_sets", "fit_posterior_temperature",
           "nested_view_fits", "merge_view_fits",
           "coverage", "store_posterior_temperature", "shipped_temperature"]

VALIDATION_SEED = 20_261_129  # the held-out seed of the energy calibration: no training run
TEST_SEED = 20_261_207  # the project's test seed (paper/PROTOCOL.md): read once, never fitted


def scene_sets(dataset: str, n: int, views: int = 1, seed: int = VALIDATION_SEED,
               image_size: int = 32) -> tuple[Tensor, Tensor]:
    """``n`` rendered sets ``(n, views, 3, H, W)`` and their positions ``(n, 2)``: views of one
    scene from ``"multiview"``, or single images (``views=1``) of any scene dataset."""
    from conceptebm.datasets import make_dataset

    if dataset == "multiview":
        data = make_dataset("multiview", size=n * views, seed=seed, n_views=views,
                            image_size=image_size)
        sets, labels = data.views(range(n))
    else:
        if views != 1:
            raise ValueError(f"{dataset!r} renders single images: views must be 1")
        data = make_dataset(dataset, size=n, seed=seed, image_size=image_size)
        images, labels = data.batch(torch.arange(n))
        sets = images[:, None]
    truth = torch.as_tensor(labels["position"]).reshape(n, -1)[:, :2]
    return sets, truth


def coverage(model, sets: Tensor, truth: Tensor, temperature: float, *, points: int = 48,
             level: float = 0.9, check_range: bool = True, event_dim: int = 3,
             posterior=None, refine: int = 1) -> dict:
    """Coverage of ``level`` intervals of the grid posterior at ``temperature`` on ``sets``.

    Returns ``coverage`` (fraction of (set, coordinate) pairs inside), ``se`` (its standard
    error, from the spread of the per-set means: the coordinates of one set are not
    independent), ``joint`` (both coordinates inside), ``width`` (mean interval width) and
    ``n``. ``posterior``: a grid posterior of the same sets, to reuse its energies;
    ``refine``: see :func:`~conceptebm.scenes.multiview.grid_posterior`.
    """
    if posterior is None:
        posterior = grid_posterior(model, sets, points, level=level, temperature=temperature,
                                   check_range=check_range, event_dim=event_dim,
                                   refine=refine)
    elif posterior.temperature != temperature:
        posterior = regrid_temperature(posterior, temperature)
    inside = interval_coverage(posterior.interval, truth).double()  # (n, d)
    per_set = inside.mean(1)
    n = inside.shape[0]
    se = float(per_set.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    width = (posterior.interval[:, 1] - posterior.interval[:, 0]).double().mean()
    joint = float(inside.all(1).double().mean())
    return {"coverage": float(inside.mean()), "se": se, "joint": joint, "width": float(width),
            "n": n, "level": level, "temperature": float(temperature)}


def fit_posterior_temperature(model, sets: Tensor, truth: Tensor, *, points: int = 48,
                              level: float = 0.9, check_range: bool = True,
                              event_dim: int = 3, refine: int = 1) -> dict:
    """The temperature at which the grid posterior's ``level`` intervals cover ``truth`` at
    their level on these (validation) sets, with the coverage and width it gives there
    (:func:`~conceptebm.infer.posterior_grid.calibrate_temperature`, after the image
    checks; ``refine > 1`` refines the grid where the mass lies)."""
    check_images(sets, model, views=True, check_range=check_range, event_dim=event_dim)
    return calibrate_temperature(model, sets, truth, points=points, refine=refine,
                                 level=level, event_dim=event_dim)


def merge_view_fits(old: dict | None, new: dict) -> dict:
    """``new`` (a ``posterior_calibration``) with the fits of ``old`` at the counts of views
    ``new`` did not fit kept: refitting one count (``--views 1 -n 600``) leaves the others'
    temperatures as they were. Each kept fit carries its own provenance (``seed``, ``n``,
    ``command``) in ``fits``; ``commands`` lists every command that made the record, and
    ``temperature`` / ``views`` are those of the smallest count (the single-image default)."""
    if not old or not old.get("by_views") or not new.get("by_views"):
        return new  # a calibration without counts of views is stored as it is
    kept = {k: t for k, t in old["by_views"].items() if k not in new["by_views"]}
    if not kept:
        return new
    old_fits = old.get("fits") or {}
    fits = {k: {"seed": old.get("seed"), "n": old.get("n"), "points": old.get("points"),
                "command": old.get("command"), **old_fits.get(k, {})} for k in kept}
    for k, f in (new.get("fits") or {}).items():
        fits[k] = {"seed": new.get("seed"), "command": new.get("command"), **f}
    by_views = {**kept, **new["by_views"]}
    order = sorted(by_views, key=int)
    first = order[0]
    commands = list(old.get("commands") or [old.get("command")]) + [new.get("command")]
    return {**new, "by_views": {k: by_views[k] for k in order},
            "fits": {k: fits[k] for k in order if k in fits},
            "temperature": by_views[first], "views": int(first),
            "commands": [c for c in commands if c]}


def store_posterior_temperature(path, calibration: dict, *, keep_other_views: bool = True
                                ) -> dict:
    """Write ``posterior_temperature`` (the number) and ``posterior_calibration`` (the whole
    record) into a checkpoint's record: its safetensors metadata and its JSON twin alike;
    the tensors are rewritten unchanged. With ``keep_other_views`` the record's fits at
    counts of views ``calibration`` did not fit are kept (:func:`merge_view_fits`).
    Returns the stored calibration."""
    if keep_other_views:
        calibration = merge_view_fits(read_record(path).get("posterior_calibration"),
                                      calibration)
    update_record(path, {"posterior_temperature": calibration["temperature"],
                         "posterior_calibration": calibration})
    return calibration


def nested_view_fits(model, sets: Tensor, truth: Tensor, views, *, points: int = 32,
                     level: float = 0.9) -> dict:
    """One temperature per count in ``views``, fitted on the first ``v`` views of each of the
    validation ``sets (n, max(views), ...)``: one coarse energy map per view, summed over the
    first ``v`` (the views of a multi-view scene are drawn independently given its
    position, so the first ``v`` of them are a ``v``-view set). One rendering and one energy
    map a view serve every count: a count costs no more network calls than the largest."""
    from conceptebm.infer.energy_map import concept_grid, energy_map

    check_images(sets, model, views=True)
    n, most = sets.shape[0], sets.shape[1]
    grid = concept_grid(model.concept, int(points), dtype=sets.dtype, device=sets.device)
    single = sets.reshape(n * most, 1, *sets.shape[2:])
    per_view = energy_map(model, single, grid, views=True).reshape(n, most, -1)  # (n, V, G)
    fits = {}
    for v in views:
        g = summarise_grid(per_view[:, :v].sum(1), grid, level, 1.0, sets.dtype,
                           float(points ** grid.shape[1]))
        t = fit_temperature(g, truth)
        at = regrid_temperature(g, t)
        inside = interval_coverage(at.interval, truth).double()
        fits[str(v)] = {"temperature": t, "level": level, "points": int(points), "refine": 1,
                        "n": n, "views": int(v), "coverage_fit": float(inside.mean()),
                        "width": float((at.interval[:, 1] - at.interval[:, 0]).mean()),
                        "sets": f"the first {v} views of {n} {most}-view scenes",
                        "half_split": half_split_check(g, truth)}
    return fits


def shipped_temperature(name: str, views=(1,), n: int = 100, points: int = 48,
                        seed: int = VALIDATION_SEED, refine: int = 1) -> dict:
    """The ``posterior_calibration`` record of shipped model ``name``: one temperature per
    count of views (``by_views``) on ``n`` validation sets of its training dataset, on a
    ``points`` grid refined ``refine`` times where the mass lies; the record's
    ``temperature`` is that of the first count. A multi-view model fitted at several counts
    without refinement reads the first ``v`` views of ``n`` scenes of ``max(views)`` views
    (:func:`nested_view_fits`)."""
    from conceptebm import pretrained

    model = pretrained.load(name)
    dataset = pretrained.info(name).get("train", {}).get("dataset") or "position"
    if dataset == "multiview" and len(views) > 1 and refine == 1:
        sets, truth = scene_sets(dataset, n, max(views), seed, model.image_size)
        by_views = nested_view_fits(model, sets, truth, views, points=points)
    else:
        by_views = {}
        for v in views:
            sets, truth = scene_sets(dataset, n, v, seed, model.image_size)
            by_views[str(v)] = fit_posterior_temperature(model, sets, truth, points=points,
                                                         refine=refine)
    first = by_views[str(views[0])]
    vs = " ".join(str(v) for v in views)
    return {"temperature": first["temperature"], "views": int(views[0]),
            "by_views": {k: f["temperature"] for k, f in by_views.items()},
            "fits": by_views, "dataset": dataset, "seed": seed, "n": n, "points": points,
            "refine": refine, "level": first["level"],
            "command": f"conceptebm calibrate {name} --posterior-temperature --views {vs} "
                       f"-n {n} --points {points} --refine {refine} --write"}


def main(argv: list[str] | None = None) -> int:
    """``python -m conceptebm.scenes.temperature NAME ...`` (deprecated): ``conceptebm calibrate
    NAME --posterior-temperature ...`` after one warning line; it goes in conceptebm 0.3."""
    import sys

    from conceptebm.cli import main as conceptebm

    print("warning: python -m conceptebm.scenes.temperature is deprecated; use conceptebm "
          "calibrate NAME --posterior-temperature; it goes in conceptebm 0.3", file=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    return conceptebm(["calibrate", "--posterior-temperature", *args])


if __name__ == "__main__":
    raise SystemExit(main())

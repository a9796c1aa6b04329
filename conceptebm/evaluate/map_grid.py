"""MAP search settings that fit the model: the start grid and refinement steps chosen on
validation images, stored in the checkpoint's record (``"map"``), used by default.

A continuous concept is read as ``argmin_c E(x | c)``: the best point of a start grid, refined
by projected Adam (:func:`~conceptebm.infer.map_estimate`). Too coarse a grid leaves Adam in
the wrong basin on some images (a 17 x 17 grid did on a stranger's scenes, ``issues show 29``),
too fine a grid wastes network calls. :func:`map_errors` measures every image's error for each
(grid, steps) pair, sharing the grid pass between step counts; :func:`map_plateau` compares
each setting with the most thorough search (the largest grid, the most steps) on the same
images (paired); :func:`choose_map_settings` takes the smallest grid, then the fewest steps,
that is on the plateau of every source: no more than :data:`PLATEAU_TOL` worse on average.

Where the images come from:

* a shipped reader (``conceptebm calibrate NAME --map-grid --write``): :func:`validation_sources`
  renders scenes of its training family and a renderer variant with another camera and light
  (:data:`VARIANT_VIEW`, :data:`VARIANT_LIGHT`) at :data:`VALIDATION_SEED`;
* a ``conceptebm train --data`` run: its held-out split (:func:`select_run_map_settings`, called
  after training), so the run's checkpoints read its images with the grid they need.

Example (a hand-made energy whose wrong basin a 3-point grid starts in):
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies import ConditionalEnergy
    >>> class TwoWells(ConditionalEnergy):   # deep narrow well at x, shallow wide one at -0.9
    ...     def energy(self, x, c):
    ...         near = -2 * torch.exp(-((c[:, 0] - x[:, 0]) / 0.05) ** 2)
    ...         return near - torch.exp(-((c[:, 0] + 0.9) / 0.5) ** 2)
    >>> net = TwoWells(Concept.continuous("level", 1, -1.0, 1.0))
    >>> x = torch.linspace(0.2, 0.8, 8)[:, None]
    >>> errors = map_errors(net, x, x, grids=(3, 41), steps=(0, 20), event_dim=1)
    >>> [round(float(errors[k].mean()), 2) for k in [(3, 20), (41, 0), (41, 20)]]
    [1.4, 0.01, 0.0]
    >>> choose_map_settings({"toy": errors})
    (41, 20)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["GRIDS", "LATE_GRIDS", "STEPS", "PLATEAU_TOL", "VALIDATION_SEED", "TEST_SEED",
           "VARIANT_VIEW", "VARIANT_LIGHT", "is_late", "candidate_grids", "map_errors",
           "map_plateau", "choose_map_settings", "selection_record", "store_map_settings",
           "validation_sources", "select_map_settings", "select_run_map_settings"]

#: Start grids (points per coordinate of a 2-D concept) and refinement steps compared; a
#: late-conditioned net (image features once, a cheap head per candidate) also tries
#: :data:`LATE_GRIDS` (see :func:`candidate_grids`).
GRIDS = (9, 17, 25, 33, 41, 65)
LATE_GRIDS = (97, 129)
STEPS = (0, 30, 60, 120)
#: A setting is on the plateau when its mean error exceeds the most thorough search's (the
#: largest grid with the most steps), on the same images, by at most this much (concept
#: units: 0.1 % of a position's range [-1, 1], about a seventh of the shipped late reader's
#: MAE), so it gives up nothing a reader of the MAE would notice.
PLATEAU_TOL = 0.002
VALIDATION_SEED = 20_261_130  # held out: training runs use seeds 0..10, calibration 20261129
TEST_SEED = 20_261_207  # the project's test seed: read once, after the choice, never fitted
#: The renderer variant: the default camera moved (azimuth +-6 deg, elevation 55-66, distance,
#: field of view) and light from directions no shipped model saw (the "unseen light" of
#: ``paper/benchmarks/inference.py``: azimuth 100-170, elevation 20-35, dimmer).
VARIANT_VIEW = ((-6.0, 6.0), (55.0, 66.0), (6.8, 7.6), (28.0, 32.0))
VARIANT_LIGHT = ((100.0, 170.0), (20.0, 35.0), (0.5, 0.65), (0.2, 0.3))


def is_late(model) -> bool:
    """True for a late-conditioned net: it overrides ``features`` (the image trunk, run once
    per image), so a candidate costs a head pass, not a network pass."""
    from conceptebm.energies import ConditionalEnergy

    return type(model).features is not ConditionalEnergy.features


def candidate_grids(model, grids: Sequence[int] = GRIDS) -> tuple[int, ...]:
    """The grids to compare for ``model``: ``grids``, plus :data:`LATE_GRIDS` for a
    late-conditioned net, whose candidates are cheap (a 129 x 129 grid reads about 50
    images a second on one core)."""
    return tuple(sorted(set(grids) | (set(LATE_GRIDS) if is_late(model) else set())))


def map_errors(model, images: Tensor, targets: Tensor, *, grids: Sequence[int] = GRIDS,
               steps: Sequence[int] = STEPS, views: bool = False, event_dim: int = 3,
               chunk_size: int | None = None, lr: float | None = None,
               progress: bool = False) -> dict[tuple[int, int], Tensor]:
    """Each image's absolute error (mean over coordinates), ``(n,)``, for every ``(grid,
    steps)`` pair: the best point of a ``grid``-per-coordinate start grid refined by ``steps``
    projected Adam steps, as :func:`conceptebm.scenes.infer_concept` reads a continuous
    concept. ``images``: ``(n, C, H, W)``, or ``(n, V, C, H, W)`` sets with ``views=True``;
    ``targets``: ``(n, dim)`` (or ``(n,)`` for a 1-D concept)."""
    from tqdm.auto import tqdm

    from conceptebm.infer.optimize import concept_energy, map_estimate
    from conceptebm.infer.settings import MAP_CHUNK

    concept = model.concept
    if concept.is_categorical:
        raise ValueError(f"{concept.name!r} is categorical: it is read exactly by "
                         "enumeration, there is no start grid to choose")
    targets = torch.as_tensor(targets, dtype=torch.float32).reshape(len(images), -1)
    problem = concept_energy(model, images, views=views, event_dim=event_dim)
    per_pair = images.shape[1] if views else 1
    chunk = max(1, (chunk_size or MAP_CHUNK) // per_pair)
    out: dict[tuple[int, int], Tensor] = {}
    with torch.no_grad(), tqdm(total=len(grids), desc="MAP grids", disable=not progress) as bar:
        for g in grids:
            start = map_estimate(problem, bounds=concept, grid=int(g), steps=0,
                                 chunk_size=chunk).c  # (n, dim): the best grid point
            for s in steps:
                c = start if s == 0 else map_estimate(problem, bounds=concept, init=start,
                                                      steps=int(s), lr=lr, chunk_size=chunk).c
                out[(int(g), int(s))] = (c.detach().cpu() - targets).abs().mean(1)
            bar.update(1)
    return out


def map_plateau(errors: Mapping[tuple[int, int], Tensor], tol: float = PLATEAU_TOL) -> list:
    """One row per setting: ``{"grid", "steps", "mae", "mae_se", "excess", "excess_se",
    "on_plateau"}``. The reference is the most thorough search measured (the largest grid,
    then the most steps): the closest to the model's own ``argmin_c E(x | c)``, and not a
    setting that won by luck among many. ``excess`` is the mean over images of (a setting's
    error - the reference's error on the same image); ``on_plateau`` is ``excess <= tol``."""
    ref = errors[max(errors)]
    rows = []
    for (g, s), e in sorted(errors.items()):
        d = e - ref
        n = e.numel()
        rows.append({"grid": g, "steps": s, "mae": float(e.mean()),
                     "mae_se": float(e.std() / math.sqrt(n)) if n > 1 else 0.0,
                     "excess": float(d.mean()),
                     "excess_se": float(d.std() / math.sqrt(n)) if n > 1 else 0.0,
                     "on_plateau": bool(float(d.mean()) <= tol)})
    return rows


def choose_map_settings(tables: Mapping[str, Mapping[tuple[int, int], Tensor]],
                        tol: float = PLATEAU_TOL) -> tuple[int, int]:
    """``(grid, steps)``: the smallest grid, then the fewest steps, on the plateau
    (:func:`map_plateau`) of every source in ``tables`` (source name -> :func:`map_errors`,
    each over the same settings)."""
    if not tables:
        raise ValueError("no sources: pass {source name: map_errors(...)}")
    keys = [set(errors) for errors in tables.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError("the sources were measured over different settings; measure each "
                         "over the same grids and steps")
    ok = set(keys[0])
    for errors in tables.values():
        ok &= {(r["grid"], r["steps"]) for r in map_plateau(errors, tol) if r["on_plateau"]}
    return min(ok)  # never empty: the reference is on every plateau


def selection_record(tables: Mapping[str, Mapping[tuple[int, int], Tensor]],
                     chosen: tuple[int, int], *, tol: float = PLATEAU_TOL,
                     sources: Mapping[str, Mapping] | None = None, **extra) -> dict:
    """The JSON record of a choice: the chosen grid and steps, the tolerance and, per source,
    its description (``sources``) and :func:`map_plateau` rows."""
    return {"grid": chosen[0], "steps": chosen[1], "tolerance": tol,
            "rule": "smallest grid, then fewest steps, whose mean error exceeds that of the "
                    "largest grid with the most steps by at most the tolerance on every "
                    "source (paired, same images)",
            **extra,
            "sources": {name: {**(sources or {}).get(name, {}),
                               "n": int(next(iter(errors.values())).numel()),
                               "rows": map_plateau(errors, tol)}
                        for name, errors in tables.items()}}


def store_map_settings(path, settings, selection: dict | None = None) -> None:
    """Write ``settings`` (a :class:`~conceptebm.infer.MAPSettings`) as the checkpoint's
    ``"map"`` record, and ``selection`` (how they were chosen) as ``"map_selection"``, in the
    safetensors metadata and its JSON twin alike; tensors are rewritten unchanged. Re-read
    right before writing, so other record entries written meanwhile are kept."""
    from conceptebm.checkpoints import update_record

    entries = {"map": settings.to_dict()}
    if selection is not None:
        entries["map_selection"] = selection
    update_record(path, entries)


def validation_sources(model, n: int = 200, *, seed: int = VALIDATION_SEED,
                       dataset: str | None = None) -> dict[str, dict]:
    """Validation images of a shipped position reader, per source: ``{name: {"images",
    "targets", "views", "about"}}``.

    ``dataset`` is the model's training family (its record's ``train.dataset``): for
    ``"multiview"`` (any camera): single views (``views_1``), sets of 4 views (``views_4``,
    ``n // 2`` sets) and single views in the variant light (``light_1``); otherwise default-
    camera scenes (``scenes``) and the renderer variant (``camera_light``: :data:`VARIANT_VIEW`,
    :data:`VARIANT_LIGHT`). Rendered at ``seed``.
    """
    from conceptebm.datasets import make_dataset
    from conceptebm.datasets.dataset import MultiViewDataset, SceneDataset

    dataset = dataset or (model.record.get("train") or {}).get("dataset") or "position"
    size = getattr(model, "image_size", None) or 32
    if dataset == "multiview":
        sets = max(1, n // 2)
        ds = make_dataset("multiview", size=n * 4, seed=seed, image_size=size, n_views=4)
        views, labels = ds.views(range(n))  # (n, 4, 3, H, W)
        truth = labels["position"][:, 0]
        light = MultiViewDataset(dataclasses.replace(ds.spec, light=VARIANT_LIGHT),
                                 size=n * 4, n_views=4, seed=seed, image_size=size,
                                 name="multiview_variant_light", concept="position")
        lviews, llabels = light.views(range(n))
        return {
            "views_1": {"images": views[:, 0], "targets": truth, "views": False,
                        "about": "multiview scenes, one view each"},
            "views_4": {"images": views[:sets], "targets": truth[:sets], "views": True,
                        "about": "multiview scenes, 4 views each (energies add)"},
            "light_1": {"images": lviews[:, 0], "targets": llabels["position"][:, 0],
                        "views": False, "about": "multiview scenes, one view each, light "
                                                 f"{VARIANT_LIGHT}"},
        }
    base = make_dataset(dataset, size=n, seed=seed, image_size=size)
    x, labels = base.batch(range(n))
    variant = SceneDataset(dataclasses.replace(base.spec, view=VARIANT_VIEW,
                                               light=VARIANT_LIGHT),
                           size=n, seed=seed, image_size=size, name="position_variant",
                           concept="position")
    vx, vlabels = variant.batch(range(n))
    return {
        "scenes": {"images": x, "targets": labels["position"], "views": False,
                   "about": f"{dataset} scenes (the training family)"},
        "camera_light": {"images": vx, "targets": vlabels["position"], "views": False,
                         "about": f"renderer variant: camera {VARIANT_VIEW}, light "
                                  f"{VARIANT_LIGHT}"},
    }


def select_map_settings(model, sources: Mapping[str, Mapping], *, grids=None, steps=STEPS,
                        tol: float = PLATEAU_TOL, progress: bool = False, **extra):
    """Measure :func:`map_errors` on every source (``{name: {"images", "targets", "views"}}``)
    over ``grids`` (default :func:`candidate_grids`) and ``steps``, and choose; returns
    ``(MAPSettings, selection record)``. The settings keep the model's other MAP fields
    (optimizer, lr, chunk)."""
    from conceptebm.infer.settings import DEFAULT_MAP

    grids = candidate_grids(model) if grids is None else tuple(grids)

    tables = {name: map_errors(model, src["images"], src["targets"], grids=grids, steps=steps,
                               views=bool(src.get("views")), progress=progress)
              for name, src in sources.items()}
    grid, n_steps = choose_map_settings(tables, tol)
    settings = (getattr(model, "map_settings", None) or DEFAULT_MAP).replace(grid=grid,
                                                                             steps=n_steps)
    about = {name: {k: v for k, v in src.items() if k not in ("images", "targets")}
             for name, src in sources.items()}
    return settings, selection_record(tables, (grid, n_steps), tol=tol, sources=about, **extra)


def select_run_map_settings(run_dir, held_out, *, grids=None, steps=STEPS,
                            say=print) -> dict | None:
    """After a ``conceptebm train --data`` run: choose the MAP grid and steps of the run's
    model (``best.safetensors``, else ``last.safetensors``: what ``conceptebm.load(RUN)``
    reads) on its held-out split (``held_out.images``, ``held_out.labels``) and store them in
    that checkpoint's record. Returns the selection record; ``None`` for a categorical
    concept, one of more than 2 dimensions, or no split or checkpoint.

    Cost is bounded: a late-conditioned net (image features once, a cheap head per candidate)
    is measured on up to 200 held-out images over :func:`candidate_grids`; an
    early-conditioned one (a full network pass per candidate) on up to 100 over grids of at
    most 41 points a coordinate. ``grids``: those to compare instead.
    """
    from conceptebm.checkpoints import load_energy, run_checkpoint

    path = run_checkpoint(run_dir)
    if path is None or held_out is None or len(held_out) == 0:
        return None
    net = load_energy(path)
    concept = net.concept
    if concept.is_categorical or concept.dim > 2:
        return None
    late = is_late(net)
    n = min(len(held_out), 200 if late else 100)
    if grids is None:
        grids = candidate_grids(net) if late else tuple(g for g in GRIDS if g <= 41)
    images = held_out.images[:n]
    targets = torch.as_tensor(held_out.labels[concept.name])[:n]
    settings, record = select_map_settings(
        net, {"held_out": {"images": images, "targets": targets, "views": False,
                           "about": "the run's held-out (validation) split"}},
        grids=grids, steps=steps, checkpoint=path.name)
    store_map_settings(path, settings, record)
    say(f"[train] MAP settings chosen on {n} held-out images: grid {settings.grid}, "
        f"{settings.steps} steps; stored in {path}")
    return record

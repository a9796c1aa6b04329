"""How many objects, and where: counting with a position model trained on one object.

The energy map ``E(x | c)`` of a scene with several objects has a basin at each (paper
Figure 12), but a single-object model also leaves basins between close objects, and a strong
object can hide a weak neighbour. :func:`count_objects` (``locate_objects(model, images,
k="auto")``) decides the count with one of two rules, both scored against the model's own
energy calibration (the quantiles of the best energies of held-out single-object scenes,
stored in every model's record): a candidate's *score* is ``z = (E - q50) / (q99 - q50)``,
0 for a typical real object, 1 at the 99th percentile, and it counts when ``z <= threshold``.

* ``"basins"``: the separated basins of the energy map (:func:`~conceptebm.scenes.energy_basins`),
  refined by a few Adam steps; every basin that scores under the threshold is an object.
* ``"explain"`` (find, isolate, verify, explain away): each round takes the lowest basins of
  the map of what is left of the image; each is *isolated* (every pixel outside the image
  window of a ``window``-sized object at that position replaced by the image's median colour,
  the ground) and read again by the model as the single-object scene it was trained on (a MAP
  estimate); the candidate whose isolated scene scores best is an object if it scores under
  the threshold, and its window (``erase``-sized) is painted over before the next round. A
  basin between two objects isolates to a window with no whole object in it and scores badly;
  an object hidden by a stronger neighbour gets its own basin once that neighbour is erased.
  A new object must lie ``exclusion`` from those found (0.5: two objects of the training
  sizes, 0.25 and up, cannot be closer without overlapping), and with ``polish`` each position
  is refined by that many Adam steps on the whole image, from where its window read it.
  The windows are where the default camera (:data:`~conceptebm.datasets.scene.DEFAULT_VIEW`)
  puts a position: the rule is for models of default-camera scenes (every shipped position
  reader but ``position_multiview``).

Which rule and which threshold are fitted on validation scenes of 0 to 6 objects (40 a count,
seed 20261130, apart from the test seeds) by ``benchmarks/counting.py``: each rule's
candidates are computed once, a threshold is swept, and the rule and threshold with the highest
mean count accuracy over 0-4 objects are kept. With the default position reader
``position_late_robust``: ``explain`` with ``exclusion`` 0.5 and ``polish`` 20 0.990 at
threshold 4.5, plain ``explain`` 0.985 at 4.0, ``basins`` 0.950 at 2.5 (its midway basins
between close objects count as objects, and a hidden neighbour is never seen), so
:data:`COUNT_RULE` is the polished ``explain`` at 4.5. Read once on fresh test scenes (seed
20261209, 100 a count; ``benchmarks/results/counting_robust.json``) it counts 0-6 objects
right in 1.00, 1.00, 0.97, 0.96, 0.94, 0.90, 0.74 of scenes, with a matched position MAE of
0.025; a heatmap net trained on the same single-object scenes, counted by the same thresholded
rule on the same scenes: 1.00, 1.00, 0.90, 0.68, 0.30, 0.11, 0.00, MAE 0.069. The earlier
reader ``position_late`` (its own fit: ``explain`` 0.905 at 4.5; test seed 20261208,
``benchmarks/results/counting.json``) counted 1.00, 0.94, 0.92, 0.92, 0.74, 0.69, 0.43, MAE
0.044; ``position_contrastive`` read with that rule (30 scenes a count,
``benchmarks/results/counting_contrastive.json``): 1.00, 0.93, 0.97, 1.00, 0.97, 1.00, 0.63
(``docs/guides/energy-maps.md``). Each object also carries a 90 % error
radius, the 0.9 quantile of the model's MAP error on held-out single-object scenes (the
calibration record's ``error``): a model-level interval, measured on one object, not on
crowded scenes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from conceptebm.evaluate.familiarity import familiarity
from conceptebm.infer.optimize import concept_energy, map_estimate
from conceptebm.infer.settings import MAP_CHUNK
from conceptebm.scenes.inference import (
    check_images,
    concept_of,
    energy_basins,
    infer_concept,
    refine_basins,
    scene_energy_maps,
)

__all__ = ["COUNT_RULE", "RULES", "Objects", "Candidates", "count_objects",
           "object_candidates", "counts_at", "energy_score", "window_masks", "match_positions"]

RULES = ("explain", "basins")

#: The count rule fitted on the default reader's validation scenes (``benchmarks/counting.py``;
#: the numbers it chose from are in ``benchmarks/results/counting_robust.json``).
#: ``threshold`` is in calibration units (see the module docstring), ``window`` / ``erase`` in
#: world units.
COUNT_RULE = {"rule": "explain", "threshold": 4.5, "window": 0.35, "erase": 0.35,
              "candidates": 4, "exclusion": 0.5, "polish": 20, "max_objects": 8}


class Objects(NamedTuple):
    """Result of :func:`count_objects`: the objects found in each image.

    Attributes:
        points: ``(B, K, dim)`` positions of the objects found, best first; ``NaN`` beyond
            each image's count (``K = max(found)``, at least 1).
        energy: ``(B, K)`` the energy each object was read with (``NaN`` beyond the count).
        found: ``(B,)`` how many objects each image holds (0: "no object").
        score: ``(B, K)`` each object's score in calibration units (``NaN`` beyond).
        radius: the model's 90 % error radius (one number for every object; ``None`` when
            its calibration has no error record).
        rule: the rule and threshold used (a dict like :data:`COUNT_RULE`).
        familiarity: ``(B,)`` each image's distance from the images the model was trained
            on, in units of its threshold (:mod:`conceptebm.evaluate.familiarity`); an image
            above 1 is unlike them and holds no object the model knows (``found`` 0);
            ``None`` when the model's record has no familiarity check.
    """

    points: Tensor
    energy: Tensor
    found: Tensor
    score: Tensor
    radius: float | None
    rule: dict
    familiarity: Tensor | None = None

    def objects(self, i: int = 0) -> list[dict]:
        """Image ``i``'s objects as JSON-friendly dicts (``value``, ``energy``, ``score``,
        and ``radius_90`` when known)."""
        out = []
        for k in range(int(self.found[i])):
            row = {"value": [float(v) for v in self.points[i, k]],
                   "energy": float(self.energy[i, k]), "score": float(self.score[i, k])}
            if self.radius is not None:
                row["radius_90"] = self.radius
            out.append(row)
        return out

    def describe(self, i: int = 0, name: str = "position") -> str:
        """Image ``i`` in words: ``no object found`` or one line per object."""
        n = int(self.found[i])
        if n == 0 and self.familiarity is not None and float(self.familiarity[i]) > 1.0:
            return "no object found: the image is unlike the scenes the model was trained on"
        if n == 0:
            return "no object found"
        head = f"{n} object{'s' if n > 1 else ''} found"
        lines = [head]
        for k, obj in enumerate(self.objects(i)):
            value = ", ".join(f"{v:+.3f}" for v in obj["value"])
            radius = f" +- {obj['radius_90']:.3f} (90%)" if "radius_90" in obj else ""
            lines.append(f"  object {k + 1}: {name} = ({value}){radius}   (energy "
                         f"{obj['energy']:.4g})")
        return "\n".join(lines)


class Candidates(NamedTuple):
    """Result of :func:`object_candidates`: every candidate object in the order the rule
    takes them; image ``b`` holds the first ``n`` whose ``score <= threshold`` all
    (:func:`counts_at`).

    Attributes:
        points, energy, score: ``(B, M, dim)``, ``(B, M)``, ``(B, M)``; a score of ``inf``
            where a rule ran out of candidates.
    """

    points: Tensor
    energy: Tensor
    score: Tensor


def energy_score(energy: Tensor, calibration: dict) -> Tensor:
    """Energies in calibration units: ``(E - q50) / (q99 - q50)`` with the quantiles of the
    best energies of held-out single-object scenes (0: a typical object; 1: the 99th
    percentile)."""
    try:
        q = calibration["quantiles"]
        q50, q99 = float(q["0.5"]), float(q["0.99"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("counting objects needs the model's energy_calibration (quantiles "
                         "'0.5' and '0.99'); calibrate it (conceptebm calibrate NAME --write) "
                         "or pass an integer k") from None
    return (torch.as_tensor(energy) - q50) / max(q99 - q50, 1e-6)


def counts_at(score: Tensor, threshold: float) -> Tensor:
    """``(B,)`` how many leading candidates of each row of ``score (B, M)`` lie at or under
    ``threshold`` (the count a rule returns with that threshold)."""
    ok = (score <= threshold).long()
    return ok.cumprod(dim=1).sum(dim=1)


def window_masks(points: Tensor, half: float, image_size: int) -> Tensor:
    """``(N, S, S)`` bools: the pixels of the image-space box of a cube of half-size ``half``
    standing on the ground at each position of ``points (N, 2)``, as the default camera
    sees it (:func:`~conceptebm.datasets.scene.project`)."""
    from conceptebm.datasets.scene import DEFAULT_VIEW, project

    n = points.shape[0]
    corners = torch.tensor([[dx, dy, dz] for dx in (-half, half) for dy in (-half, half)
                            for dz in (0.0, 2 * half)], dtype=torch.float32)
    ground = torch.cat((points.detach().float().cpu(), torch.zeros(n, 1)), dim=1)
    pts = ground[:, None, :] + corners[None]  # (N, 8, 3)
    px = project(pts, torch.tensor([DEFAULT_VIEW]).expand(n, 4), image_size)  # (N, 8, 2)
    lo, hi = px.amin(1) - 0.5, px.amax(1) + 0.5  # (N, 2) as (column, row)
    j = torch.arange(image_size, dtype=torch.float32)
    cols = (j[None] >= lo[:, :1]) & (j[None] <= hi[:, :1])  # (N, S)
    rows = (j[None] >= lo[:, 1:]) & (j[None] <= hi[:, 1:])
    return (rows[:, :, None] & cols[:, None, :]).to(points.device)


def _ground(images: Tensor) -> Tensor:
    """Each image's median colour ``(B, C, 1, 1)``: the ground, which covers most of it."""
    return images.flatten(2).median(dim=-1).values[..., None, None]


def _basin_candidates(model, images, calibration, *, max_objects, points, min_separation,
                      steps, lr, chunk_size, progress) -> Candidates:
    maps, grid = scene_energy_maps(model, images, points, chunk_size=chunk_size,
                                   progress=progress)
    basins = energy_basins(maps, grid, max_objects + 1, min_separation=min_separation)
    basins = refine_basins(model, images, basins, steps=steps, lr=lr, chunk_size=chunk_size)
    score = energy_score(basins.energy, calibration)
    pad = torch.arange(basins.energy.shape[1])[None] >= basins.found[:, None]  # repeats
    return Candidates(basins.points, basins.energy, score.masked_fill(pad, float("inf")))


def _explain_candidates(model, images, calibration, *, max_objects, points, min_separation,
                        window, erase, candidates, threshold, exclusion, polish, chunk_size,
                        progress) -> Candidates:
    b, size = images.shape[0], images.shape[-1]
    dim = 2
    ground = _ground(images)  # (B, C, 1, 1)
    work = images.clone()
    rounds = max_objects + 1
    out_p = images.new_full((b, rounds, dim), float("nan"))
    out_e = images.new_full((b, rounds), float("nan"))
    out_s = images.new_full((b, rounds), float("inf"))
    live = torch.ones(b, dtype=torch.bool)
    for r in range(rounds):
        idx = live.nonzero().flatten()
        if idx.numel() == 0:
            break
        maps, grid = scene_energy_maps(model, work[idx], points, chunk_size=chunk_size)
        bas = energy_basins(maps, grid, candidates, min_separation=min_separation)
        cand = bas.points  # (A, m, 2)
        a, m = cand.shape[:2]
        masks = window_masks(cand.reshape(-1, dim), window, size).reshape(a, m, size, size)
        iso = torch.where(masks[:, :, None], work[idx][:, None], ground[idx][:, None])
        est = infer_concept(model, iso.flatten(0, 1), chunk_size=chunk_size)
        value = est.value.reshape(a, m, dim)
        energy = est.energy.reshape(a, m).clone()
        energy[torch.arange(m)[None] >= bas.found[:, None]] = float("inf")  # padding
        if r:  # a candidate on an object already found is no new object
            taken = out_p[idx, :r]  # (A, r, 2)
            near = (torch.cdist(value, taken) < exclusion).any(-1)
            energy[near] = float("inf")
        best = energy.argmin(dim=1)  # (A,)
        rows = torch.arange(a)
        e, p = energy[rows, best], value[rows, best]
        ok = torch.isfinite(e)
        # read it again through a window centred where it was read: a window that cut the
        # object biases the position
        again = window_masks(p, window, size)  # (A, S, S)
        est2 = infer_concept(model, torch.where(again[:, None], work[idx], ground[idx]),
                             chunk_size=chunk_size)
        p = torch.where(ok[:, None], est2.value, p)
        e = torch.where(ok, est2.energy, e)
        out_p[idx[ok], r], out_e[idx[ok], r] = p[ok], e[ok]
        s = energy_score(e, calibration)
        out_s[idx[ok], r] = s[ok]
        erase_mask = window_masks(p, erase, size)  # (A, S, S)
        work[idx] = torch.where(erase_mask[:, None], ground[idx], work[idx])
        stop = ~ok
        if threshold is not None:
            stop = stop | (s > threshold)
        live[idx[stop]] = False
        if progress:
            print(f"count objects: round {r + 1}, {int(live.sum())} images still open")
    if polish:  # each position refined on the whole image, from where its window read it
        ok = torch.isfinite(out_p).all(-1)  # (B, rounds)
        r = map_estimate(concept_energy(model, images), bounds=concept_of(model),
                         init=torch.where(ok[..., None], out_p, torch.zeros_like(out_p)),
                         steps=polish, lr=0.01, chunk_size=chunk_size)
        out_p = torch.where(ok[..., None], r.candidates.detach(), out_p)
    return Candidates(out_p, out_e, out_s)


def object_candidates(model, images: Tensor, *, rule: str | None = None,
                      max_objects: int | None = None, threshold: float | None = None,
                      window: float | None = None, erase: float | None = None,
                      candidates: int | None = None, exclusion: float | None = None,
                      polish: int | None = None, points: int = 33,
                      min_separation: float = 0.3, steps: int = 30, lr: float = 0.02,
                      chunk_size: int = MAP_CHUNK, calibration: dict | None = None,
                      progress: bool = False) -> Candidates:
    """Every candidate object of each image, in the order ``rule`` takes them, with its
    score (see the module docstring); ``threshold`` lets the ``"explain"`` rule stop early
    (``None``: run ``max_objects + 1`` rounds, for fitting a threshold with
    :func:`counts_at`). Settings not given come from :data:`COUNT_RULE`."""
    concept = concept_of(model)
    if concept.is_categorical or concept.dim != 2:
        raise ValueError(f"counting objects needs a 2-D position concept, got "
                         f"{concept.name!r} ({concept.kind}, dim {concept.dim})")
    check_images(images, model)
    cfg = dict(COUNT_RULE)
    rule = cfg["rule"] if rule is None else rule
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    max_objects = cfg["max_objects"] if max_objects is None else max_objects
    if int(max_objects) != max_objects or max_objects < 1:
        raise ValueError(f"max_objects must be an integer >= 1, got {max_objects!r}")
    if calibration is None:
        calibration = (getattr(model, "record", None) or {}).get("energy_calibration")
    energy_score(torch.zeros(1), calibration)  # a clear error without a calibration
    if rule == "basins":
        return _basin_candidates(model, images, calibration, max_objects=int(max_objects),
                                 points=points, min_separation=min_separation, steps=steps,
                                 lr=lr, chunk_size=chunk_size, progress=progress)
    return _explain_candidates(
        model, images, calibration, max_objects=int(max_objects), points=points,
        min_separation=min_separation, window=cfg["window"] if window is None else window,
        erase=cfg["erase"] if erase is None else erase,
        candidates=cfg["candidates"] if candidates is None else candidates,
        exclusion=cfg["exclusion"] if exclusion is None else exclusion,
        polish=cfg["polish"] if polish is None else polish,
        threshold=threshold, chunk_size=chunk_size, progress=progress)


def count_objects(model, images: Tensor, *, threshold: float | None = None,
                  rule: str | None = None, max_objects: int | None = None,
                  calibration: dict | None = None, **kw) -> Objects:
    """How many objects each image holds, and where (see the module docstring).

    Args:
        model: a position model (a 2-D continuous concept) with an ``energy_calibration``
            in its record (every shipped model and every ``train`` run has one).
        images: ``(B, C, H, W)`` in [0, 1].
        threshold, rule, max_objects: the count rule (default :data:`COUNT_RULE`, fitted on
            validation scenes); ``kw``: ``window``, ``erase``, ``candidates``, ``points``,
            ``min_separation``, ``steps``, ``lr``, ``chunk_size``, ``progress``.

    Returns:
        :class:`Objects` (``found == 0``: no object; also for an image unlike those the model
        was trained on, when its record has a familiarity check).
    """
    cfg = dict(COUNT_RULE)
    rule = cfg["rule"] if rule is None else rule
    threshold = cfg["threshold"] if threshold is None else float(threshold)
    if calibration is None:
        calibration = (getattr(model, "record", None) or {}).get("energy_calibration")
    cand = object_candidates(model, images, rule=rule, max_objects=max_objects,
                             threshold=threshold, calibration=calibration, **kw)
    found = counts_at(cand.score, threshold)
    fam = (getattr(model, "record", None) or {}).get("familiarity")
    distance = None
    if fam is not None:  # a photograph or a drawing holds no object the model knows
        distance = familiarity(fam, images.detach().cpu())
        found = found.masked_fill(distance.to(found.device) > 1.0, 0)
    k = max(1, int(found.max()))
    keep = torch.arange(cand.score.shape[1])[None, :k] < found[:, None]  # (B, k)
    nan = float("nan")
    points = cand.points[:, :k].masked_fill(~keep[..., None], nan)
    energy = cand.energy[:, :k].masked_fill(~keep, nan)
    score = cand.score[:, :k].masked_fill(~keep, nan)
    q90 = ((calibration or {}).get("error") or {}).get("0.9")
    used = {**cfg, "rule": rule, "threshold": threshold}
    if max_objects is not None:
        used["max_objects"] = int(max_objects)
    used.update({k2: v for k2, v in kw.items()
                 if k2 in ("window", "erase", "candidates", "exclusion", "polish")})
    return Objects(points, energy, found, score, None if q90 is None else float(q90), used,
                   distance)


def match_positions(found: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """The best one-to-one pairing of ``found (n, dim)`` and ``truth (m, dim)`` (Hungarian,
    least total distance): ``(found rows, truth rows)`` of the ``min(n, m)`` pairs."""
    from scipy.optimize import linear_sum_assignment

    if found.shape[0] == 0 or truth.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    cost = torch.cdist(found.double()[None], truth.double()[None])[0].numpy()
    r, c = linear_sum_assignment(cost)
    return torch.as_tensor(r, dtype=torch.long), torch.as_tensor(c, dtype=torch.long)

"""How a stage's conjunction is weighted, started and sampled: calibration weights, the
choice on validation targets, and generation as chosen."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from conceptebm.checkpoints import atomic_write_text, load_energy
from conceptebm.compose.calibrate import energy_gap, reference_scale
from conceptebm.energies import ScaledConditional
from conceptebm.evaluate import load_judges
from conceptebm.evaluate.metrics import score_generations
from conceptebm.evaluate.quality import generate
from conceptebm.train import match_steps
from paper.experiments.continual.settings import (
    EVAL_SEED,
    SELECT_SEED,
    STAGES,
    STARTS,
    ContinualSettings,
    _ebm_path,
    _stage_dataset,
    eval_targets,
)

__all__ = ["stage_gaps", "calibration_weights", "compose_images", "evaluate_ebm",
           "select_composition", "stage_selection", "stage_images", "frozen_weights",
           "select_denoise"]


def stage_gaps(models, k: int, *, seed: int = 0, n: int = 256) -> list[float]:
    """Energy gaps of stage ``k``'s models, measured on ``n`` real scenes of the stage's
    dataset (:func:`conceptebm.compose.calibrate.energy_gap`; seeded, so reproducible)."""
    images, labels = _stage_dataset(STAGES[k - 1], n, EVAL_SEED + 1000 + seed,
                                    32).batch(torch.arange(n))
    gen = torch.Generator().manual_seed(seed)
    return [energy_gap(m, images, labels[m.concept.name], generator=gen) for m in models]


def _weights(gaps: list[float], power: float) -> list[float]:
    """``(ref / gap_i) ** power``, ``ref`` the gaps' geometric mean."""
    named = {str(i): g for i, g in enumerate(gaps)}
    ref = reference_scale(named, list(named))
    return [(ref / g) ** power for g in gaps]


def calibration_weights(models, k: int, power: float, *, seed: int = 0,
                        n: int = 256) -> list[float]:
    """Weights ``(ref / gap_i) ** power`` of stage ``k``'s models, ``gap_i`` their
    :func:`stage_gaps`, ``ref`` the gaps' geometric mean: what ``conceptebm sample`` does to
    shipped models."""
    return _weights(stage_gaps(models, k, seed=seed, n=n), power)


def compose_images(paths: list[str], targets: dict[str, Tensor], *, seed: int = 0,
                   chunk: int = 250, calibration_power: float | None = None,
                   num_steps: int | None = None, gaps: list[float] | None = None,
                   x0: Tensor | None = None, denoise_steps: int = 0) -> Tensor:
    """One image per target from the conjunction of the EBMs in ``paths`` (in stage order),
    ``(n, 3, H, W)``. With a ``calibration_power`` each EBM is weighted
    (:func:`calibration_weights`; from ``gaps`` when they were measured already, else measured
    here) first; ``num_steps`` overrides the chain length; ``x0`` ``(n, 3, H, W)`` starts the
    chains there (e.g. an earlier stage's generations, :func:`stage_images`) instead of fresh
    noise, and their noise is then drawn from another stream than a chain from noise;
    ``denoise_steps`` ends each chain with that many noise-free steps
    (:func:`conceptebm.infer.langevin`)."""
    models = [load_energy(p).requires_grad_(False) for p in paths]
    if calibration_power:  # 0: every weight is 1, the raw sum
        if gaps is None:
            gaps = stage_gaps(models, len(models), seed=seed)
        weights = _weights(gaps, calibration_power)
        models = [ScaledConditional(m, w).eval() for m, w in zip(models, weights, strict=True)]
    # the newest EBM, ANDed with the earlier ones, each step-matched to the newest one's
    # sampler as in training (conceptebm.train.match_steps)
    net = models[-1]
    frozen = match_steps(models[:-1], net.sampler.step_size)
    c = torch.cat([m.concept.encode(targets[m.concept.name]).reshape(
        len(targets[m.concept.name]), -1) for m in [net, *frozen]], dim=1)  # (n, L_all)
    if x0 is not None and len(x0) != len(c):
        raise ValueError(f"x0 holds {len(x0)} images for {len(c)} targets")
    sampler = net.sampler if num_steps is None else replace(net.sampler, num_steps=num_steps)
    if denoise_steps:
        sampler = replace(sampler, denoise_steps=int(denoise_steps))
    gen = torch.Generator().manual_seed(EVAL_SEED + seed + (0 if x0 is None else len(paths)))
    return torch.cat([generate(net, c[s:s + chunk], sampler, frozen=frozen, generator=gen,
                               x0=None if x0 is None else x0[s:s + chunk])
                      for s in range(0, len(c), chunk)])


def evaluate_ebm(paths: list[str], targets: dict[str, Tensor], judge, *, seed: int = 0,
                 chunk: int = 250, calibration_power: float | None = None,
                 num_steps: int | None = None, gaps: list[float] | None = None,
                 x0: Tensor | None = None) -> tuple[dict, Tensor]:
    """Generate one image per target from the conjunction of the EBMs in ``paths``
    (:func:`compose_images`, same options) and judge the targets' concepts (and ``all_acc``:
    all of them in one image); returns (metrics, images)."""
    images = compose_images(paths, targets, seed=seed, chunk=chunk,
                            calibration_power=calibration_power, num_steps=num_steps,
                            gaps=gaps, x0=x0)
    with torch.no_grad():
        metrics = score_generations(judge, images, targets, joint=True)
    return metrics, images


def _valid_key(power: float, num_steps: int, start: str) -> str:
    return f"p{power:g}.s{num_steps}" + ("" if start == "noise" else f".{start}")


def select_composition(paths: list[str], k: int, judge, *, powers=(0.0, 0.5, 1.0),
                       steps=(60,), starts=("noise",), n: int = 200, seed: int = 0,
                       previous=None) -> tuple[dict, dict]:
    """Choose how stage ``k``'s conjunction is composed and sampled, on validation targets.

    Every calibration power in ``powers`` (each EBM weighted by ``(ref / gap) ** power``,
    :func:`calibration_weights`; 0 is the raw sum), chain length in ``steps`` and start in
    ``starts`` (:data:`STARTS`: ``"noise"``, or ``"previous"``: the chains start from the
    images ``previous(targets)`` returns, stage k - 1's generations for the same targets, so
    stage k refines what the stage before drew) generates for ``n`` validation targets
    (held-out scenes of another seed than the test targets, :data:`SELECT_SEED`) that the
    judges read. The choice is the one with the most generations right on *every* concept at
    once (``all_acc``: what the conjunction asks; per-concept accuracies can each be bought by
    giving up another), the first listed on a tie. Returns
    ``({"power", "steps", "start"}, {(power, steps, start): metrics})``.

    Stage 1 has one EBM, whose weight is 1 whatever the power, and no stage before it: only
    ``steps`` is tried.
    """
    bad = [s for s in starts if s not in STARTS]
    if bad or not starts:
        raise ValueError(f"starts must be among {STARTS}, got {tuple(starts)!r}")
    targets = eval_targets(k, n, seed=SELECT_SEED + seed)
    powers = (0.0,) if len(paths) == 1 else tuple(powers)
    starts = ("noise",) if len(paths) == 1 else tuple(starts)
    if "previous" in starts and previous is None:
        raise ValueError("start 'previous' needs previous(targets): the earlier stage's images")
    x0 = {"noise": None}
    if "previous" in starts:
        x0["previous"] = previous(targets)
    gaps = None  # measured once for every power
    if any(powers):
        gaps = stage_gaps([load_energy(p).requires_grad_(False) for p in paths], k, seed=seed)
    tried = {}
    for start in starts:
        for power in powers:
            for num_steps in steps:
                tried[(power, num_steps, start)], _ = evaluate_ebm(
                    paths, targets, judge, seed=seed, calibration_power=power,
                    num_steps=num_steps, gaps=gaps, x0=x0[start])
    best = max(tried, key=lambda key: tried[key]["all_acc"].value)  # first on a tie
    return {"power": best[0], "steps": best[1], "start": best[2]}, tried


def _selection_path(settings: ContinualSettings, k: int) -> Path:
    return Path(settings.out_dir) / f"stage{k}_selection.json"


def stage_selection(k: int, settings: ContinualSettings, judge=None) -> dict:
    """Stage ``k``'s composition chosen on validation (:func:`select_composition` with the
    settings' grid): ``{"power", "steps", "start", "valid": {"p<power>.s<steps>[.previous]":
    {concept: acc}}}``; the ``"previous"`` start continues the chains of stage ``k - 1``'s
    own choice (:func:`stage_images`). Kept next to the stage checkpoints
    (``stage<k>_selection.json``) and reused while the checkpoints, the shipped judges and the
    grid are the same; computed and written otherwise. ``judge``: the shipped judges, if the
    caller has them loaded."""
    from conceptebm.evaluate.checkpoint import SHIPPED

    def digest(path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

    paths = [str(_ebm_path(settings, j)) for j in range(1, k + 1)]
    grid = {"powers": list(settings.select_powers or (0.0,)),
            "steps": list(settings.select_steps), "starts": list(settings.select_starts),
            "n": settings.n_select, "seed": settings.seed,
            "checkpoints": [digest(q) for q in paths],
            "judges": digest(SHIPPED.with_suffix(".safetensors"))}
    path = _selection_path(settings, k)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("grid") == grid:
            return saved
    judge = judge or load_judges()
    chosen, tried = select_composition(
        paths, k, judge, powers=grid["powers"], steps=grid["steps"], starts=grid["starts"],
        n=settings.n_select, seed=settings.seed,
        previous=(lambda t: stage_images(k - 1, settings, t, judge)) if k > 1 else None)
    out = {**chosen, "grid": grid,
           "valid": {_valid_key(*key): {n: float(v.value) for n, v in m.items()}
                     for key, m in tried.items()}}
    atomic_write_text(path, json.dumps(out, indent=2, sort_keys=True))
    return out


def stage_images(k: int, settings: ContinualSettings, targets: dict[str, Tensor],
                 judge=None, *, denoise_steps: int = 0, x0: Tensor | None = None) -> Tensor:
    """Stage ``k``'s generations for ``targets`` (their stage-``k`` concepts; others are
    ignored), composed and sampled as chosen on validation (:func:`stage_selection`): from
    noise, or, with the ``"previous"`` start, continuing stage ``k - 1``'s own generations
    for the same targets (recursively, as that stage chose). ``denoise_steps`` ends stage
    ``k``'s own chains (not the earlier stages' it continues) with noise-free steps; ``x0``:
    stage ``k - 1``'s generations for these targets when they were made already."""
    chosen = stage_selection(k, settings, judge)
    if chosen["start"] != "previous":
        x0 = None
    elif x0 is None:
        x0 = stage_images(k - 1, settings, targets, judge)
    return compose_images([str(_ebm_path(settings, j)) for j in range(1, k + 1)], targets,
                          seed=settings.seed, calibration_power=chosen["power"],
                          num_steps=chosen["steps"], x0=x0, denoise_steps=denoise_steps)


def select_denoise(k: int, settings: ContinualSettings, judge, *,
                   candidates=(0, 5, 20)) -> dict:
    """The number of noise-free steps that end stage ``k``'s chains (composed as chosen,
    :func:`stage_images`), chosen on the validation targets by the lowest Fréchet distance to
    real scenes in the judges' features (:func:`conceptebm.evaluate.realism`; the targets'
    own renders as the reference, the next ``n_select`` real scenes as the floor). Returns
    ``{"denoise_steps": d, "valid": {d: {"fid", "all", <concept>...}}, "fid_floor"}``."""
    from conceptebm.evaluate.realism import realism

    n = settings.n_select
    seed = EVAL_SEED + SELECT_SEED + settings.seed
    targets = eval_targets(k, n, scene_seed=seed)
    real, _ = _stage_dataset(STAGES[k - 1], 2 * n, seed, settings.image_size).batch(
        torch.arange(2 * n))
    chosen = stage_selection(k, settings, judge)
    x0 = stage_images(k - 1, settings, targets, judge) if chosen["start"] == "previous" else None
    valid, floor = {}, None
    for d in candidates:
        images = stage_images(k, settings, targets, judge, denoise_steps=d, x0=x0)
        r = realism(images, real, judges=judge)
        with torch.no_grad():
            m = score_generations(judge, images, targets, joint=True)
        valid[int(d)] = {"fid": r["fid"], **{name.removesuffix("_acc"): float(v.value)
                                             for name, v in m.items() if name.endswith("_acc")}}
        floor = r["fid_floor"]
    best = min(valid, key=lambda d: (valid[d]["fid"], d))
    return {"denoise_steps": best, "valid": valid, "fid_floor": floor}


def frozen_weights(k: int, settings: ContinualSettings) -> list[float]:
    """The weights of stage ``k``'s frozen EBMs in its training chain: the calibration
    weights (:func:`calibration_weights`) of the power stage ``k - 1`` chose on validation
    (:func:`stage_selection`), so the new EBM learns beside the composition that generation
    then uses. Stage 2 has one frozen EBM: weight 1 (a single model is not reweighted)."""
    if k <= 2:
        return [1.0] * (k - 1)
    power = stage_selection(k - 1, settings)["power"]
    if not power:
        return [1.0] * (k - 1)
    models = [load_energy(_ebm_path(settings, j)).requires_grad_(False) for j in range(1, k)]
    return calibration_weights(models, k - 1, power, seed=settings.seed)

"""How good is a trained concept EBM? Judge its generations; infer concepts with it.

* :func:`generate`: images from fresh noise with the engine's Langevin sampler
  (:func:`conceptebm.infer.langevin`) under :class:`~conceptebm.infer.settings.SamplerSettings`.
* :func:`generation_quality`: generate one image per target concept value and score what the
  judges read off them (:func:`~conceptebm.evaluate.metrics.score_predictions`: the metrics
  follow from each concept's kind, dimension and declared tolerances, with standard errors).
* :func:`inference_quality`: MAP concept inference on real images with the EBM as the
  energy of c (grid, then Adam refinement; enumeration for categories), scored the same way,
  under a :class:`~conceptebm.infer.MAPSettings` (default: the model's own,
  :func:`map_settings_for`).
* :func:`selection_score`: one "higher is better" number per concept, used to keep the best
  checkpoint (training is not monotonic: a later snapshot can generate worse than an
  earlier one).

Example:
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.evaluate.metrics import Metric
    >>> selection_score({"color_acc": Metric(0.9, 0.03)},
    ...                 Concept.categorical("color", ["red", "green"]))
    0.9
    >>> selection_score({"size_mae": Metric(0.01, 0.001)}, Concept.continuous("size", 1, 0.2, 0.4))
    0.95
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from conceptebm.compat import deprecated_keywords
from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy, conditioned_energy
from conceptebm.evaluate.metrics import Metric, object_present, score_predictions
from conceptebm.infer import initial_samples, langevin
from conceptebm.infer.settings import DEFAULT, DEFAULT_MAP, MAP_GRID, MAPSettings, SamplerSettings

__all__ = ["DEFAULT_SAMPLER", "generate", "generation_quality", "inference_quality",
           "selection_score", "sampler_settings", "map_settings_for", "evaluation_grid"]

#: Kept for ``conceptebm.train.DEFAULT_SAMPLER`` (its old home): the test-time sampler as a
#: plain dict without ``bounds``. The one definition is :data:`conceptebm.infer.settings.DEFAULT`
#: (40 steps, step 100, noise 0.005, "smooth"); new code passes :class:`SamplerSettings`.
DEFAULT_SAMPLER = {k: v for k, v in DEFAULT.kwargs().items() if k != "bounds"}


def sampler_settings(sampler: Mapping | None) -> SamplerSettings:
    """``sampler`` as :class:`SamplerSettings`: ``None`` is the default, a dict of langevin
    keywords fills the missing ones from the default."""
    if sampler is None:
        return DEFAULT
    if isinstance(sampler, SamplerSettings):
        return sampler
    return SamplerSettings.from_dict(dict(sampler))


def generate(net: ConditionalEnergy, c: Tensor, sampler: Mapping | None = None, *,
             frozen: Sequence[ConditionalEnergy] = (), generator=None,
             x0: Tensor | None = None,
             image_shape: tuple[int, int, int] | None = None) -> Tensor:
    """Images ``(B, C, H, W)`` in the settings' bounds sampled from ``E(x | c)`` from fresh
    noise (or from ``x0``, to continue chains); ``c`` is ``(B, L)`` (with the ``frozen``
    energies' encodings concatenated). The one generation path of a net and its labels: the
    training loop's negatives (:func:`conceptebm.train.sample_images`) and every evaluation
    run through it.

    ``sampler``: the settings (``None``: the net's own ``.sampler``, else the default);
    ``image_shape``: ``(C, H, W)`` for a net that does not say its image size.

    Example:
        >>> from conceptebm.energies.nets import ConvEnergyNet
        >>> net = ConvEnergyNet(Concept.continuous("position", dim=2), image_size=16, width=4)
        >>> x = generate(net, torch.zeros(3, 2), {"num_steps": 2})
        >>> x.shape, bool(((x >= 0) & (x <= 1)).all())
        (torch.Size([3, 3, 16, 16]), True)
    """
    s = sampler_settings(sampler if sampler is not None else getattr(net, "sampler", None))
    if x0 is None:
        if image_shape is None:
            size = getattr(net, "image_size", None)
            if size is None:
                raise ValueError("pass x0 or image_shape: the net does not say its image size")
            image_shape = (getattr(net, "channels", 3), size, size)
        x0 = initial_samples((c.shape[0], *image_shape), init=s.init, bounds=s.bounds,
                             generator=generator, device=c.device)  # (B, C, H, W)
    energy = conditioned_energy(net, c.to(x0), frozen)
    return langevin(energy, x0, num_steps=s.num_steps, step_size=s.step_size,
                    noise_scale=s.noise_scale, bounds=s.bounds, generator=generator,
                    denoise_steps=s.denoise_steps)


def generation_quality(net: ConditionalEnergy, judge, targets, *, sampler: Mapping | None = None,
                       generator=None, chunk: int = 250, frozen: Sequence = (),
                       frozen_c: Tensor | None = None, return_images: bool = False,
                       concept: Concept | None = None):
    """Generate for each target value and score the judge's reading of the images.

    Args:
        net: the conditional energy; ``net.concept.name`` must be a concept the judge reads.
        judge: has ``predict(images) -> {name: prediction}`` and ``concepts`` (the concept
            declarations the scores follow: kind, dimension, tolerances).
        targets: raw labels as a dataset gives them, ``(n, dim)`` floats or ``(n,)`` indices.
        sampler: :class:`SamplerSettings` or a dict of its fields (default
            :data:`conceptebm.infer.settings.DEFAULT`).
        frozen, frozen_c: extra (frozen) energies and their ``(n, L')`` encodings, ANDed in.
        concept: the declaration to score by (default: the judge's; pass the dataset's to
            score with its tolerances).
    Returns:
        ``{metric name: Metric}`` (and the images if ``return_images``), with
        ``object_rate``: the share of generations that show an object at all
        (:func:`~conceptebm.evaluate.object_present`); accuracies count blank ones as wrong.
    """
    name = net.concept.name
    if name not in judge.concepts:
        raise ValueError(f"the judge reads {sorted(judge.concepts)}, not {name!r}")
    if concept is not None and concept.name != name:
        raise ValueError(f"concept {concept.name!r} is not the net's concept {name!r}; pass "
                         f"the declaration of {name!r}")
    scoring = {**judge.concepts, name: concept or judge.concepts[name]}
    settings = sampler_settings(sampler)
    device = next(net.parameters()).device
    c = net.concept.encode(targets, device=device)  # (n, L)
    if c.dim() == 1:
        c = c[None]
    if frozen_c is not None:
        c = torch.cat([c, frozen_c.to(c)], dim=1)
    images = [generate(net, c[s:s + chunk], settings, frozen=frozen, generator=generator)
              for s in range(0, c.shape[0], chunk)]
    images = torch.cat(images)  # (n, C, H, W)
    with torch.no_grad():
        pred = judge.predict(images)
    # a blank generation is a failure, whatever the judges read off it
    metrics = score_predictions(pred, {name: targets}, scoring, present=object_present(images))
    return (metrics, images) if return_images else metrics


def map_settings_for(net, map_settings: MAPSettings | Mapping | None = None, **changes
                     ) -> MAPSettings:
    """The MAP settings an evaluation of ``net`` runs with: ``map_settings`` (a
    :class:`~conceptebm.infer.MAPSettings` or a dict of its fields), else the net's own
    ``.map_settings`` (from its checkpoint's record), else
    :data:`~conceptebm.infer.DEFAULT_MAP`; ``changes`` (``None`` values ignored) replace
    fields of that.

    Example:
        >>> from conceptebm.energies.nets import ConvEnergyNet
        >>> net = ConvEnergyNet(Concept.continuous("position", dim=2), image_size=16, width=4)
        >>> map_settings_for(net).steps, map_settings_for(net, {"grid": 5}, steps=2).grid
        (60, 5)
    """
    if map_settings is None:
        map_settings = getattr(net, "map_settings", None) or DEFAULT_MAP
    elif not isinstance(map_settings, MAPSettings):
        if not isinstance(map_settings, Mapping):
            raise TypeError(f"map_settings must be a conceptebm.infer.MAPSettings, a dict of "
                            f"its fields or None, got {type(map_settings).__name__}")
        map_settings = MAPSettings.from_dict(map_settings)
    return map_settings.replace(**changes)


def evaluation_grid(settings: MAPSettings, concept: Concept) -> int:
    """Start-grid points per coordinate an evaluation searches: ``settings.grid``, or
    :data:`~conceptebm.infer.settings.MAP_GRID` (17) for every continuous concept when it is
    ``None`` (the evaluation recipe, unlike :func:`~conceptebm.scenes.infer_concept`, which
    takes the concept's own default), at most 101 for a 1-d concept."""
    grid = MAP_GRID if settings.grid is None else settings.grid
    return min(grid, 101) if concept.dim == 1 else grid


_OLD_MAP = "pass map_settings=MAPSettings(grid=..., steps=..., chunk_size=...)"


def inference_quality(net: ConditionalEnergy, images: Tensor, targets, *,
                      map_settings: MAPSettings | Mapping | None = None,
                      concept: Concept | None = None, grid: int | None = None,
                      steps: int | None = None, chunk: int | None = None) -> dict[str, Metric]:
    """MAP inference of ``net.concept`` on real ``images (n, C, H, W)`` against ``targets``.

    Continuous concepts: :func:`~conceptebm.infer.map_estimate` from the best point of a
    start grid (:func:`evaluation_grid`), refined with ``map_settings.steps`` projected
    steps. Categorical: exact enumeration (:func:`~conceptebm.infer.map_categorical`).
    ``map_settings``: a :class:`~conceptebm.infer.MAPSettings` (default: the net's own,
    :func:`map_settings_for`). The estimates are scored by
    :func:`~conceptebm.evaluate.metrics.score_predictions` against ``concept`` (default
    ``net.concept``; pass the dataset's declaration to score with its tolerances):
    ``{"<name>_mae": ...}`` plus accuracies within tolerance, or ``{"<name>_acc": ...}``.

    ``grid``, ``steps``, ``chunk``: deprecated (removed in 0.3), replace those fields of the
    settings; pass ``map_settings`` instead.
    """
    from conceptebm.infer import concept_energy, map_categorical, map_estimate

    old = deprecated_keywords("conceptebm.evaluate.inference_quality",
                              {"grid": grid, "steps": steps, "chunk": chunk}, _OLD_MAP)
    settings = map_settings_for(net, map_settings, grid=old.get("grid"),
                                steps=old.get("steps"), chunk_size=old.get("chunk"))
    concept = net.concept if concept is None else concept
    if concept.name != net.concept.name:
        raise ValueError(f"concept {concept.name!r} is not the net's concept "
                         f"{net.concept.name!r}; pass the declaration of {net.concept.name!r}")
    if concept.is_categorical:
        with torch.no_grad():
            pred = map_categorical(net, images, chunk_size=settings.chunk_size).index  # (n,)
    else:
        res = map_estimate(concept_energy(net, images), grid=evaluation_grid(settings, concept),
                           steps=settings.steps, optimizer=settings.optimizer, lr=settings.lr,
                           restarts=settings.restarts, chunk_size=settings.chunk_size)
        pred = res.c.detach()  # (n, dim)
    return score_predictions({concept.name: pred}, {concept.name: targets},
                             {concept.name: concept})


def selection_score(metrics: Mapping[str, Metric], concept: Concept) -> float:
    """Higher is better: class accuracy, or ``1 - MAE / range`` for continuous concepts."""
    if concept.is_categorical:
        return float(metrics[f"{concept.name}_acc"].value)
    return 1.0 - float(metrics[f"{concept.name}_mae"].value) / (concept.high - concept.low)

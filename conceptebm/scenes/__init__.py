"""Applications of the engine to images: concept inference, multi-view estimation, plots.

Everything here reads images with a conditional energy ``E(x|c)`` through the engine
(:mod:`conceptebm.infer`): MAP over concepts (:func:`infer_concept`), energy maps and their
basins (object finding, Figure 12), multi-view posteriors (eq. 11, Figure 11) and the figures
that show them, and the checks that say when an estimate means nothing (:func:`check_estimates`:
no object found, views that disagree). The engine itself knows nothing of images or scenes.
"""

from conceptebm.scenes.checks import EstimateCheck, check_estimates
from conceptebm.scenes.inference import (
    Basins,
    ConceptEstimate,
    check_images,
    energy_basins,
    infer_concept,
    locate_objects,
    map_correlation,
    match_objects,
    refine_basins,
    scene_energy_maps,
)
from conceptebm.scenes.multiview import (
    GridPosterior,
    Posterior,
    coordinate_names,
    equal_tailed_interval,
    fit_temperature,
    grid_posterior,
    interval_coverage,
    multiview_model,
    multiview_posterior,
    multiview_posteriors,
    posterior_temperature,
)
from conceptebm.scenes.objects import Objects, count_objects, match_positions
from conceptebm.scenes.plots import (
    image_and_map_figure,
    plot_energy_curve,
    plot_energy_map,
    show_image,
)

#: What a user needs; the rest stays importable from its module.
__all__ = [
    "infer_concept",
    "ConceptEstimate",
    "check_estimates",
    "scene_energy_maps",
    "energy_basins",
    "refine_basins",
    "locate_objects",
    "count_objects",
    "Objects",
    "match_objects",
    "match_positions",
    "Basins",
    "multiview_model",
    "multiview_posterior",
    "multiview_posteriors",
    "posterior_temperature",
    "Posterior",
    "grid_posterior",
    "GridPosterior",
    "fit_temperature",
    "interval_coverage",
    "plot_energy_map",
    "image_and_map_figure",
]

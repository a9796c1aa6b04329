"""The inference engine: one set of samplers and optimizers for generation and concept inference.

Generation moves an image batch to low energy; concept inference moves a concept parameter.
Both are Langevin / MALA chains (``langevin``, ``mala``, ``run_chain`` over the pure steps in
``samplers``) or optimizers over the same energies.
"""

from conceptebm.infer.chain import ChainResult, langevin, mala, run_chain
from conceptebm.infer.energy_map import box_bounds, concept_grid, energy_map
from conceptebm.infer.init import initial_samples, smooth_noise
from conceptebm.infer.multiview import (
    GridPosterior,
    Posterior,
    fit_temperature,
    grid_posterior,
    interval_coverage,
    multiview_model,
    multiview_posterior,
)
from conceptebm.infer.optimize import (
    CategoricalMAP,
    ConceptEnergy,
    MAPResult,
    concept_energy,
    map_categorical,
    map_estimate,
)
from conceptebm.infer.pyro_glue import (
    LangevinKernel,
    MALAKernel,
    ModelPotential,
    PyroMAP,
    energy_factor,
    nuts_posterior,
    pyro_map,
    run_kernel,
)
from conceptebm.infer.samplers import (
    LangevinState,
    StepInfo,
    energy_and_grad,
    init_state,
    langevin_step,
    mala_step,
    ula_step,
)
from conceptebm.infer.scene_inference import (
    Basins,
    ConceptEstimate,
    energy_basins,
    infer_concept,
    locate_objects,
    scene_energy_maps,
)

__all__ = [
    "langevin",
    "mala",
    "run_chain",
    "ChainResult",
    "LangevinState",
    "StepInfo",
    "energy_and_grad",
    "init_state",
    "langevin_step",
    "ula_step",
    "mala_step",
    "initial_samples",
    "smooth_noise",
    "map_estimate",
    "MAPResult",
    "concept_energy",
    "ConceptEnergy",
    "map_categorical",
    "CategoricalMAP",
    "energy_map",
    "concept_grid",
    "box_bounds",
    "energy_factor",
    "ModelPotential",
    "LangevinKernel",
    "MALAKernel",
    "run_kernel",
    "pyro_map",
    "PyroMAP",
    "nuts_posterior",
    "infer_concept",
    "ConceptEstimate",
    "scene_energy_maps",
    "energy_basins",
    "locate_objects",
    "Basins",
    "multiview_model",
    "multiview_posterior",
    "Posterior",
    "grid_posterior",
    "GridPosterior",
    "fit_temperature",
    "interval_coverage",
]

"""The inference engine: one set of samplers and optimizers for generation and concept inference.

Generation moves an image batch to low energy; concept inference moves a concept parameter.
Both are Langevin / MALA chains or optimizers over the same energies:

* ``samplers``: the pure steps, ``step(state, energy, ...) -> (state, info)`` (ULA, the
  decoupled training form, MALA with a per-chain accept test);
* ``adapt``: per-chain step-size adaptation as a pure state and update (used by ``mala`` and
  the Pyro ``MALAKernel``);
* ``chain``: the driver ``run_chain`` and the convenience calls ``langevin`` and ``mala``;
* ``optimize``: MAP of concept values, ``map_estimate`` on a ``ConceptProblem`` (made by
  ``concept_energy`` from a conditional energy and observed images), ``map_categorical``;
* ``energy_map``: energies over a grid of concept values, in bounded-memory chunks;
* ``init``, ``settings``: initial samples, and ``SamplerSettings``, the one sampler-settings
  type;
* ``pyro``: energy factors in Pyro models, model potentials, MCMC kernels, MAP and NUTS.

The engine knows energies and tensors only: it imports nothing from datasets, scenes, training,
evaluation, composition, the shipped models or the command line (``tests/test_layers.py``
keeps it so). The scene applications built on it live in :mod:`conceptebm.scenes`;
``infer.infer_concept`` and the other scene names below are deprecated aliases of those: they
resolve on first use (importing the engine never imports the applications), warn, and go in
conceptebm 0.3.
"""

from conceptebm.compat import moved_attribute
from conceptebm.infer import pyro
from conceptebm.infer.chain import ChainResult, langevin, mala, run_chain
from conceptebm.infer.energy_map import concept_grid, energy_map
from conceptebm.infer.init import initial_samples
from conceptebm.infer.optimize import (
    ConceptProblem,
    MAPResult,
    concept_energy,
    map_categorical,
    map_estimate,
)
from conceptebm.infer.samplers import (
    LangevinState,
    StepInfo,
    init_state,
    langevin_step,
    mala_step,
    ula_step,
)
from conceptebm.infer.settings import DEFAULT as DEFAULT_SETTINGS
from conceptebm.infer.settings import (
    DEFAULT_MAP,
    IMAGE_BOUNDS,
    MAPSettings,
    SamplerSettings,
    settings_of,
)

#: What a user of the engine needs, in the order the API reference shows it: the samplers and
#: their settings, MAP inference and energy maps, the pure steps for a loop of one's own.
__all__ = [
    "langevin",
    "mala",
    "run_chain",
    "ChainResult",
    "SamplerSettings",
    "DEFAULT_SETTINGS",
    "settings_of",
    "initial_samples",
    "IMAGE_BOUNDS",
    "map_estimate",
    "MAPResult",
    "MAPSettings",
    "DEFAULT_MAP",
    "concept_energy",
    "ConceptProblem",
    "map_categorical",
    "energy_map",
    "concept_grid",
    "ula_step",
    "langevin_step",
    "mala_step",
    "init_state",
    "LangevinState",
    "StepInfo",
    "pyro",
]

#: Names this package re-exported before the API was curated: ``{name: their module}``. They
#: resolve from here with a DeprecationWarning until conceptebm 0.3.
MOVED = {
    "StepSizeState": "conceptebm.infer.adapt",
    "init_step_size": "conceptebm.infer.adapt",
    "initial_log_step": "conceptebm.infer.adapt",
    "update_step_size": "conceptebm.infer.adapt",
    "AdaptiveState": "conceptebm.infer.chain",
    "box_bounds": "conceptebm.infer.energy_map",
    "candidate_energies": "conceptebm.infer.energy_map",
    "image_features": "conceptebm.infer.energy_map",
    "smooth_noise": "conceptebm.infer.init",
    "CategoricalMAP": "conceptebm.infer.optimize",
    "ConceptEnergy": "conceptebm.infer.optimize",
    "energy_and_grad": "conceptebm.infer.samplers",
    "energy_factor": "conceptebm.infer.pyro",
    "ModelPotential": "conceptebm.infer.pyro",
    "LangevinKernel": "conceptebm.infer.pyro",
    "MALAKernel": "conceptebm.infer.pyro",
    "run_kernel": "conceptebm.infer.pyro",
    "pyro_map": "conceptebm.infer.pyro",
    "PyroMAP": "conceptebm.infer.pyro",
    "nuts_posterior": "conceptebm.infer.pyro",
}

#: Scene applications kept reachable as ``conceptebm.infer.<name>`` (contract aliases).
_SCENE_ALIASES = (
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
)
def __getattr__(name: str):
    # PEP 562: the old aliases of the scene applications resolve lazily (the engine stays
    # importable on its own) and warn: they are conceptebm.scenes names.
    if name in _SCENE_ALIASES:
        import conceptebm.scenes

        return moved_attribute(__name__, name, {name: conceptebm.scenes.__name__})
    return moved_attribute(__name__, name, MOVED)

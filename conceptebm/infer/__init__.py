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

from conceptebm.infer.adapt import (
    StepSizeState,
    init_step_size,
    initial_log_step,
    update_step_size,
)
from conceptebm.infer.chain import AdaptiveState, ChainResult, langevin, mala, run_chain
from conceptebm.infer.energy_map import (
    box_bounds,
    candidate_energies,
    concept_grid,
    energy_map,
    image_features,
)
from conceptebm.infer.init import initial_samples, smooth_noise
from conceptebm.infer.optimize import (
    CategoricalMAP,
    ConceptEnergy,
    ConceptProblem,
    MAPResult,
    concept_energy,
    map_categorical,
    map_estimate,
)
from conceptebm.infer.pyro import (
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
from conceptebm.infer.settings import DEFAULT as DEFAULT_SETTINGS
from conceptebm.infer.settings import (
    DEFAULT_MAP,
    IMAGE_BOUNDS,
    MAPSettings,
    SamplerSettings,
    settings_of,
)

__all__ = [
    "settings_of",
    "MAPSettings",
    "DEFAULT_MAP",
    "langevin",
    "mala",
    "run_chain",
    "ChainResult",
    "AdaptiveState",
    "StepSizeState",
    "init_step_size",
    "update_step_size",
    "initial_log_step",
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
    "ConceptProblem",
    "ConceptEnergy",
    "map_categorical",
    "CategoricalMAP",
    "energy_map",
    "concept_grid",
    "box_bounds",
    "image_features",
    "candidate_energies",
    "energy_factor",
    "ModelPotential",
    "LangevinKernel",
    "MALAKernel",
    "run_kernel",
    "pyro_map",
    "PyroMAP",
    "nuts_posterior",
    "SamplerSettings",
    "DEFAULT_SETTINGS",
    "IMAGE_BOUNDS",
]

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
#: When the scene aliases go.
REMOVED_IN = "0.3"


def __getattr__(name: str):
    # PEP 562: the old aliases of the scene applications resolve lazily (the engine stays
    # importable on its own) and warn: they are conceptebm.scenes names.
    if name in _SCENE_ALIASES:
        import warnings

        import conceptebm.scenes

        warnings.warn(f"conceptebm.infer.{name} is deprecated and will be removed in conceptebm "
                      f"{REMOVED_IN}; import it from conceptebm.scenes", DeprecationWarning,
                      stacklevel=2)
        return getattr(conceptebm.scenes, name)
    raise AttributeError(f"module 'conceptebm.infer' has no attribute {name!r}")

"""Contrastive-divergence training of concept EBMs (paper eq. 2) and its machinery.

``train(TrainConfig(...))`` runs the loop (:mod:`~conceptebm.train.loop`); the pieces are
public for reuse and tests: the objective (loss terms composed into :class:`CDObjective` or
:class:`ContrastiveObjective`, ``TrainConfig.objective``), the replay buffer, checkpoints
(safetensors + JSON, atomic, resumable), evaluation with the judges, continual learning with
frozen EBMs, and the DDP helpers. ``conceptebm train`` is the command line
(:mod:`~conceptebm.cli.train`).

Example:
    >>> from conceptebm.train import TrainConfig
    >>> TrainConfig(concept="color").sampler_steps
    20
"""

from conceptebm.checkpoints import (
    Checkpoint,
    CheckpointError,
    export_weights,
    load_checkpoint,
    load_energy,
    save_checkpoint,
)
from conceptebm.evaluate.quality import (
    DEFAULT_SAMPLER,
    generation_quality,
    inference_quality,
    selection_score,
)
from conceptebm.train.buffer import ReplayBuffer
from conceptebm.train.config import (
    CONTRASTIVE_RECIPE,
    LABEL_POLICIES,
    TrainConfig,
    make_config,
    smoke_config,
)
from conceptebm.train.continual import freeze, load_frozen, match_steps
from conceptebm.train.loop import TrainingDiverged, TrainResult, lr_at, train, training_seed
from conceptebm.train.loss import (
    cd_loss,
    concept_contrastive_loss,
    image_contrastive_loss,
    near_values,
    wrong_concept_values,
)
from conceptebm.train.objective import (
    OBJECTIVES,
    CDObjective,
    ContrastiveObjective,
    LossTerm,
    Objective,
    Sum,
    make_objective,
)
from conceptebm.train.sampling import conditioned_energy, fresh_noise, sample_images

__all__ = [
    "train",
    "TrainConfig",
    "smoke_config",
    "make_config",
    "CONTRASTIVE_RECIPE",
    "TrainResult",
    "TrainingDiverged",
    "lr_at",
    "training_seed",
    "LABEL_POLICIES",
    "ReplayBuffer",
    "CDObjective",
    "ContrastiveObjective",
    "Objective",
    "LossTerm",
    "Sum",
    "OBJECTIVES",
    "make_objective",
    "near_values",
    "cd_loss",
    "concept_contrastive_loss",
    "image_contrastive_loss",
    "wrong_concept_values",
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "export_weights",
    "load_checkpoint",
    "load_energy",
    "freeze",
    "load_frozen",
    "match_steps",
    "DEFAULT_SAMPLER",
    "generation_quality",
    "inference_quality",
    "selection_score",
    "conditioned_energy",
    "fresh_noise",
    "sample_images",
]

"""Contrastive-divergence training of concept EBMs (paper eq. 2) and its machinery.

``train(TrainConfig(...))`` runs the loop (:mod:`~conceptebm.train.loop`); the pieces are
public for reuse and tests: the loss (:class:`CDObjective`), the replay buffer, checkpoints
(safetensors + JSON, atomic, resumable), evaluation with the judges, continual learning with
frozen EBMs, and the DDP helpers. ``conceptebm train`` is the command line
(:mod:`~conceptebm.cli.train`).

Example:
    >>> from conceptebm.train import TrainConfig
    >>> TrainConfig(concept="color").sampler_steps
    20
"""

from conceptebm.train.buffer import ReplayBuffer
from conceptebm.checkpoints import (
    Checkpoint,
    CheckpointError,
    export_weights,
    load_checkpoint,
    load_energy,
    save_checkpoint,
)
from conceptebm.train.config import LABEL_POLICIES, TrainConfig, smoke_config
from conceptebm.train.continual import freeze, load_frozen
from conceptebm.train.evaluation import (
    DEFAULT_SAMPLER,
    generation_quality,
    inference_quality,
    selection_score,
)
from conceptebm.train.loop import TrainingDiverged, TrainResult, lr_at, train
from conceptebm.train.loss import (
    CDObjective,
    cd_loss,
    concept_contrastive_loss,
    image_contrastive_loss,
    wrong_concept_values,
)
from conceptebm.train.sampling import conditioned_energy, fresh_noise, sample_images

__all__ = [
    "train",
    "TrainConfig",
    "smoke_config",
    "TrainResult",
    "TrainingDiverged",
    "lr_at",
    "LABEL_POLICIES",
    "ReplayBuffer",
    "CDObjective",
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
    "DEFAULT_SAMPLER",
    "generation_quality",
    "inference_quality",
    "selection_score",
    "conditioned_energy",
    "fresh_noise",
    "sample_images",
]

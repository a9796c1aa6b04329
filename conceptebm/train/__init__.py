"""Contrastive-divergence training of concept EBMs (paper eq. 2) and its machinery.

``train(TrainConfig(...))`` runs the loop (:mod:`~conceptebm.train.loop`); the pieces are
public for reuse and tests: the objective (loss terms composed into :class:`CDObjective` or
:class:`ContrastiveObjective`, ``TrainConfig.objective``), the replay buffer, continual learning
with frozen EBMs, and the DDP helpers. Checkpoints are :mod:`conceptebm.checkpoints`, scoring is
:mod:`conceptebm.evaluate` (their old aliases here warn and go in conceptebm 0.3).
``conceptebm train`` is the command line (:mod:`~conceptebm.cli.train`).

Example:
    >>> from conceptebm.train import TrainConfig
    >>> TrainConfig(concept="color").sampler_steps
    20
"""

from conceptebm.compat import moved_attribute
from conceptebm.train.buffer import ReplayBuffer
from conceptebm.train.config import (
    CONTRASTIVE_RECIPE,
    LABEL_POLICIES,
    TrainConfig,
    make_config,
    smoke_config,
)
from conceptebm.train.continual import freeze, load_frozen, match_steps
from conceptebm.train.folder import FolderSpec, folder_data, train_on_folder
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

#: What a user needs; the rest stays importable from its module.
__all__ = [
    "train",
    "train_on_folder",
    "FolderSpec",
    "folder_data",
    "TrainConfig",
    "make_config",
    "smoke_config",
    "CONTRASTIVE_RECIPE",
    "TrainResult",
    "TrainingDiverged",
    "ReplayBuffer",
    "make_objective",
    "CDObjective",
    "ContrastiveObjective",
    "LossTerm",
    "load_frozen",
    "sample_images",
]


#: Names that lived here before they moved to their own layers: ``{name: new home}``. They still
#: resolve, with a DeprecationWarning, until conceptebm 0.3.
MOVED = {
    "Checkpoint": "conceptebm.checkpoints",
    "CheckpointError": "conceptebm.checkpoints",
    "export_weights": "conceptebm.checkpoints",
    "load_checkpoint": "conceptebm.checkpoints",
    "load_energy": "conceptebm.checkpoints",
    "save_checkpoint": "conceptebm.checkpoints",
    "DEFAULT_SAMPLER": "conceptebm.evaluate.quality",
    "generation_quality": "conceptebm.evaluate",
    "inference_quality": "conceptebm.evaluate",
    "selection_score": "conceptebm.evaluate",
}


def __getattr__(name: str):
    return moved_attribute(__name__, name, MOVED)

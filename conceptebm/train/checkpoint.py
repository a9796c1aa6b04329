"""Deprecated: the names of :mod:`conceptebm.checkpoints`, re-exported; removed in conceptebm 0.3.

The writer and reader live below ``train`` (``conceptebm/checkpoints.py``) so that evaluation,
``pretrained`` and ``compose`` use the same atomic format without importing the training
package. Importing this module warns; import from :mod:`conceptebm.checkpoints`.
"""

import warnings

from conceptebm.checkpoints import (
    FORMAT,
    Checkpoint,
    CheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    export_weights,
    load_checkpoint,
    load_energy,
    load_state,
    save_checkpoint,
)

__all__ = ["FORMAT", "Checkpoint", "save_checkpoint", "load_checkpoint", "load_energy",
           "load_state", "export_weights", "atomic_write_text", "atomic_write_bytes",
           "CheckpointError"]

warnings.warn("conceptebm.train.checkpoint is deprecated and will be removed in conceptebm 0.3; "
              "import from conceptebm.checkpoints", DeprecationWarning, stacklevel=2)

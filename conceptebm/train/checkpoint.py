"""Checkpoint I/O for training: the names of :mod:`conceptebm.checkpoints`, re-exported.

The writer and reader live below ``train`` (``conceptebm/checkpoints.py``) so that evaluation,
``pretrained`` and ``compose`` use the same atomic format without importing the training
package; this module keeps ``conceptebm.train.checkpoint.*`` working.
"""

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

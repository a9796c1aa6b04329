"""Training state <-> checkpoint: everything a killed run needs to continue exactly.

A resumable checkpoint (``last.safetensors``) holds the model, the EMA weights, the Adam
state, the replay buffer (raw ring slots, so sampling indices mean the same after resume),
the random generator state and, in its metadata, the iteration, elapsed time and best score.
Resuming from it reproduces the uninterrupted run (tested), except that under DDP only rank
0's buffer and generator are stored: other ranks continue from rank 0's buffer with fresh
generators.
"""

from __future__ import annotations

import torch
from torch import Tensor

from conceptebm.checkpoints import Checkpoint, CheckpointError, load_state
from conceptebm.train.config import TrainConfig

__all__ = ["optimizer_tensors", "load_optimizer", "check_resumable", "RESUME_MUST_MATCH"]

#: Settings a resumed run must share with the checkpoint: they define the model or the data.
RESUME_MUST_MATCH = ("concept", "dataset", "dataset_size", "image_size", "width", "blocks",
                     "embed_dim", "spectral_norm", "frozen", "seed", "objective", "n_views")


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list]:
    """Adam (or any per-parameter) state as flat tensors plus JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{i}.{k}"] = torch.as_tensor(v).clone()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        i, _, k = key.partition(".")
        state.setdefault(int(i), {})[k] = v
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"optimizer state does not fit the model: {err}") from None


def check_resumable(ckpt: Checkpoint, config: TrainConfig, net: torch.nn.Module) -> list[str]:
    """Raise unless the checkpoint can continue under ``config``; return changed settings."""
    saved = ckpt.meta.get("train")
    if saved is None or "iteration" not in ckpt.meta or "model" not in ckpt.groups:
        raise CheckpointError(f"{ckpt.path} is not a resumable training checkpoint (it has no "
                              "training state); resume from an out_dir's last.safetensors")
    # a setting the checkpoint's record lacks (it predates the setting) had its default then
    saved = {**TrainConfig().to_dict(), **saved}
    clash = [k for k in RESUME_MUST_MATCH if saved.get(k) != config.to_dict().get(k)]
    if clash:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now "
                           f"{config.to_dict().get(k)!r}" for k in clash)
        raise CheckpointError(f"cannot resume {ckpt.path}: settings differ ({detail}); "
                              "use the original settings or start a new out_dir")
    if ckpt.meta.get("net") != net.config:
        raise CheckpointError(f"cannot resume {ckpt.path}: its net config "
                              f"{ckpt.meta.get('net')} differs from {net.config}")
    load_state(net, ckpt.groups["model"], f"{ckpt.path} model weights")
    now = config.to_dict()
    return [k for k in now if k not in RESUME_MUST_MATCH and saved.get(k) != now[k]]

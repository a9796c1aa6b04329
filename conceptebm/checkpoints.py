"""Checkpoints: one safetensors file that carries its own config, plus a readable JSON twin.

The one checkpoint writer and reader of the package, below everything that saves or loads a
model (training, evaluation's judges, pretrained, compose, the CLI): it imports only
``concepts`` and ``energies``. (``conceptebm.train.checkpoint``, their old home, is deprecated.)

A checkpoint ``name.safetensors`` holds tensors under prefixes (``model/``: the trained
weights; ``ema/``: EMA weights; ``optim/``: Adam state; ``buffer/``: the replay buffer;
``rng/``: generator states) and, in the safetensors metadata, a JSON document with the net
config (enough to rebuild the model from the file alone), the training config, the iteration
and the metrics. ``name.json`` repeats that document for people and tools. Nothing is pickled.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``), so a kill at any
moment leaves either the old or the new checkpoint, never a torn one. Since the safetensors
file is self-contained, a kill between the two replaces cannot pair a model with the wrong
config; loading reads only the safetensors file.

Example:
    >>> import tempfile, pathlib
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies.nets import ConvEnergyNet
    >>> net = ConvEnergyNet(Concept.continuous("size", low=0.3, high=0.7), image_size=16, width=4)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "size.safetensors"
    >>> save_checkpoint(path, {"model": net.state_dict()}, {"net": net.config})
    >>> load_energy(path).config == net.config
    True
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from conceptebm.energies.base import ConditionalEnergy
from conceptebm.energies.nets import build_energy_net

__all__ = ["FORMAT", "Checkpoint", "save_checkpoint", "load_checkpoint", "read_record",
           "update_record", "run_checkpoint", "load_energy", "load_state", "export_weights",
           "atomic_write_text", "atomic_write_bytes", "CheckpointError"]

FORMAT = "conceptebm-checkpoint-1"
_META_KEY = "conceptebm"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit what it is loaded into."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON document) and tensor ``groups``
    (``{"model": {...}, "ema": {...}, ...}``)."""

    path: Path
    meta: dict
    groups: dict[str, dict[str, Tensor]]

    def group(self, name: str) -> dict[str, Tensor]:
        if name not in self.groups:
            raise CheckpointError(f"{self.path} has no {name!r} tensors (it has "
                                  f"{sorted(self.groups)}); was it saved without them?")
        return self.groups[name]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temp file, fsync, ``os.replace``)."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a binary file atomically (temp file, fsync, ``os.replace``): a reader sees the
    old file or the new one, never half of one, even after a crash or power loss."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def save_checkpoint(path: str | os.PathLike, groups: Mapping[str, Mapping[str, Tensor]],
                    meta: Mapping, *, json_twin: bool = True) -> None:
    """Write ``groups`` of tensors and the JSON-able ``meta`` atomically to ``path``.

    ``meta`` should carry ``"net"`` (the net's ``config``) for :func:`load_energy`.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path}")
    flat = {}
    for gname, tensors in groups.items():
        if "/" in gname:
            raise ValueError(f"group names may not contain '/', got {gname!r}")
        for k, v in tensors.items():
            flat[f"{gname}/{k}"] = v.detach().cpu().contiguous()
    doc = {"format": FORMAT, **meta}
    text = json.dumps(doc, sort_keys=True)
    _atomic(path, lambda tmp: save_file(flat, tmp, metadata={_META_KEY: text}))
    if json_twin:
        atomic_write_text(path.with_suffix(".json"), json.dumps(doc, indent=2, sort_keys=True))


def load_checkpoint(path: str | os.PathLike, device=None) -> Checkpoint:
    """Read and validate a checkpoint; raises :class:`CheckpointError` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path (a training run "
                              "writes last.safetensors and best.safetensors in its out_dir)")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(_META_KEY)
        flat = load_file(str(path), device=str(device) if device is not None else "cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {err}") from None
    meta = _parse_meta(path, raw_meta)
    groups: dict[str, dict[str, Tensor]] = {}
    for key, v in flat.items():
        gname, _, name = key.partition("/")
        groups.setdefault(gname, {})[name] = v
    return Checkpoint(path, meta, groups)


def read_record(path: str | os.PathLike) -> dict:
    """A checkpoint's JSON document (what :func:`load_checkpoint` gives as ``.meta``), read
    from the safetensors header alone: no tensor is loaded, so listing models costs a few
    kilobytes each. Raises :class:`CheckpointError` as :func:`load_checkpoint` does."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {err}") from None
    return _parse_meta(path, raw_meta)


def update_record(path: str | os.PathLike, entries: Mapping) -> None:
    """Set ``entries`` in a checkpoint's record, in the safetensors metadata and its JSON twin
    alike; tensors are rewritten unchanged. The record is re-read right before writing, so
    entries another writer stored meanwhile are kept."""
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.meta.items() if k != "format"}
    save_checkpoint(path, ckpt.groups, {**meta, **entries})


def run_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint a training run's folder stands for: ``best.safetensors``, else
    ``last.safetensors``; ``None`` when it holds neither."""
    run = Path(run_dir)
    return next((p for p in (run / "best.safetensors", run / "last.safetensors")
                 if p.is_file()), None)


def _parse_meta(path: Path, raw_meta: str | None) -> dict:
    if raw_meta is None:
        raise CheckpointError(f"{path} is a safetensors file but not a conceptebm checkpoint "
                              f"(no {_META_KEY!r} metadata)")
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt metadata in {path}: {err}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}; this version "
                              f"reads {FORMAT!r}")
    return meta


def load_state(module: torch.nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """``load_state_dict`` with a readable error for missing/unexpected/mis-shaped entries."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()]
        first = lines[0] if lines else str(err)  # one reason, not the whole state_dict diff
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise CheckpointError(f"{what} does not fit the model its net config builds (a width, "
                              f"concept dim or layer count that does not match the weights): "
                              f"{first}{more}") from None


def load_energy(path: str | os.PathLike, *, weights: str = "auto",
                device=None) -> ConditionalEnergy:
    """Rebuild the conditional energy stored in a checkpoint, in eval mode, carrying the
    sampler settings its record implies (``.sampler``:
    :meth:`~conceptebm.infer.SamplerSettings.from_record`), its MAP settings
    (``.map_settings``) and the record itself (``.record``).

    Args:
        weights: ``"model"``, ``"ema"``, or ``"auto"`` (EMA weights when present).
    """
    ckpt = load_checkpoint(path, device=device)
    if "net" not in ckpt.meta:
        raise CheckpointError(f"{path} has no 'net' config, so the model cannot be rebuilt")
    if weights not in ("auto", "model", "ema"):
        raise ValueError(f"weights must be 'auto', 'model' or 'ema', got {weights!r}")
    if weights == "auto":
        weights = "ema" if "ema" in ckpt.groups else "model"
    from conceptebm.infer.settings import MAPSettings, SamplerSettings  # lazy: imports pyro

    try:
        sampler = SamplerSettings.from_record(ckpt.meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad 'sampler' record: {err}") from None
    try:
        map_settings = MAPSettings.from_record(ckpt.meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad 'map' record: {err}") from None
    try:
        net = build_energy_net(ckpt.meta["net"], sampler=sampler)
    except (ValueError, KeyError, TypeError) as err:  # a record that describes no model
        raise CheckpointError(f"{path}: its net config does not describe a valid model: "
                              f"{err}") from None
    load_state(net, ckpt.group(weights), f"{path} ({weights} weights)")
    net.attach_record(ckpt.meta, map_settings=map_settings)
    return net.to(device).eval() if device is not None else net.eval()


def export_weights(src: str | os.PathLike, dest: str | os.PathLike, *, weights: str = "auto",
                   **meta) -> Path:
    """Write a small weights-only checkpoint (the shipped-model format) from any checkpoint.

    Keeps the net config and the training config of ``src``, adds ``meta`` (the command,
    training time, metrics, sampler settings...), and drops optimizer, buffer and RNG state.
    """
    ckpt = load_checkpoint(src)
    net = load_energy(src, weights=weights)  # validates that the weights fit the config
    keep = {k: ckpt.meta[k] for k in ("net", "train", "iteration", "frozen") if k in ckpt.meta}
    save_checkpoint(dest, {"model": net.state_dict()}, {**keep, **meta})
    return Path(dest)

"""Judge checkpoints: weights in safetensors, everything else in a JSON file beside them.

A checkpoint ``<stem>`` is two files: ``<stem>.safetensors`` (the state dict; never pickle)
and ``<stem>.json`` (format tag, :class:`JudgeConfig`, the weights' SHA-256, and metadata
such as the training command, training time and held-out metrics). Loading checks each step
and says what is wrong: a missing file, a file that is not what it claims (bad JSON, bad
safetensors, changed bytes), or weights that do not fit the config.

Example:
    >>> from conceptebm.evaluate import load_judges
    >>> judge = load_judges()                       # the shipped judges
    >>> import tempfile, pathlib
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / "my_judges"
    >>> save_judge(judge, stem) == stem             # writes my_judges.{safetensors,json}
    True
    >>> load_judge(stem).config == judge.config
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from conceptebm.checkpoints import atomic_write_bytes
from conceptebm.evaluate.judge import Judge, JudgeConfig, JudgeNet

__all__ = ["FORMAT", "FORMAT_VERSION", "SHIPPED", "save_judge", "load_judge", "load_judges"]

FORMAT = "conceptebm.judge"
FORMAT_VERSION = 1
# The shipped judges; `conceptebm train-judges -o <this>.safetensors` rebuilds them.
SHIPPED = Path(__file__).resolve().parent.parent / "pretrained" / "judges"

RETRAIN_HINT = ("conceptebm train-judges --clutter-frac 0.25 -o "
                + str(SHIPPED) + ".safetensors")


def _stem(path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def save_judge(judge: Judge, path, metadata: Mapping | None = None) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; return the stem.

    ``metadata`` (JSON-serialisable) is merged over ``judge.metadata``.
    """
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in judge.net.state_dict().items()}
    blob = st_save(state)
    meta = {**judge.metadata, **(metadata or {})}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": judge.config.to_dict(),
        "weights": {"file": stem.name + ".safetensors",
                    "sha256": hashlib.sha256(blob).hexdigest(),
                    "num_params": sum(p.numel() for p in judge.net.parameters())},
        **{k: v for k, v in meta.items() if k not in ("format", "format_version", "config",
                                                      "weights")},
    }
    text = json.dumps(doc, indent=2)  # fails here, before any file is written, if not JSON
    # the package's one atomic writer (temp file, fsync, os.replace): never half a file
    atomic_write_bytes(stem.with_suffix(".safetensors"), blob)
    atomic_write_bytes(stem.with_suffix(".json"), (text + "\n").encode())
    return stem


def _read_doc(json_path: Path) -> dict:
    if not json_path.is_file():
        raise FileNotFoundError(
            f"judge config {json_path} not found; a judge checkpoint is <stem>.json + "
            f"<stem>.safetensors (rebuild the shipped one with: {RETRAIN_HINT})"
        )
    try:
        doc = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"judge config {json_path} is not valid JSON ({err}); the file is "
                         "corrupt: restore it or retrain") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a judge checkpoint (expected format {FORMAT!r}, "
                         f"got {doc.get('format') if isinstance(doc, dict) else type(doc)!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{json_path} has format_version {doc.get('format_version')!r}; this "
                         f"conceptebm reads version {FORMAT_VERSION}")
    for key in ("config", "weights"):
        if key not in doc:
            raise ValueError(f"{json_path} lacks its {key!r} section; the file is corrupt")
    return doc


def _check_state(state: dict, net: JudgeNet, where: Path) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing}" if missing else "",
                 f"unexpected {unexpected}" if unexpected else "",
                 f"shape mismatch {shapes}" if shapes else ""]
        raise ValueError(f"weights in {where} do not fit the config in its JSON: "
                         + "; ".join(p for p in parts if p)
                         + ". The two files come from different runs: keep them together")


def load_judge(path, *, device=None) -> Judge:
    """Load the checkpoint ``path`` (the stem, or either of its two files).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt one or
    weights that do not match the config.
    """
    stem = _stem(path)
    json_path = stem.with_suffix(".json")
    doc = _read_doc(json_path)
    weights_path = stem.parent / doc["weights"].get("file", stem.name + ".safetensors")
    if not weights_path.is_file():
        raise FileNotFoundError(f"judge weights {weights_path} (named in {json_path}) not "
                                f"found; retrain with: {RETRAIN_HINT}")
    blob = weights_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if doc["weights"].get("sha256") not in (None, digest):
        raise ValueError(f"judge weights {weights_path} are corrupt: SHA-256 {digest[:12]}... "
                         f"differs from {doc['weights']['sha256'][:12]}... recorded in "
                         f"{json_path}; restore the file or retrain")
    try:
        state = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"judge weights {weights_path} are not a readable safetensors file "
                         f"({err}); restore the file or retrain") from None
    try:
        config = JudgeConfig.from_dict(doc["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"judge config in {json_path} is invalid: {err!r}") from None
    net = JudgeNet(config)
    _check_state(state, net, weights_path)
    net.load_state_dict(state)
    meta = {k: v for k, v in doc.items() if k not in ("format", "format_version", "config")}
    judge = Judge(net, meta)
    return judge.to(device) if device is not None else judge


def load_judges(*, device=None) -> Judge:
    """The shipped judges (position, size, colour, shape) for 32x32 single-object scenes,
    with or without grey clutter ("general", "cluttered" and the single-concept sets).

    Example:
        >>> judge = load_judges()
        >>> sorted(judge.concepts)
        ['color', 'position', 'shape', 'size']
    """
    return load_judge(SHIPPED, device=device)


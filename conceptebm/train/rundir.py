"""A training run's folder: what a run owns, and the folders a run refuses to write into.

A run marks its folder with ``conceptebm-run.json`` (the manifest: the kind of folder and the
names a run writes), written once the options, the data and a resumed checkpoint have been
accepted. A new run goes only into a missing or empty folder, or one whose every file a run
wrote and that holds no checkpoint yet (a run stopped before its first one); anything else in
the folder (a user's ``notes.txt``, a ``data.json`` of their own) is never overwritten or
deleted: :func:`check_out_dir` refuses, naming the files.

Example:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> (run / "notes.txt").write_text("mine")
    4
    >>> check_out_dir(run, resume=False)
    Traceback (most recent call last):
    ...
    conceptebm.train.rundir.RunFolderError: ... did not write (notes.txt); ...
    >>> (run / "notes.txt").unlink(); mark_run(run); check_out_dir(run, resume=False)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conceptebm.checkpoints import atomic_write_text

__all__ = ["MANIFEST", "RUN_FILES", "RunFolderError", "check_out_dir", "mark_run",
           "foreign_files", "append_line"]

MANIFEST = "conceptebm-run.json"
KIND = "conceptebm train run"
# every name a run writes in its folder (snapshots/ holds its snapshot checkpoints)
RUN_FILES = ("command.txt", "data.json", "config.json", "metrics.csv", "eval.csv", "loss.png",
             "last.safetensors", "last.json", "best.safetensors", "best.json", "snapshots",
             "test.json", MANIFEST)
_TEMP = re.compile(r"\..+\.[^.]+\.tmp$")  # an atomic write's temp file (checkpoints._atomic)


class RunFolderError(FileExistsError):
    """A folder a run must not write into (files it did not write, or a run already)."""


def _manifest(out: Path) -> dict | None:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == KIND else None


def foreign_files(out: str | Path) -> list[str]:
    """The names in ``out`` that no training run wrote (sorted). A folder without the
    manifest but with a checkpoint is a run of an older version: its run files count as its
    own."""
    out = Path(out)
    if not out.is_dir():
        return []
    names = sorted(p.name for p in out.iterdir())
    legacy = (out / "last.safetensors").is_file() or (out / "config.json").is_file()
    if _manifest(out) is None and not legacy:
        return names
    return [n for n in names if n not in RUN_FILES and not _TEMP.match(n)]


def check_out_dir(out: str | Path, *, resume: bool, option: str = "out_dir") -> None:
    """Raise :class:`RunFolderError` unless a run may write into ``out``: a new run needs a
    missing or empty folder, or a run's folder without a checkpoint; ``resume`` needs nothing
    more (the checkpoint is checked when it is loaded) but never touches foreign files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{option} {out} is a file; choose a folder")
    if resume:
        return
    if (out / "last.safetensors").exists():
        raise RunFolderError(f"{out} already holds a training run; pass resume=True (--resume) "
                             "to continue it, or choose another out_dir")
    foreign = foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4
                                          else "")
        raise RunFolderError(f"{option} {out} holds files a training run did not write "
                             f"({shown}); a run would overwrite files of those names, so "
                             "nothing was written: choose a new or empty folder (e.g. "
                             f"{out / 'run'})")


def mark_run(out: str | Path) -> None:
    """Write the manifest (atomically) that makes ``out`` a run folder."""
    out = Path(out)
    if _manifest(out) is None:
        atomic_write_text(out / MANIFEST, json.dumps({"kind": KIND, "files": list(RUN_FILES)},
                                                     indent=1) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one line to a small record file (``command.txt``) atomically: readers see the
    old file or the new one."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + line.rstrip("\n") + "\n")

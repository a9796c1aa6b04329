"""Folders of any size: concept inference streamed in chunks to JSON Lines, resumable, sharded.

What ``conceptebm infer DIR --separate -o results.jsonl`` runs:

* :func:`image_files` lists a folder's images in sorted order (the order of the output);
* each process reads and infers ``chunk`` images at a time, so memory stays bounded whatever
  the folder's size, and appends one JSON line per image as soon as its chunk is done
  (:func:`run_shard`);
* a rerun skips every image already in the output (:func:`done_paths`; a line cut short by a
  crash is dropped and redone);
* under ``torchrun --nproc-per-node N`` (``WORLD_SIZE`` > 1: a gloo process group, as training
  joins one, :mod:`conceptebm.train.distributed`) process ``r`` takes every N-th file from the
  r-th (:func:`shard`) and writes its part file ``OUT.part<r>of<N>``; rank 0 merges the output
  and every part into one file in sorted path order (:func:`merge_outputs`).

:func:`infer_folder` runs the whole job; :func:`answer_rows` is the default answer of a chunk
(MAP value, energy, the "no object found" check), and the command line passes its own (with
posteriors and its text output).

Example (a hand-made reader: the answer is the mean pixel):
    >>> import tempfile, json
    >>> from pathlib import Path
    >>> from conceptebm.datasets.images import write_pngs
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_pngs(torch.linspace(0, 1, 5)[:, None, None, None].expand(5, 3, 4, 4),
    ...            [folder / f"img{i}.png" for i in range(5)])
    >>> def rows_of(paths):
    ...     return [{"path": p, "value": round(float(read_images([p]).mean()), 2)} for p in paths]
    >>> stats = infer_folder(image_files(folder), rows_of, folder / "out.jsonl", chunk=2)
    >>> stats["inferred"], [json.loads(l)["value"] for l in open(folder / "out.jsonl")]
    (5, [0.0, 0.25, 0.5, 0.75, 1.0])
    >>> infer_folder(image_files(folder), rows_of, folder / "out.jsonl")["inferred"]  # resumed
    0
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "CHUNK", "image_files", "shard", "part_path", "part_files",
           "done_paths", "read_images", "answer_rows", "run_shard", "merge_outputs",
           "infer_folder"]

#: Files :func:`image_files` takes from a folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Images read and inferred at a time by each process: memory stays bounded (256 32x32 RGB
#: images are 3 MB; an early-conditioned net's grid pass holds about 4096 image copies anyway).
CHUNK = 256


def image_files(folder) -> list[str]:
    """The image files directly in ``folder`` (by suffix, :data:`IMAGE_SUFFIXES`), sorted by
    name, as paths joined to ``folder`` as given."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return [str(folder / name) for name in sorted(os.listdir(folder))
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and (folder / name).is_file()]


def shard(paths: Sequence[str], rank: int, world: int) -> list[str]:
    """Process ``rank``'s share of ``paths`` among ``world``: every ``world``-th path in sorted
    order, from the ``rank``-th (shares differ in size by at most one)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must lie in [0, world), got rank {rank}, world {world}")
    return sorted(paths)[rank::world]


def part_path(out, rank: int, world: int) -> Path:
    """Where process ``rank`` of ``world`` writes its rows: ``OUT.part<rank>of<world>``."""
    out = Path(out)
    return out.with_name(f"{out.name}.part{rank}of{world}")


def part_files(out) -> list[Path]:
    """Every part file of ``out`` left on disk (by any number of processes), sorted."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.glob(f"{out.name}.part*of*") if p.is_file())


def _key(path: str) -> str:
    return os.path.realpath(path)


def _read_rows(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (a last line cut short by a crash is dropped)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # cut short: redone
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def done_paths(*files) -> set[str]:
    """The images (their resolved paths) that already have a row in any of ``files``."""
    return {_key(r["path"]) for f in files for r in _read_rows(Path(f)) if "path" in r}


def read_images(paths: Sequence[str], size: int | None = None, *,
                resize: bool = False) -> Tensor:
    """Images ``(n, 3, H, W)`` in [0, 1] read with the package's one reader
    (:func:`conceptebm.datasets.images.read_image`); with ``size``, each must be ``size x
    size`` or, with ``resize``, is rescaled to it."""
    from conceptebm.datasets.images import read_image, resize_image

    out = []
    for p in paths:
        im = read_image(p)
        if size is not None and tuple(im.shape[-2:]) != (size, size):
            if not resize:
                raise ValueError(f"image {p} is {im.shape[-1]}x{im.shape[-2]} but the model "
                                 f"reads {size}x{size} images; pass resize=True")
            im = resize_image(im, size)
        out.append(im)
    return torch.stack(out)


def answer_rows(model, paths: Sequence[str], images: Tensor | None = None, *,
                grid: int | None = None, steps: int | None = None,
                resize: bool = False) -> list[dict]:
    """One row per image: ``{"path", "concept", "value", "energy", "object_found",
    "flags"}``; ``value`` is the MAP estimate (a category name for a categorical concept),
    ``flags`` lists ``"no_object_found"`` when the model's energy calibration refuses the
    image, and ``"unfamiliar_image"`` too when its familiarity check finds it unlike the
    model's training images (``familiarity``: that distance over its threshold). ``images``
    default to :func:`read_images` of ``paths``."""
    from conceptebm.scenes.checks import check_estimates
    from conceptebm.scenes.inference import infer_concept

    if images is None:
        images = read_images(paths, getattr(model, "image_size", None), resize=resize)
    sets = images[:, None]  # (n, 1, 3, H, W): each image a set of one view
    est = infer_concept(model, sets, views=True, grid=grid, steps=steps)
    checks = check_estimates(model, sets, est, model.record.get("energy_calibration"),
                             grid=grid, steps=steps)
    rows = []
    for i, p in enumerate(paths):
        value = est.names[i] if est.names is not None else est.value[i].tolist()
        found, dist = checks[i].object_found, checks[i].familiarity
        flags = ["no_object_found"] if found is False else []
        if dist is not None and dist > 1.0:
            flags.append("unfamiliar_image")
        rows.append({"path": str(p), "concept": model.concept.name, "value": value,
                     "energy": float(est.energy[i]), "object_found": found,
                     **({} if dist is None else {"familiarity": round(dist, 4)}),
                     "flags": flags})
    return rows


def _open_for_append(path: Path):
    """``path`` opened for appending rows; a last line cut short by a crash is cut off."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
    return open(path, "a", encoding="utf-8")


def run_shard(paths: Sequence[str], rows_of: Callable[[list[str]], Iterable[dict]], out, *,
              rank: int = 0, world: int = 1, chunk: int = CHUNK, skip_done: bool = True,
              progress: bool = False) -> dict:
    """Infer process ``rank``'s :func:`shard` of ``paths`` ``chunk`` at a time with
    ``rows_of(chunk paths) -> rows`` (one dict per path, with ``"path"``), appending each
    chunk's rows as JSON lines to ``out`` (one process) or to its :func:`part_path`.

    With ``skip_done``, images with a row in ``out`` or in any part file are skipped.
    Returns ``{"rank", "world", "assigned", "skipped", "inferred", "file"}``.
    """
    from tqdm.auto import tqdm

    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    out = Path(out)
    target = out if world == 1 else part_path(out, rank, world)
    mine = shard(paths, rank, world)
    done = done_paths(out, *part_files(out)) if skip_done else set()
    todo = [p for p in mine if _key(p) not in done]
    target.parent.mkdir(parents=True, exist_ok=True)
    with _open_for_append(target) as fh, \
            tqdm(total=len(todo), desc="infer", unit="img", disable=not progress) as bar:
        for lo in range(0, len(todo), chunk):
            part = todo[lo:lo + chunk]
            rows = list(rows_of(part))
            if len(rows) != len(part):
                raise RuntimeError(f"rows_of returned {len(rows)} rows for {len(part)} images")
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
            fh.flush()
            bar.update(len(part))
    return {"rank": rank, "world": world, "assigned": len(mine),
            "skipped": len(mine) - len(todo), "inferred": len(todo), "file": str(target)}


def merge_outputs(out) -> int:
    """Merge ``out`` and every part file of it into ``out``, one row per image (the first
    row met for an image wins, ``out``'s before the parts'), sorted by path; the part files are
    removed once ``out`` is written (atomically). Returns the number of rows."""
    from conceptebm.checkpoints import atomic_write_text

    out = Path(out)
    parts = part_files(out)
    rows: dict[str, dict] = {}
    for f in [out, *parts]:
        for r in _read_rows(f):
            rows.setdefault(_key(r["path"]), r)
    ordered = sorted(rows.values(), key=lambda r: (r["path"], _key(r["path"])))
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in ordered))
    for f in parts:
        f.unlink()
    return len(ordered)


def infer_folder(paths: Sequence[str], rows_of: Callable[[list[str]], Iterable[dict]], out, *,
                 chunk: int = CHUNK, skip_done: bool = True, progress: bool = False) -> dict:
    """The whole job, in one process or under ``torchrun``: :func:`run_shard` on this
    process's share, then (after every process is done) rank 0 merges one sorted ``out``
    (:func:`merge_outputs`). Returns this process's :func:`run_shard` record plus ``"rows"``
    (the merged file's row count, on rank 0; ``None`` elsewhere)."""
    from conceptebm.train.distributed import failure, setup, teardown

    ctx = setup("cpu")
    try:
        stats = run_shard(paths, rows_of, out, rank=ctx.rank, world=ctx.world_size,
                          chunk=chunk, skip_done=skip_done, progress=progress and ctx.is_main)
        if ctx.enabled:
            torch.distributed.barrier()  # every part complete before rank 0 reads them
        stats["rows"] = merge_outputs(out) if ctx.is_main else None
    except BaseException as err:
        reported = failure(ctx, err)  # names the process that failed first
        teardown(ctx, clean=False)
        if reported is err:
            raise
        raise reported from err
    teardown(ctx)
    return stats

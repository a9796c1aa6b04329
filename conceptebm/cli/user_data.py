"""A user's own images on the command line: ``train --data``, and ``--each DIR`` outputs.

* :func:`add_data_options` adds ``--data PATH`` (a folder with labels.csv / labels.json, or an
  .npz), ``--columns NAME=COL[,COL]``, ``--concepts-file JSON``, ``--holdout N|FRACTION``
  and ``--test PATH|N|FRACTION`` to ``conceptebm train``; :func:`training_data` loads the
  data (concepts declared, built-in, or inferred from the data and printed), makes the seeded
  splits, fits the image size, and records them in ``RUN/data.json`` (the concepts are also
  in every checkpoint's net config, so ``conceptebm infer --model RUN/best.safetensors`` reads
  them back).
* Two splits, two jobs: the held-out (validation) split scores the run while it trains and
  picks ``best.safetensors``; the optional test split (a folder or .npz of its own, or a
  seeded count / fraction of ``--data`` set aside before the held-out split is drawn) is read
  once, after training, by :func:`report_test`, which scores ``best.safetensors`` on it and
  writes ``RUN/test.json``. Nothing the run chooses sees the test images.
* :func:`write_each` writes one PNG per image plus ``labels.csv`` (and ``concepts.json``) in
  the loader's own layout (``render --each DIR``, ``sample --each DIR``), so render -> infer
  -> train runs from the shell.

Example::

    conceptebm make-data foreign --out-dir data/foreign -n 1700
    conceptebm train --data data/foreign --concept position --time-limit-min 10 \\
        --threads 2 --out-dir runs/foreign        # no recipe flag: --preset data
    conceptebm infer --model runs/foreign/best.safetensors data/foreign/scene_00000.png --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

__all__ = ["add_data_options", "data_words", "training_data", "report_test", "test_option",
           "write_each", "write_each_sample", "EachFolder", "add_each_options", "sample_labels",
           "deferred_signals", "EACH_MANIFEST"]


def _holdout(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--holdout takes a count (300) or a fraction (0.2), "
                                         f"got {text!r}") from None
    if not (0 < v < 1 or (v >= 1 and v.is_integer())):
        raise argparse.ArgumentTypeError(f"--holdout takes a count >= 1 or a fraction in "
                                         f"(0, 1), got {text!r}")
    return v


_holdout.bad = ("abc", "nan", "0", "-5", "1.5")  # what the CLI option walk feeds it


def _test_spec(text: str) -> float | str:
    """``--test``: a count or fraction of ``--data`` (a number), else an existing folder of
    labelled images or an .npz file."""
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is not None:  # a number: a split of --data, held out like --holdout
        if not (0 < v < 1 or (v >= 1 and v.is_integer())):
            raise argparse.ArgumentTypeError(f"--test takes a folder or .npz of test images, "
                                             f"a count >= 1 or a fraction in (0, 1), got "
                                             f"{text!r}")
        return v
    p = Path(text)
    if not text.strip() or not (p.is_dir() or (p.is_file() and p.suffix.lower() == ".npz")):
        raise argparse.ArgumentTypeError(f"--test takes a folder of labelled images or an .npz "
                                         f"(no such folder or .npz file), or a count or "
                                         f"fraction of --data, got {text!r}")
    return text


_test_spec.bad = ("/nonexistent/conceptebm/test", "nan", "0", "-5", "1.5")


def test_option(text: str | None) -> float | str | None:
    """``--test`` as recorded in ``RUN/data.json`` (for ``--resume``), parsed again."""
    try:
        return None if text is None else _test_spec(text)
    except argparse.ArgumentTypeError as err:
        raise ValueError(f"the run's recorded {err}") from None


def _column_spec(text: str) -> str:
    name, eq, cols = text.partition("=")
    if not (eq and name.strip() and cols.strip()):
        raise argparse.ArgumentTypeError(f"--columns takes NAME=COL[,COL] (e.g. position=x,y), "
                                         f"got {text!r}")
    return text


_column_spec.bad = ("abc", "=x", "position=")


def add_data_options(p: argparse.ArgumentParser) -> None:
    from conceptebm.cli import validate

    g = p.add_argument_group("your own images (instead of a scene dataset)")
    g.add_argument("--data", type=validate.existing_path("image folder or .npz file"),
                   default=None, metavar="PATH",
                   help="a folder of PNG/JPEG images with labels.csv or labels.json, or an "
                        ".npz (images + one array per label); --concept names one label")
    g.add_argument("--columns", action="append", type=_column_spec, default=None,
                   metavar="NAME=COL[,COL]",
                   help="which columns make up a label, repeatable (e.g. position=x,y; bare "
                        "x,y columns become position by themselves)")
    g.add_argument("--concepts-file", type=validate.existing_file((".json",), "JSON file"),
                   default=None, metavar="JSON",
                   help='declared concepts: {"size": {"low": 0.18, "high": 0.3}, "kind": '
                        '{"values": ["cat", "dog"]}}; undeclared labels are inferred from the '
                        "data (ranges printed)")
    g.add_argument("--holdout", type=_holdout, default=None, metavar="N|FRACTION",
                   help="held-out images for evaluation (MAP error / accuracy): a count or a "
                        "fraction, split with --seed (default 20%%, at most 300); it scores "
                        "the run while it trains and picks best.safetensors")
    g.add_argument("--test", type=_test_spec, default=None, metavar="PATH|N|FRACTION",
                   help="a test split, read once after training and never used to choose "
                        "anything: a folder or .npz of labelled images of its own, or a count "
                        "or fraction of --data set aside (with --seed) before the held-out "
                        "split is drawn; best.safetensors is scored on it into RUN/test.json")
    g.add_argument("--resize", type=validate.integer(8, 1024), default=None, metavar="SIZE",
                   help="resize every image to SIZE x SIZE pixels as it is read (images larger "
                        "than 512 pixels a side, or more than fit in memory, are refused "
                        "without it, with the estimate)")


def data_words(args: argparse.Namespace) -> list[str]:
    """The data options as command words (for the run's command.txt)."""
    words = []
    if getattr(args, "data", None):
        words += ["--data", str(args.data)]
    for spec in getattr(args, "columns", None) or []:
        words += ["--columns", spec]
    if getattr(args, "concepts_file", None):
        words += ["--concepts-file", str(args.concepts_file)]
    if getattr(args, "holdout", None) is not None:
        words += ["--holdout", f"{args.holdout:g}"]
    test = getattr(args, "test", None)
    if test is not None:
        words += ["--test", test if isinstance(test, str) else f"{test:g}"]
    if getattr(args, "resize", None):
        words += ["--resize", str(args.resize)]
    return words


def folder_spec(args: argparse.Namespace):
    """The :class:`~conceptebm.train.folder.FolderSpec` the ``--data`` options name."""
    from conceptebm.train.folder import FolderSpec

    return FolderSpec(args.data, tuple(args.columns) if args.columns else None,
                      args.concepts_file, args.holdout, getattr(args, "test", None),
                      getattr(args, "resize", None))


def training_data(args: argparse.Namespace, config, explicit: dict | None = None,
                  say=print):
    """``(config, train_set, held_out_set, record)`` for ``--data``
    (:func:`conceptebm.train.folder.folder_data`); ``ValueError`` names the problem. The test
    split, if any, is kept on ``args`` for :func:`report_test`."""
    from conceptebm.train.folder import folder_data

    data = folder_data(folder_spec(args), config,
                       fit_image_size="image_size" not in (explicit or {}), say=say)
    args.test_set, args.held_out_set = data.test_set, data.held_out
    return data.config, data.train_set, data.held_out, data.record


def report_test(args, result) -> dict | None:
    """After training: the MAP grid and steps chosen on the held-out split
    (:func:`conceptebm.evaluate.map_grid.select_run_map_settings`) and the posterior
    temperature fitted there (:func:`conceptebm.train.folder.fit_run_temperature`), both
    stored in the run's checkpoint, then the ``--test`` split read once
    (:func:`conceptebm.train.folder.score_test`: ``RUN/test.json``); returns the test
    record, ``None`` when no test split was named."""
    from conceptebm.evaluate.map_grid import select_run_map_settings
    from conceptebm.train.folder import fit_run_temperature, score_test

    select_run_map_settings(result.out_dir, getattr(args, "held_out_set", None))  # its grid
    fit_run_temperature(result, getattr(args, "held_out_set", None))
    return score_test(result, getattr(args, "test_set", None))


EACH_MANIFEST = ".conceptebm-each.json"  # the files an --each run wrote in its folder
_EACH_KIND = "conceptebm --each"
_LABEL_FILES = ("labels.csv", "labels.json", "concepts.json", "expression.txt")
_IMAGES = (".png", ".jpg", ".jpeg")


def add_each_options(p: argparse.ArgumentParser) -> None:
    """``--append`` and ``--force`` beside a command's ``--each DIR``."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--append", action="store_true",
                   help="with --each: add the new images to a folder that already holds a "
                        "labels.csv (new file names; labels.csv keeps listing every image)")
    g.add_argument("--force", action="store_true",
                   help="with --each: write into a folder holding images or a labels.csv "
                        "this tool did not write (files of the same names are replaced)")


class EachFolder:
    """Where ``render --each DIR`` / ``sample --each DIR`` write: one PNG per image plus
    ``labels.csv`` (and ``concepts.json``, ``expression.txt``), in the layout
    :func:`~conceptebm.datasets.load_images` reads.

    Nothing of the user's is overwritten: :meth:`check` (before any work) refuses a folder
    holding images or label files that no ``--each`` wrote (the hidden manifest
    ``.conceptebm-each.json`` lists what it wrote) unless ``append`` (new names after the
    folder's own, rows added to its ``labels.csv``, whose columns must match) or ``force``.
    :meth:`write` writes a chunk: the PNGs, then its rows in one write, then the manifest,
    with Ctrl-C / SIGTERM held until the chunk is whole, so ``labels.csv`` always lists
    exactly the images written.
    """

    def __init__(self, folder, *, append: bool = False, force: bool = False,
                 option: str = "--each", prefix: str = "img"):
        self.folder, self.append, self.force = Path(folder), append, force
        self.option, self.prefix = option, prefix
        self.written: list[str] = []  # images written by this command
        self._started = False
        self._ours: set[str] = set()
        self._previous: set[str] = set()  # images an earlier --each wrote here
        self._next = 0
        self._order: list[int] | None = None  # an appended labels.csv's column order

    # ---------------------------------------------------------------- before any work
    def _read_manifest(self) -> set[str]:
        try:
            data = json.loads((self.folder / EACH_MANIFEST).read_text())
        except (OSError, ValueError):
            return set()
        ok = isinstance(data, dict) and data.get("kind") == _EACH_KIND
        return set(data.get("files", [])) if ok else set()

    def check(self) -> None:
        """Raise ``CommandError`` if writing here would overwrite what --each did not write."""
        from conceptebm.cli.validate import CommandError

        if not self.folder.is_dir():
            return
        ours = self._read_manifest()
        names = sorted(p.name for p in self.folder.iterdir())
        images = [n for n in names if Path(n).suffix.lower() in _IMAGES]
        foreign = [n for n in images + [n for n in names if n in _LABEL_FILES]
                   if n not in ours]
        if not foreign or self.force:
            return
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                          if len(foreign) > 3 else "")
        if not self.append:
            raise CommandError(
                f"{self.option} {self.folder} holds files this command did not write "
                f"({shown}); nothing was written: choose a new or empty folder, pass --append "
                "to add the new images to its labels.csv, or --force to write over files of "
                "the same names")
        if not (self.folder / "labels.csv").is_file() and images:
            raise CommandError(
                f"--append: {self.folder} holds images ({shown}) but no labels.csv to add "
                "rows to, so labels.csv would not describe them; label them first, choose "
                "another folder, or pass --force")

    # ---------------------------------------------------------------- writing
    def _begin(self, header: list[str], own: dict) -> None:
        from conceptebm.checkpoints import atomic_write_text
        from conceptebm.cli.validate import CommandError

        self.folder.mkdir(parents=True, exist_ok=True)
        self._ours = self._read_manifest()
        csv_path = self.folder / "labels.csv"
        if self.append and csv_path.is_file():
            import csv

            with open(csv_path, newline="") as fh:
                old = next(csv.reader(fh), [])
            if sorted(old) == sorted(header):  # the same columns in another order: theirs
                self._order = [header.index(c) for c in old]
            else:
                raise CommandError(
                    f"--append: {csv_path} has the columns {old} but these images have "
                    f"{header}; append images of the same concepts, or choose another folder")
            cj = self.folder / "concepts.json"
            if own and cj.is_file() and json.loads(cj.read_text()) != own:
                raise CommandError(f"--append: {cj} declares other concepts than these "
                                   "images have; choose another folder")
            if own and not cj.is_file():
                atomic_write_text(cj, json.dumps(own, indent=1))
                self._ours.add(cj.name)
            taken = [int(m.group(1)) for p in self.folder.iterdir()
                     if (m := re.fullmatch(rf"{self.prefix}_(\d+)\.png", p.name))]
            self._next = max(taken, default=-1) + 1
        else:  # a new labels.csv (a fresh folder, --each's own, or --force)
            if not self.append:
                self._previous = {n for n in self._ours if Path(n).suffix.lower() in _IMAGES}
            if own:
                atomic_write_text(self.folder / "concepts.json", json.dumps(own, indent=1))
                self._ours.add("concepts.json")
            elif (self.folder / "concepts.json").is_file() and "concepts.json" in self._ours:
                (self.folder / "concepts.json").unlink()  # ours, and it would now mislead
            atomic_write_text(csv_path, _csv_text([header]))
            self._ours.add("labels.csv")
        self._started = True

    def _save_manifest(self) -> None:
        from conceptebm.checkpoints import atomic_write_text

        atomic_write_text(self.folder / EACH_MANIFEST, json.dumps(
            {"kind": _EACH_KIND, "files": sorted(self._ours | {EACH_MANIFEST})}) + "\n")

    def write(self, images, labels: dict, concepts: dict) -> None:
        """Write one chunk: ``images (n, 3, H, W)`` in [0, 1] and their labels."""
        from conceptebm.datasets.images import write_pngs
        from conceptebm.datasets.user import label_table

        files = [f"{self.prefix}_{self._next + j:05d}.png" for j in range(images.shape[0])]
        header, rows, own = label_table(files, labels, concepts)
        with deferred_signals():
            if not self._started:
                self._begin(header, own)
                files = [f"{self.prefix}_{self._next + j:05d}.png"
                         for j in range(images.shape[0])]
                header, rows, own = label_table(files, labels, concepts)
            if self._order is not None:
                rows = [[r[i] for i in self._order] for r in rows]
            write_pngs(images, [self.folder / f for f in files])
            self._ours.update(files)
            self._previous.difference_update(files)
            with open(self.folder / "labels.csv", "a", newline="") as fh:
                fh.write(_csv_text(rows))  # one write per chunk
                fh.flush()
                os.fsync(fh.fileno())
            self._save_manifest()
            self._next += len(files)
            self.written += files

    def add_text(self, name: str, line: str) -> None:
        """``expression.txt``: one line per --each command that wrote here."""
        from conceptebm.checkpoints import atomic_write_text
        from conceptebm.train.rundir import append_line

        path = self.folder / name
        if self.append:
            append_line(path, line)
        else:  # a new set of images: its own line (the file was ours, or --force)
            atomic_write_text(path, line.rstrip("\n") + "\n")
        self._ours.add(name)
        self._save_manifest()

    def finish(self) -> None:
        """Remove the images an earlier --each wrote here that this one did not rewrite (so
        labels.csv describes every image); never a file of the user's."""
        for name in sorted(self._previous):
            (self.folder / name).unlink(missing_ok=True)
            self._ours.discard(name)
        self._previous = set()
        if self._started:
            self._save_manifest()


def _csv_text(rows) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


class deferred_signals:  # noqa: N801 - used as a statement: ``with deferred_signals():``
    """Hold SIGINT / SIGTERM while a block runs (a chunk of files and their labels), then
    stop as they asked: ``KeyboardInterrupt`` (``conceptebm.cli.Interrupted`` for SIGTERM)."""

    def __enter__(self):
        import signal
        import threading

        self.caught, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self._hold)
        return self

    def _hold(self, signum, frame):  # noqa: ARG002
        self.caught = self.caught or signum

    def __exit__(self, *exc):
        import signal

        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if self.caught and exc[0] is None:
            from conceptebm.cli import Interrupted

            raise Interrupted(self.caught)
        return False


def write_each(folder, images, labels: dict, concepts: dict, *, start: int = 0,
               append: bool = False) -> Path:
    """One PNG per image plus labels (see :func:`conceptebm.datasets.save_folder`)."""
    from conceptebm.datasets.user import save_folder

    return save_folder(images, labels, concepts, folder, start=start, append=append)


def sample_labels(tree, models: dict, n: int) -> tuple[dict, dict]:
    """``sample --each``: the labels of ``n`` samples of ``tree``, the values of the
    expression's atoms when it is a plain conjunction (``position=(0.3,-0.2) & color=red``);
    an expression with ``|``, ``~`` or weights has no single label per image, so only the file
    names are listed. ``(labels, concepts)``."""
    import torch

    from conceptebm.compose.expr import Atom, Conj

    terms = tree.terms if isinstance(tree, Conj) else (tree,)
    labels, concepts = {}, {}
    if all(isinstance(t, Atom) for t in terms):
        for t in terms:
            c = models[t.name].concept
            enc = c.index(t.value) if c.is_categorical else torch.as_tensor(
                t.value if isinstance(t.value, tuple) else (t.value,), dtype=torch.float32)
            labels[t.name] = (torch.full((n,), enc, dtype=torch.long)
                              if c.is_categorical else enc[None].expand(n, -1))
            concepts[t.name] = c
    return labels, concepts


def write_each_sample(folder, images, tree, models: dict, expression: str) -> Path:
    """``sample --each`` in one call: the samples, their labels (:func:`sample_labels`) and
    the expression in ``expression.txt``."""
    each = EachFolder(folder, force=True)
    each.write(images, *sample_labels(tree, models, images.shape[0]))
    each.add_text("expression.txt", expression)
    each.finish()
    return Path(folder)

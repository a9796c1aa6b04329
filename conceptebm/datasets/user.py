"""A user's own labelled images in the scene-dataset interface, with loud validation.

Three layouts load with :func:`load_images`:

* a folder of PNG/JPEG files plus ``labels.csv``: a ``file`` column, then one column per
  scalar label (``size``, ``color``) and ``name_x, name_y`` (or ``name_0, name_1``) columns
  for vector labels (``position_x, position_y``). Bare ``x, y`` columns become ``position``.
  Categorical values are names (``red``) or indices;
* the same folder with ``labels.json``: a list of ``{"file": ..., "position": [x, y],
  "color": "red", ...}`` records, or a ``{file: {label: value}}`` mapping;
* an ``.npz`` with ``images`` ``(N, H, W, 3)`` uint8 (or float in [0, 1], or ``(N, 3, H, W)``)
  and one array per label (``position`` ``(N, 2)``, ``color`` ``(N,)`` of indices or names),
  optionally ``palette_names`` / ``palette_rgb`` and ``concepts`` (a JSON string, as in a
  concepts file). :func:`save_npz` writes this layout, palette table included.

``columns={"position": ("x", "y")}`` (command line: ``--columns position=x,y``) says which
columns (or .npz arrays) make up a label. Each label needs a
:class:`~conceptebm.concepts.Concept` (its range or category names). In order: ``concepts=``
(or a ``concepts.json`` beside the labels, or :func:`read_concepts` of a file); then the scene
concepts ``position``, ``size``, ``color``, ``shape`` when every value fits them; then, with
``infer=True``, one inferred from the data (numbers: continuous over their min..max; anything
else: categorical over the sorted names). ``dataset.inferred`` says which were inferred.

Missing files, unreadable images, mixed image sizes, and labels that are missing, of the wrong
width or out of range raise ``ValueError`` naming the file, the line and the fix. Labels are
also checked for what they claim:

* a file listed twice: with the same labels, kept once (a warning in ``dataset.warnings``);
  with different labels, refused naming both lines;
* a cell that is not a number in a label whose other values are numbers (a built-in, declared
  or inferred numeric concept), refused naming the line and the cell (a word no longer turns a
  numeric concept into a category);
* images larger than :data:`MAX_IMAGE_SIDE` pixels a side, or more images than fit in memory,
  refused before they are all read, with the estimate; ``resize=S`` resizes every image to
  S x S as it is read;
* :func:`check_training_labels` (the trained concept, once split): one value or one class
  (refused: nothing to learn), classes of fewer than :data:`MIN_CLASS_IMAGES` images and
  held-out images that are near-copies of training images (warnings).

Example (a user's folder, here 12 scenes of the foreign fixture with columns ``x, y``):
    >>> import tempfile
    >>> from conceptebm.datasets.foreign import write_foreign
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     ds = load_images(write_foreign(folder, n=12, seed=0),
    ...                      columns={"position": ("x", "y")}, infer=True)
    >>> train, held = split_holdout(ds, 3, seed=0)
    >>> images, labels = held.batch([0, 1, 2])
    >>> len(train), tuple(images.shape), tuple(labels["position"].shape)
    (9, (3, 3, 32, 32), (3, 2))
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from conceptebm.concepts import Concept
from conceptebm.datasets.dataset import as_indices, scene_concepts
from conceptebm.datasets.declarations import (
    concept_from_values,
    concepts_from,
    label_cells,
    parse_columns,
    read_concepts,
)
from conceptebm.datasets.images import ImageError, read_image, resize_image, write_pngs
from conceptebm.datasets.scene import PALETTE, SHAPES

__all__ = ["LabelledImages", "load_images", "save_npz", "save_folder", "label_table",
           "split_holdout", "check_training_labels", "MAX_IMAGE_SIDE", "MIN_CLASS_IMAGES",
           "parse_columns",
           "read_concepts", "concept_from_values", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_SIDE = 512  # pixels: larger images are refused unless resized (--resize)
MIN_CLASS_IMAGES = 5  # a class with fewer images is warned about
# two images whose 8x8 thumbnails differ by at most this in every pixel and channel are near
# copies: a re-saved or lightly re-encoded image stays within it, while distinct scenes of small
# objects on one background (render --each, 32x32) differ by 0.1 or more somewhere
NEAR_COPY = 0.05
_FILE_COLUMNS = ("file", "filename", "image", "path")
_AXES = {"x": 0, "y": 1, "z": 2}
_NPZ_META = ("images", "palette_names", "palette_rgb", "shape_names", "info", "concepts")
_DECLARE = ("declare it in a concepts file (--concepts-file: {{\"NAME\": {{\"kind\": "
            "\"continuous\", \"dim\": 1, \"low\": 0, \"high\": 1}}}}) or let it be inferred "
            "from the data (infer=True, the command line's default)")


class LabelledImages(Dataset):
    """Images ``(N, 3, H, W)`` in [0, 1] with labels, indexed like :class:`SceneDataset`.

    ``inferred`` maps each label whose concept was inferred from the data to how
    (``"range 0.18..0.3 from the data"``); ``describe()`` is one line per concept.
    """

    def __init__(self, images: Tensor, labels: dict[str, Tensor], concepts: dict[str, Concept],
                 *, palette: dict[str, tuple] | None = None, source: str = "memory",
                 inferred: dict[str, str] | None = None):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        for k, v in labels.items():
            if v.shape[0] != images.shape[0]:
                raise ValueError(f"label {k!r} has {v.shape[0]} rows for {images.shape[0]} "
                                 "images")
        self.images, self.labels, self.concepts = images, labels, concepts
        self.palette, self.source = palette, source
        self.inferred = dict(inferred or {})
        self.declared: set[str] = set()  # labels whose concept the user declared
        self.image_size = images.shape[-1]
        self.shapes = SHAPES
        # the image file of each item, as the labels file names it (a folder), else None
        self.files: list[str] | None = None
        self.warnings: list[str] = []  # what the loader accepted but the user should know

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"LabelledImages({self.source!r}, n={len(self)}, labels={sorted(self.labels)})"

    def batch(self, indices) -> tuple[Tensor, dict[str, Tensor]]:
        idx = torch.tensor(as_indices(indices, len(self)), dtype=torch.long)
        return self.images[idx], {k: v[idx] for k, v in self.labels.items()}

    def __getitem__(self, i: int):
        i = int(i) + (len(self) if int(i) < 0 else 0)
        images, labels = self.batch([i])
        return images[0], {k: v[0] for k, v in labels.items()}

    def subset(self, indices, *, source: str | None = None) -> LabelledImages:
        """The items at ``indices`` (same concepts, palette and notes)."""
        images, labels = self.batch(indices)
        out = LabelledImages(images, labels, self.concepts, palette=self.palette,
                             source=source or self.source, inferred=self.inferred)
        out.declared = set(self.declared)
        if self.files is not None:
            out.files = [self.files[i] for i in as_indices(indices, len(self))]
        return out

    def describe(self) -> list[str]:
        """One line per concept: kind, range or names, and where it came from."""
        lines = []
        for name, c in self.concepts.items():
            what = (f"categorical over {len(c.values)}: {', '.join(c.values)}"
                    if c.is_categorical else f"continuous, {c.dim}-D, range {c.low:g}..{c.high:g}")
            how = self.inferred.get(name) or ("declared" if name in self.declared
                                              else "built-in scene concept")
            lines.append(f"{name}: {what} ({how})")
        return lines

    def info(self) -> dict:
        return {"source": self.source, "size": len(self), "image_size": self.image_size,
                "palette": {k: list(v) for k, v in (self.palette or {}).items()},
                "concepts": {k: c.to_dict() for k, c in self.concepts.items()},
                "inferred": dict(self.inferred)}


# ----------------------------------------------------------------------------- labels
def _parse_value(concept: Concept, raw, where: str) -> list[float] | int:
    """One label value (list for continuous, index for categorical), validated."""
    if concept.is_categorical:
        if isinstance(raw, (list, tuple, np.ndarray)) and np.asarray(raw).size == 1:
            raw = np.asarray(raw).reshape(-1)[0].item()
        if isinstance(raw, str) and raw.strip() in concept.values:
            return concept.values.index(raw.strip())
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            raw = int(raw)
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
            if not 0 <= int(raw) < concept.dim:
                raise ValueError(f"{where}: {concept.name} index {raw} out of range "
                                 f"[0, {concept.dim - 1}]; use an index in range or a name")
            return int(raw)
        raise ValueError(f"{where}: {concept.name} {raw!r} is not one of "
                         f"{', '.join(concept.values)} (or an index); correct the cell or "
                         f"add {raw!r} to the concept's values")
    try:
        out = [float(v) for v in label_cells(raw)]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {concept.name} value {raw!r} is not a number; correct "
                         "the cell") from None
    if len(out) != concept.dim:
        raise ValueError(f"{where}: {concept.name} needs {concept.dim} number(s), got "
                         f"{len(out)}; say which columns make it up (--columns "
                         f"{concept.name}=a,b)")
    for v in out:
        if not math.isfinite(v) or not concept.low <= v <= concept.high:
            raise ValueError(f"{where}: {concept.name} value {v} outside "
                             f"[{concept.low}, {concept.high}]; correct the cell, widen the "
                             "declared range, or let the range be inferred from the data")
    return out


def _stack(concept: Concept, values: list) -> Tensor:
    if concept.is_categorical:
        return torch.tensor(values, dtype=torch.long)
    return torch.tensor(values, dtype=torch.float32).reshape(len(values), concept.dim)


def _label_groups(keys: Sequence[str], columns: dict[str, tuple[str, ...]],
                  where: str) -> dict[str, list[str]]:
    """``{label: [column, ...]}``: the explicit map first, then ``name_x``/``name_0`` columns
    grouped by prefix, then bare ``x, y`` (``z``) as ``position`` when it is free."""
    groups: dict[str, list[str]] = {}
    used: set[str] = set()
    for name, cols in columns.items():
        missing = [c for c in cols if c not in keys]
        if missing:
            raise ValueError(f"{where}: --columns {name}={','.join(cols)} names "
                             f"{missing}, which are not among the columns {list(keys)}; "
                             "correct the map or the header")
        groups[name] = list(cols)
        used.update(cols)
    rest = [k for k in keys if k not in used]
    bare = [k for k in rest if k.strip().lower() in _AXES]
    if len(bare) >= 2 and "position" not in groups and "position" not in rest:
        groups["position"] = sorted(bare, key=lambda k: _AXES[k.strip().lower()])
        rest = [k for k in rest if k not in bare]
    parts: dict[str, list[tuple[int, str]]] = {}
    for col in rest:
        m = re.fullmatch(r"(.+)_([xyz]|\d+)", col.strip())
        name = m.group(1) if m else col.strip()
        pos = (_AXES.get(m.group(2)) if m.group(2) in _AXES else int(m.group(2))) if m else 0
        parts.setdefault(name, []).append((pos, col))
    for name, cols in parts.items():
        if name in groups:
            raise ValueError(f"{where}: label {name!r} is made both by --columns and by the "
                             f"columns {[c for _, c in cols]}; rename one")
        groups[name] = [c for _, c in sorted(cols)]
    return groups


def _csv_records(path: Path, columns) -> list[tuple[str, dict, str]]:
    """``(file, {label: raw value}, where)`` per row; vector columns grouped (see above)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        file_col = next((c for c in header if c.strip().lower() in _FILE_COLUMNS), None)
        if file_col is None:
            raise ValueError(f"{path} line 1: no file column in {header}; name the column of "
                             f"image file names one of {', '.join(_FILE_COLUMNS)}")
        groups = _label_groups([c for c in header if c != file_col], columns,
                               f"{path} line 1")
        rows = []
        for r, row in enumerate(reader, start=2):  # line 1 is the header
            file = (row.get(file_col) or "").strip()
            where = f"{path.name} line {r} ({file or 'no file'})"
            if not file:
                raise ValueError(f"{where}: empty {file_col!r} cell; fill in the image file "
                                 "or delete the row")
            rec = {}
            for name, cols in groups.items():
                cells = [row.get(c) for c in cols]
                missing = [c for c, v in zip(cols, cells, strict=True)
                           if v is None or not v.strip()]
                if missing:
                    raise ValueError(f"{where}: missing value in column(s) {missing}; fill "
                                     "it in or delete the row")
                rec[name] = cells if len(cells) > 1 else cells[0]
            rows.append((file, rec, where))
    return rows


def _json_records(path: Path, columns) -> list[tuple[str, dict, str]]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} line {err.lineno}: not valid JSON ({err.msg}); fix that "
                         "line") from None
    if isinstance(data, dict):
        bad = next((k for k, v in data.items() if not isinstance(v, dict)), None)
        if bad is not None:
            raise ValueError(f"{path}: the entry {bad!r} holds {type(data[bad]).__name__} "
                             f"{json.dumps(data[bad])[:40]}, not a record of labels; write "
                             "labels.json as [{\"file\": \"a.png\", \"size\": 0.3}, ...] or "
                             "{\"a.png\": {\"size\": 0.3}, ...}")
        data = [{"file": k, **v} for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: expected a list of records [{{\"file\": ..., label: "
                         "value}}] or a {file: {label: value}} mapping")
    rows, groups = [], None
    for i, rec in enumerate(data):
        file = next((rec[c] for c in _FILE_COLUMNS if c in rec), None)
        where = f"{path.name} record {i} ({file or 'no file'})"
        if not file:
            raise ValueError(f"{where}: no 'file' entry; add \"file\": \"name.png\"")
        keys = [k for k in rec if k not in _FILE_COLUMNS]
        if groups is None:
            groups = _label_groups(keys, columns, where)
        flat = {}
        for name, cols in groups.items():
            missing = [c for c in cols if c not in rec]
            if missing:
                raise ValueError(f"{where}: no {missing} entry (record 0 has it); give every "
                                 "record the same labels")
            vals = [rec[c] for c in cols]
            flat[name] = vals if len(vals) > 1 else vals[0]
        extra = set(keys) - {c for cols in groups.values() for c in cols}
        if extra:
            raise ValueError(f"{where}: labels {sorted(extra)} are not in record 0; give "
                             "every record the same labels")
        rows.append((str(file), flat, where))
    return rows


def _read_image(path: Path, where: str) -> Tensor:
    """The package's one reader (:func:`conceptebm.datasets.images.read_image`): ``(3, H, W)``
    in [0, 1]; its errors prefixed with the labels line."""
    if not path.is_file():
        raise ValueError(f"{where}: image file {str(path)!r} does not exist; correct the "
                         "name (relative to the labels' folder) or delete the row")
    try:
        return read_image(path)
    except ImageError as err:
        raise ValueError(f"{where}: {err}; or delete the row") from None


def _resolve(names: Sequence[str], raws: dict[str, list], wheres: list[str],
             concepts: dict[str, Concept], declared: set[str], infer: bool, src: str):
    """The concept of each label (declared, built-in when every value fits, else inferred)
    and its values: ``(used concepts, {name: tensor}, {name: how inferred})``."""
    used, labels, inferred = {}, {}, {}
    for n in names:
        _refuse_words_among_numbers(n, raws[n], wheres, concepts.get(n))
        c = concepts.get(n)
        parsed = None
        if c is not None:
            try:
                parsed = [_parse_value(c, r, w) for r, w in zip(raws[n], wheres, strict=True)]
            except ValueError:
                if n in declared or not infer:
                    raise
        elif not infer:
            raise ValueError(f"{wheres[0]}: label {n!r} has no Concept; known: "
                             f"{', '.join(concepts)}. Pass concepts={{{n!r}: "
                             f"Concept.continuous({n!r}, dim=..., low=..., high=...)}} or "
                             f"Concept.categorical({n!r}, [...names])), "
                             + _DECLARE.replace("NAME", n).format())
        if parsed is None:
            c = concept_from_values(n, raws[n], src)
            how = (f"categorical over {len(c.values)} names" if c.is_categorical
                   else f"range {c.low:g}..{c.high:g}") + " inferred from the data"
            inferred[n] = how
            parsed = [_parse_value(c, r, w) for r, w in zip(raws[n], wheres, strict=True)]
        used[n], labels[n] = c, _stack(c, parsed)
    return used, labels, inferred


def _is_number(raw) -> bool:
    try:
        [float(v) for v in label_cells(raw)]
    except (TypeError, ValueError):
        return False
    return True


def _refuse_words_among_numbers(name: str, raws: list, wheres: list[str],
                                concept: Concept | None) -> None:
    """A label whose values are numbers but for some cells (a word in a column of sizes) is
    refused, naming the first such line and cell: reading it as categories would train a
    model of the wrong kind without a word."""
    if concept is not None and concept.is_categorical:
        return  # names or indices, checked by the concept itself
    numbers = [_is_number(r) for r in raws]
    if not any(numbers) or all(numbers):
        return
    if sum(numbers) < len(numbers) / 2 and concept is None:
        return  # mostly names: a categorical label with some number-like names
    i = numbers.index(False)
    kind = "a built-in numeric concept" if concept is not None else "a numeric label"
    raise ValueError(f"{wheres[i]}: {name} cell {raws[i]!r} is not a number, but {name} is "
                     f"{kind} ({sum(numbers)} of its {len(raws)} values are numbers); correct "
                     f"the cell, or declare {name} categorical in --concepts-file if its "
                     "values are names")


def _dedupe(rows, folder: Path, warnings: list[str]):
    """A file listed twice: kept once when its labels agree, refused naming both lines when
    they differ."""
    def norm(v):
        cells = label_cells(v)
        try:
            return tuple(float(c) for c in cells)
        except (TypeError, ValueError):
            return tuple(str(c).strip() for c in cells)

    seen: dict[Path, tuple] = {}
    kept = []
    for file, rec, where in rows:
        key = (Path(file) if Path(file).is_absolute() else folder / file).resolve()
        if key in seen:
            first_rec, first_where = seen[key]
            differ = [n for n in rec if norm(rec[n]) != norm(first_rec.get(n))]
            if differ:
                n = differ[0]
                raise ValueError(f"{first_where} and {where} list the same image with "
                                 f"different labels ({n} {first_rec.get(n)!r} vs {rec[n]!r}); "
                                 "keep the right line and delete the other")
            warnings.append(f"{first_where} and {where} list the same image with the same "
                            "labels; it is used once")
            continue
        seen[key] = (rec, where)
        kept.append((file, rec, where))
    return kept


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _check_size(n: int, h: int, w: int, where: str, resize: int | None) -> None:
    """Refuse images too large to train on before reading them all: the estimate of the
    images in memory (float32) is in the message."""
    side = resize or max(h, w)
    need = n * 3 * (resize or h) * (resize or w) * 4
    fix = ("pass --resize SIZE (e.g. --resize 64) to resize every image as it is read "
           "(load_images(resize=SIZE)), or resize them first")
    if side > MAX_IMAGE_SIDE:
        raise ValueError(f"{where}: the images are {w}x{h} pixels; the {n} images would take "
                         f"{_gb(need)} in memory and every training step grows with the "
                         f"pixels; images larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} are "
                         f"refused: {fix}")
    free = _available_memory()
    if free is not None and need > 0.8 * free:
        raise ValueError(f"{where}: {n} images of {side}x{side} take {_gb(need)} in memory as "
                         f"float32, more than the {_gb(free)} available; use fewer images or "
                         f"smaller ones: {fix}")


def _load_folder(folder: Path, labels_file: Path | None, concepts, declared, columns, infer,
                 resize: int | None = None, warnings: list[str] | None = None):
    if labels_file is None:
        found = [folder / n for n in ("labels.csv", "labels.json") if (folder / n).is_file()]
        if not found:
            raise ValueError(f"{folder}: no labels file; add labels.csv (file,label,...) or "
                             "labels.json, or pass labels=PATH")
        labels_file = found[0]
    labels_file = Path(labels_file)
    if not labels_file.is_file():
        raise ValueError(f"labels file {str(labels_file)!r} does not exist; pass the path of "
                         "a labels.csv or labels.json")
    suffix = labels_file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"labels file {labels_file.name!r}: use a .csv or .json file")
    rows = (_csv_records(labels_file, columns) if suffix == ".csv"
            else _json_records(labels_file, columns))
    if not rows:
        raise ValueError(f"{labels_file}: no labelled images; add one row per image")
    rows = _dedupe(rows, folder, warnings if warnings is not None else [])
    names = list(rows[0][1])
    raws: dict[str, list] = {n: [] for n in names}
    images, wheres, first = [], [], None
    for file, rec, where in rows:
        path = Path(file) if Path(file).is_absolute() else folder / file
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{where}: {file!r} is not a PNG or JPEG file; convert it or "
                             "delete the row")
        img = _read_image(path, where)
        if first is None:
            _check_size(len(rows), img.shape[1], img.shape[2], where, resize)
        if resize is not None:
            img = resize_image(img, resize)
        if first is None:
            first = (file, img.shape)
        elif img.shape != first[1]:
            raise ValueError(f"{where}: image {file!r} is {img.shape[2]}x{img.shape[1]} but "
                             f"{first[0]!r} is {first[1][2]}x{first[1][1]}; all images must "
                             "have one size (resize them first)")
        images.append(img)
        wheres.append(where)
        for n in names:
            raws[n].append(rec[n])
    x = torch.stack(images)  # (N, 3, H, W) in [0, 1]
    used, labels, inferred = _resolve(sorted(names), raws, wheres, concepts, declared, infer,
                                      str(labels_file))
    return x, labels, used, inferred, str(labels_file), [file for file, _, _ in rows]


def _load_npz(path: Path, concepts, declared, columns, infer, resize: int | None = None):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {str(path)!r} as .npz ({err}); write it with "
                         "numpy.savez (no pickled objects)") from None
    if "images" not in data:
        raise ValueError(f"{path.name}: no 'images' array (found {', '.join(data.files)}); "
                         "store the images as images=(N, H, W, 3) uint8")
    ims = data["images"]
    if ims.ndim != 4 or 3 not in (ims.shape[1], ims.shape[-1]):
        raise ValueError(f"{path.name}: 'images' must be (N, H, W, 3) or (N, 3, H, W), got "
                         f"{ims.shape}; stack RGB images along a first axis")
    chw = not (ims.shape[-1] == 3 and ims.shape[1] != 3)
    _check_size(ims.shape[0], ims.shape[2 if chw else 1], ims.shape[3 if chw else 2],
                path.name, resize)
    x = torch.from_numpy(np.ascontiguousarray(ims))
    x = x if chw else x.permute(0, 3, 1, 2)
    if ims.dtype == np.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        bad = ~torch.isfinite(x) | (x < 0) | (x > 1)
        if bad.any():
            i = int(bad.flatten(1).any(1).nonzero()[0])
            raise ValueError(f"{path.name}: images[{i}] has values outside [0, 1]; store "
                             "uint8 or floats in [0, 1]")
    if resize is not None and tuple(x.shape[-2:]) != (resize, resize):
        x = torch.cat([resize_image(x[i:i + 256], resize) for i in range(0, x.shape[0], 256)])
    palette = None
    if "palette_names" in data and "palette_rgb" in data:
        names = [str(s) for s in data["palette_names"]]
        palette = {n: tuple(float(c) for c in rgb) for n, rgb in zip(
            names, data["palette_rgb"], strict=True)}
        concepts = {**concepts, "color": Concept.categorical("color", names)}
        declared = declared | {"color"}
    if "concepts" in data:
        stored = concepts_from(json.loads(str(data["concepts"])), f"{path.name} 'concepts'")
        concepts = {**concepts, **{k: v for k, v in stored.items() if k not in declared}}
        declared = declared | set(stored)
    keys = [k for k in data.files if k not in _NPZ_META]
    groups = _label_groups(keys, columns, path.name)
    raws, names = {}, []
    for name, cols in groups.items():
        arrs = []
        for key in cols:
            arr = data[key]
            if arr.shape[0] != x.shape[0]:
                raise ValueError(f"{path.name}: label {key!r} has {arr.shape[0]} rows for "
                                 f"{x.shape[0]} images; store one row per image")
            arrs.append(arr.reshape(arr.shape[0], -1))
        arr = np.concatenate(arrs, axis=1) if len(arrs) > 1 else arrs[0]
        raws[name] = [row.tolist() if row.size > 1 else row[0].item() for row in arr]
        names.append(name)
    wheres = [f"{path.name} {{}}[{i}]" for i in range(x.shape[0])]
    used, labels, inferred = {}, {}, {}
    for n in sorted(names):  # each label's 'where' names its array and row
        u, lab, inf = _resolve([n], {n: raws[n]}, [w.format(n) for w in wheres], concepts,
                               declared, infer, path.name)
        used.update(u)
        labels.update(lab)
        inferred.update(inf)
    return x, labels, used, inferred, palette, str(path)


def load_images(path, labels=None, *, concepts: dict[str, Concept] | None = None,
                columns: Mapping | Sequence[str] | None = None, infer: bool = False,
                resize: int | None = None) -> LabelledImages:
    """Load a folder (+ labels.csv / labels.json, or ``labels=PATH``) or an ``.npz`` file.

    Args:
        concepts: declared concepts by label name (they win over everything else).
        columns: which columns make up a label (``{"position": ("x", "y")}`` or
            ``["position=x,y"]``).
        infer: infer a concept from the data for labels that are undeclared or do not fit
            the built-in scene concept (default off: such labels raise).
        resize: resize every image to ``resize x resize`` pixels as it is read (images
            larger than :data:`MAX_IMAGE_SIDE` are refused without it).
    """
    path = Path(path)
    declared = dict(concepts or {})
    cols = parse_columns(columns)
    if path.is_dir() and (path / "concepts.json").is_file():
        declared = {**read_concepts(path / "concepts.json"), **declared}
    known = {**scene_concepts(), **declared}
    files, warnings = None, []
    if path.is_file() and path.suffix.lower() == ".npz":
        x, lab, used, inferred, palette, src = _load_npz(path, known, set(declared), cols, infer,
                                                         resize)
    elif path.is_dir():
        x, lab, used, inferred, src, files = _load_folder(path, labels, known, set(declared),
                                                          cols, infer, resize, warnings)
        palette = dict(PALETTE) if "color" in used and used["color"].values == tuple(
            PALETTE) else None
    else:
        raise ValueError(f"{str(path)!r} is neither a folder of images nor an .npz file; pass "
                         "a folder holding labels.csv / labels.json, or an .npz")
    out = LabelledImages(x, lab, used, palette=palette, source=src, inferred=inferred)
    out.files, out.warnings = files, warnings
    builtin = scene_concepts()
    out.declared = {n for n, c in used.items() if n not in inferred
                    and (n in declared or builtin.get(n) != c)}
    return out


def split_holdout(dataset: LabelledImages, holdout: float | int | None = None, *,
                  seed: int = 0) -> tuple[LabelledImages, LabelledImages]:
    """A seeded ``(train, held_out)`` split. ``holdout``: a count (>= 1) or a fraction (< 1);
    ``None`` holds out 20% of the images, at most 300.

    >>> ds = LabelledImages(torch.zeros(10, 3, 8, 8), {}, {})
    >>> [len(p) for p in split_holdout(ds, 0.3, seed=0)]
    [7, 3]
    """
    n = len(dataset)
    if holdout is None:
        k = min(300, round(0.2 * n))
    elif 0 < holdout < 1:
        k = round(holdout * n)
    elif holdout >= 1 and float(holdout).is_integer():
        k = int(holdout)
    else:
        raise ValueError(f"holdout must be a count >= 1 or a fraction in (0, 1), got {holdout!r}")
    if not 1 <= k < n:
        raise ValueError(f"holdout {holdout!r} leaves {n - k} of {n} images to train on; hold "
                         "out fewer (e.g. --holdout 0.2)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return (dataset.subset(sorted(perm[k:]), source=f"{dataset.source} (train)"),
            dataset.subset(sorted(perm[:k]), source=f"{dataset.source} (held out)"))


def check_training_labels(train: LabelledImages, held: LabelledImages, name: str) -> list[str]:
    """Check the labels of concept ``name`` for training on ``train`` (scored on ``held``):
    raise ``ValueError`` when they hold one value or one class (nothing to learn); return
    warnings for classes of fewer than :data:`MIN_CLASS_IMAGES` images (with the counts) and
    for held-out images that are near-copies of training images (their score would flatter).
    """
    c = train.concepts[name]
    both = torch.cat([torch.as_tensor(train.labels[name]), torch.as_tensor(held.labels[name])])
    warnings = []
    if c.is_categorical:
        counts = torch.bincount(both.long().reshape(-1), minlength=len(c.values))
        present = [(c.values[i], int(k)) for i, k in enumerate(counts.tolist()) if k]
        if len(present) < 2:
            raise ValueError(f"{train.source}: every image has {name} {present[0][0]!r}, so "
                             f"there is nothing to learn about {name}; add images of other "
                             f"{name} values or train another concept")
        few = [(v, k) for v, k in present if k < MIN_CLASS_IMAGES]
        if few:
            shown = ", ".join(f"{v!r} {k}" for v, k in few)
            warnings.append(f"{name}: few images of some classes ({shown}; fewer than "
                            f"{MIN_CLASS_IMAGES} each): the model learns little about them; "
                            "add images of those classes or merge them")
    elif bool((both == both[:1]).all()):
        shown = ", ".join(f"{v:.6g}" for v in both[0].reshape(-1).tolist())
        raise ValueError(f"{train.source}: every image has {name} {shown}, so there is "
                         f"nothing to learn about {name}; "
                         "add images of other values or train another concept")
    pairs = _near_copies(held.images, train.images)
    if pairs:
        hi, ti = pairs[0]

        def name_of(ds, i):
            return ds.files[i] if ds.files else f"image {i}"

        warnings.append(f"{len(pairs)} of the {len(held)} held-out images are near-copies of "
                        f"training images (e.g. {name_of(held, hi)} and {name_of(train, ti)}): "
                        "the held-out score will flatter the model; remove the copies")
    return warnings


def _near_copies(held: Tensor, train: Tensor, chunk: int = 512) -> list[tuple[int, int]]:
    """``(held index, train index)`` of held-out images whose 8x8 thumbnail is within
    :data:`NEAR_COPY` of a training image's in every pixel and channel."""
    if len(held) == 0 or len(train) == 0:
        return []

    def thumb(x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1)

    h = thumb(held)
    best = torch.full((len(held),), float("inf"))
    arg = torch.zeros(len(held), dtype=torch.long)
    for lo in range(0, len(train), chunk):
        t = thumb(train[lo:lo + chunk])
        d = torch.cdist(h, t, p=float("inf"))  # (held, chunk) largest |difference|
        m, i = d.min(1)
        better = m < best
        best[better], arg[better] = m[better], i[better] + lo
    return [(i, int(arg[i])) for i in range(len(held)) if best[i] <= NEAR_COPY]


def save_npz(dataset, path, indices=None, *, concepts: dict[str, Concept] | None = None
             ) -> Path:
    """Write ``dataset`` items (default all) to ``path`` (.npz): uint8 images, labels, the
    palette's names and RGB table, a JSON description, and ``concepts`` (declared concepts,
    default the dataset's own for labels beyond the scene ones); :func:`load_images` reads it."""
    if getattr(dataset, "n_objects", 1) != 1:
        raise ValueError("save_npz stores one labelled object per image; this dataset has "
                         f"{dataset.n_objects} per scene")
    idx = range(len(dataset)) if indices is None else indices
    images, labels = dataset.batch(idx)
    arrays = {"images": (images.clamp(0, 1) * 255).round().to(torch.uint8)
              .permute(0, 2, 3, 1).numpy()}
    own = getattr(dataset, "concepts", {}) or {}
    keep = [k for k in labels if k in ("position", "size", "color", "shape")
            or k in own or k in (concepts or {})]
    for k in keep:
        arrays[k] = torch.as_tensor(labels[k]).numpy()
    palette = getattr(dataset, "palette", None) or {}
    if palette:
        arrays["palette_names"] = np.array(list(palette))
        arrays["palette_rgb"] = np.array(list(palette.values()), dtype=np.float32)
    arrays["shape_names"] = np.array(list(SHAPES))
    builtin = scene_concepts()
    declare = {k: c for k, c in {**own, **(concepts or {})}.items()
               if k in keep and (k not in builtin or c != builtin[k]) and k != "color"}
    if declare:
        arrays["concepts"] = np.array(json.dumps({k: c.to_dict() for k, c in declare.items()}))
    if hasattr(dataset, "info"):
        arrays["info"] = np.array(json.dumps(dataset.info()))
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def _columns_of(name: str, concept: Concept) -> list[str]:
    if concept.is_categorical or concept.dim == 1:
        return [name]
    axes = "xyz" if concept.dim <= 3 else None
    return [f"{name}_{axes[i] if axes else i}" for i in range(concept.dim)]


def label_table(files: Sequence[str], labels: Mapping[str, Tensor],
                concepts: Mapping[str, Concept]) -> tuple[list[str], list[list[str]], dict]:
    """``(header, rows, own concepts)`` of a ``labels.csv`` in :func:`load_images`' own layout
    for images ``files`` (names for categories, ``name_x, name_y`` for 2-D values); ``own``
    holds the concepts that are not the built-in scene ones (for ``concepts.json``). Labels
    without a concept are left out."""
    names = [k for k in labels if k in concepts]
    header = ["file"] + [c for k in names for c in _columns_of(k, concepts[k])]
    builtin = scene_concepts()
    own = {k: concepts[k].to_dict() for k in names if builtin.get(k) != concepts[k]}
    rows = []
    for j, name in enumerate(files):
        row = [name]
        for k in names:
            c, v = concepts[k], torch.as_tensor(labels[k][j])
            row += ([c.values[int(v)]] if c.is_categorical
                    else [f"{float(t):.6g}" for t in v.reshape(-1)])
        rows.append(row)
    return header, rows, own


def save_folder(images: Tensor, labels: Mapping[str, Tensor], concepts: Mapping[str, Concept],
                folder, *, prefix: str = "img", start: int = 0, append: bool = False) -> Path:
    """Write ``images (n, 3, H, W)`` in [0, 1] as ``folder/{prefix}_{i:05d}.png`` with a
    ``labels.csv`` in :func:`load_images`' own layout (names for categories, ``name_x,
    name_y`` for 2-D values) and a ``concepts.json`` for concepts that are not the built-in
    scene ones, so ``load_images(folder)`` reads back the same labels. Labels without a
    concept are left out. ``append`` adds rows to an existing ``labels.csv`` (chunked writes).

    >>> import tempfile
    >>> size = Concept.continuous("size", 1, 0.25, 0.45)
    >>> folder = save_folder(torch.rand(2, 3, 8, 8), {"size": torch.tensor([[0.3], [0.4]])},
    ...                      {"size": size}, tempfile.mkdtemp())
    >>> [round(v, 3) for v in load_images(folder).labels["size"][:, 0].tolist()]
    [0.3, 0.4]
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = [f"{prefix}_{start + j:05d}.png" for j in range(images.shape[0])]
    header, rows, own = label_table(files, labels, concepts)
    if own and not append:
        (folder / "concepts.json").write_text(json.dumps(own, indent=1))
    write_pngs(images, [folder / f for f in files])
    csv_path = folder / "labels.csv"
    new = not (append and csv_path.is_file())
    with open(csv_path, "w" if new else "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(header)
        w.writerows(rows)
    return folder

"""A user's own labelled images in the scene-dataset interface, with loud validation.

Three layouts load with :func:`load_images`:

* a folder of PNG/JPEG files plus ``labels.csv``: a ``file`` column, then one column per
  scalar label (``size``, ``color``) and ``name_x, name_y`` (or ``name_0, name_1``) columns
  for vector labels (``position_x, position_y``). Categorical values are names (``red``) or
  indices;
* the same folder with ``labels.json``: a list of ``{"file": ..., "position": [x, y],
  "color": "red", ...}`` records, or a ``{file: {label: value}}`` mapping;
* an ``.npz`` with ``images`` ``(N, H, W, 3)`` uint8 (or float in [0, 1], or ``(N, 3, H, W)``)
  and one array per label (``position`` ``(N, 2)``, ``color`` ``(N,)`` of indices or names),
  optionally ``palette_names`` / ``palette_rgb``. :func:`save_npz` writes this layout,
  palette table included.

Each label needs a :class:`~conceptebm.concepts.Concept` (its range or category names): the
scene concepts ``position``, ``size``, ``color``, ``shape`` are known; pass ``concepts=`` for
others. Missing files, unreadable images, mixed image sizes, and labels that are missing, of
the wrong width or out of range raise ``ValueError`` naming the file and the problem.

Example:
    >>> ds = load_images("my_scenes/")               # doctest: +SKIP
    >>> images, labels = ds.batch([0, 1, 2])         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from conceptebm.concepts import Concept
from conceptebm.datasets.dataset import _as_indices, scene_concepts
from conceptebm.datasets.scene import PALETTE, SHAPES

__all__ = ["LabelledImages", "load_images", "save_npz", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FILE_COLUMNS = ("file", "filename", "image", "path")
_AXES = {"x": 0, "y": 1, "z": 2}


class LabelledImages(Dataset):
    """Images ``(N, 3, H, W)`` in [0, 1] with labels, indexed like :class:`SceneDataset`."""

    def __init__(self, images: Tensor, labels: dict[str, Tensor], concepts: dict[str, Concept],
                 *, palette: dict[str, tuple] | None = None, source: str = "memory"):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        for k, v in labels.items():
            if v.shape[0] != images.shape[0]:
                raise ValueError(f"label {k!r} has {v.shape[0]} rows for {images.shape[0]} "
                                 "images")
        self.images, self.labels, self.concepts = images, labels, concepts
        self.palette, self.source = palette, source
        self.image_size = images.shape[-1]
        self.shapes = SHAPES

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"LabelledImages({self.source!r}, n={len(self)}, labels={sorted(self.labels)})"

    def batch(self, indices) -> tuple[Tensor, dict[str, Tensor]]:
        idx = torch.tensor(_as_indices(indices, len(self)), dtype=torch.long)
        return self.images[idx], {k: v[idx] for k, v in self.labels.items()}

    def __getitem__(self, i: int):
        i = int(i) + (len(self) if int(i) < 0 else 0)
        images, labels = self.batch([i])
        return images[0], {k: v[0] for k, v in labels.items()}

    def info(self) -> dict:
        return {"source": self.source, "size": len(self), "image_size": self.image_size,
                "palette": {k: list(v) for k, v in (self.palette or {}).items()},
                "concepts": {k: c.to_dict() for k, c in self.concepts.items()}}


# ----------------------------------------------------------------------------- labels
def _concept_for(name: str, concepts: dict[str, Concept], where: str) -> Concept:
    if name not in concepts:
        raise ValueError(
            f"{where}: label {name!r} has no Concept; known: {', '.join(concepts)}. Pass "
            f"concepts={{{name!r}: Concept.continuous({name!r}, dim=..., low=..., high=...)}} "
            f"or Concept.categorical({name!r}, [...names])")
    return concepts[name]


def _parse_value(concept: Concept, raw, where: str) -> list[float] | int:
    """One label value (list for continuous, index for categorical), validated."""
    if concept.is_categorical:
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            raw = int(raw)
        if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
            if not 0 <= int(raw) < concept.dim:
                raise ValueError(f"{where}: {concept.name} index {raw} out of range "
                                 f"[0, {concept.dim - 1}]")
            return int(raw)
        if isinstance(raw, str) and raw.strip() in concept.values:
            return concept.values.index(raw.strip())
        raise ValueError(f"{where}: {concept.name} {raw!r} is not one of "
                         f"{', '.join(concept.values)} (or an index)")
    vals = raw if isinstance(raw, (list, tuple, np.ndarray)) else [raw]
    try:
        out = [float(v) for v in np.asarray(vals, dtype=object).reshape(-1)]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {concept.name} value {raw!r} is not a number") from None
    if len(out) != concept.dim:
        raise ValueError(f"{where}: {concept.name} needs {concept.dim} number(s), got {len(out)}")
    for v in out:
        if not math.isfinite(v) or not concept.low <= v <= concept.high:
            raise ValueError(f"{where}: {concept.name} value {v} outside "
                             f"[{concept.low}, {concept.high}]")
    return out


def _stack(concept: Concept, values: list) -> Tensor:
    if concept.is_categorical:
        return torch.tensor(values, dtype=torch.long)
    return torch.tensor(values, dtype=torch.float32).reshape(len(values), concept.dim)


def _csv_records(path: Path) -> list[tuple[str, dict, str]]:
    """``(file, {label: raw value}, where)`` per row; vector columns grouped by prefix."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        file_col = next((c for c in header if c.strip().lower() in _FILE_COLUMNS), None)
        if file_col is None:
            raise ValueError(f"{path}: no file column; name one of {', '.join(_FILE_COLUMNS)}")
        groups: dict[str, list[tuple[int, str]]] = {}
        for col in header:
            if col == file_col:
                continue
            m = re.fullmatch(r"(.+)_([xyz]|\d+)", col.strip())
            name, pos = (m.group(1), _AXES.get(m.group(2), None)) if m else (col.strip(), 0)
            if m and pos is None:
                pos = int(m.group(2))
            groups.setdefault(name, []).append((pos, col))
        rows = []
        for r, row in enumerate(reader, start=2):  # line 1 is the header
            file = (row.get(file_col) or "").strip()
            where = f"{path.name} line {r} ({file or 'no file'})"
            if not file:
                raise ValueError(f"{where}: empty {file_col!r} cell")
            rec = {}
            for name, cols in groups.items():
                cells = [row.get(c) for _, c in sorted(cols)]
                if any(c is None or not c.strip() for c in cells):
                    missing = [c for (_, c), v in zip(sorted(cols), cells, strict=True)
                               if v is None or not v.strip()]
                    raise ValueError(f"{where}: missing value in column(s) {missing}")
                rec[name] = cells if len(cells) > 1 else cells[0]
            rows.append((file, rec, where))
    return rows


def _json_records(path: Path) -> list[tuple[str, dict, str]]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):
        data = [{"file": k, **v} for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: expected a list of records or a {{file: labels}} mapping")
    rows = []
    for i, rec in enumerate(data):
        file = next((rec[c] for c in _FILE_COLUMNS if c in rec), None)
        where = f"{path.name} record {i} ({file or 'no file'})"
        if not file:
            raise ValueError(f"{where}: no 'file' entry")
        rows.append((str(file), {k: v for k, v in rec.items() if k not in _FILE_COLUMNS},
                     where))
    return rows


def _read_image(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ValueError(f"{where}: image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{where}: cannot read image {str(path)!r} ({err})") from None


def _load_folder(folder: Path, labels_file: Path | None, concepts: dict[str, Concept]):
    if labels_file is None:
        found = [folder / n for n in ("labels.csv", "labels.json") if (folder / n).is_file()]
        if not found:
            raise ValueError(f"{folder}: no labels file; add labels.csv or labels.json, or pass "
                             "labels=PATH")
        labels_file = found[0]
    labels_file = Path(labels_file)
    if not labels_file.is_file():
        raise ValueError(f"labels file {str(labels_file)!r} does not exist")
    suffix = labels_file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"labels file {labels_file.name!r}: use a .csv or .json file")
    rows = _csv_records(labels_file) if suffix == ".csv" else _json_records(labels_file)
    if not rows:
        raise ValueError(f"{labels_file}: no labelled images")
    names = set(rows[0][1])
    values: dict[str, list] = {n: [] for n in names}
    images, first = [], None
    for file, rec, where in rows:
        if set(rec) != names:
            raise ValueError(f"{where}: labels {sorted(rec)} differ from the first row's "
                             f"{sorted(names)}")
        path = Path(file) if Path(file).is_absolute() else folder / file
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{where}: {file!r} is not a PNG or JPEG file")
        img = _read_image(path, where)
        if first is None:
            first = (file, img.shape)
        elif img.shape != first[1]:
            raise ValueError(f"{where}: image {file!r} is {img.shape[1]}x{img.shape[0]} but "
                             f"{first[0]!r} is {first[1][1]}x{first[1][0]}; all images must "
                             "have one size (resize them first)")
        images.append(img)
        for n in names:
            values[n].append(_parse_value(_concept_for(n, concepts, where), rec[n], where))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    used = {n: concepts[n] for n in sorted(names)}
    return x, {n: _stack(used[n], values[n]) for n in sorted(names)}, used, str(labels_file)


def _load_npz(path: Path, concepts: dict[str, Concept]):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {str(path)!r} as .npz ({err})") from None
    if "images" not in data:
        raise ValueError(f"{path.name}: no 'images' array (found {', '.join(data.files)})")
    ims = data["images"]
    if ims.ndim != 4 or 3 not in (ims.shape[1], ims.shape[-1]):
        raise ValueError(f"{path.name}: 'images' must be (N, H, W, 3) or (N, 3, H, W), got "
                         f"{ims.shape}")
    x = torch.from_numpy(np.ascontiguousarray(ims))
    x = x.permute(0, 3, 1, 2) if ims.shape[-1] == 3 and ims.shape[1] != 3 else x
    if ims.dtype == np.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        bad = ~torch.isfinite(x) | (x < 0) | (x > 1)
        if bad.any():
            i = int(bad.flatten(1).any(1).nonzero()[0])
            raise ValueError(f"{path.name}: images[{i}] has values outside [0, 1]; store "
                             "uint8 or floats in [0, 1]")
    palette = None
    if "palette_names" in data and "palette_rgb" in data:
        names = [str(s) for s in data["palette_names"]]
        palette = {n: tuple(float(c) for c in rgb) for n, rgb in zip(
            names, data["palette_rgb"], strict=True)}
        concepts = {**concepts, "color": Concept.categorical("color", names)}
    skip = {"images", "palette_names", "palette_rgb", "shape_names", "info"}
    labels, used = {}, {}
    for key in data.files:
        if key in skip:
            continue
        arr = data[key]
        c = _concept_for(key, concepts, path.name)
        if arr.shape[0] != x.shape[0]:
            raise ValueError(f"{path.name}: label {key!r} has {arr.shape[0]} rows for "
                             f"{x.shape[0]} images")
        vals = [_parse_value(c, arr[i].item() if arr[i].ndim == 0 else arr[i].tolist(),
                             f"{path.name} {key}[{i}]") for i in range(arr.shape[0])]
        labels[key], used[key] = _stack(c, vals), c
    return x, labels, used, palette, str(path)


def load_images(path, labels=None, *, concepts: dict[str, Concept] | None = None
                ) -> LabelledImages:
    """Load a folder (+ labels.csv / labels.json, or ``labels=PATH``) or an ``.npz`` file."""
    path = Path(path)
    known = {**scene_concepts(), **(concepts or {})}
    if path.is_file() and path.suffix.lower() == ".npz":
        x, lab, used, palette, src = _load_npz(path, known)
    elif path.is_dir():
        x, lab, used, src = _load_folder(path, labels, known)
        palette = dict(PALETTE) if "color" in used and used["color"].values == tuple(
            PALETTE) else None
    else:
        raise ValueError(f"{str(path)!r} is neither a folder of images nor an .npz file")
    return LabelledImages(x, lab, used, palette=palette, source=src)


def save_npz(dataset, path, indices=None) -> Path:
    """Write ``dataset`` items (default all) to ``path`` (.npz): uint8 images, labels, the
    palette's names and RGB table, and a JSON description; :func:`load_images` reads it."""
    if getattr(dataset, "n_objects", 1) != 1:
        raise ValueError("save_npz stores one labelled object per image; this dataset has "
                         f"{dataset.n_objects} per scene")
    idx = range(len(dataset)) if indices is None else indices
    images, labels = dataset.batch(idx)
    arrays = {"images": (images.clamp(0, 1) * 255).round().to(torch.uint8)
              .permute(0, 2, 3, 1).numpy()}
    for k in ("position", "size", "color", "shape"):
        if k in labels:
            arrays[k] = labels[k].numpy()
    palette = getattr(dataset, "palette", None) or {}
    if palette:
        arrays["palette_names"] = np.array(list(palette))
        arrays["palette_rgb"] = np.array(list(palette.values()), dtype=np.float32)
    arrays["shape_names"] = np.array(list(SHAPES))
    if hasattr(dataset, "info"):
        arrays["info"] = np.array(json.dumps(dataset.info()))
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path

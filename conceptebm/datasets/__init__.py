"""Procedural 3-D scenes, their datasets, and loaders for a user's own labelled images.

* :func:`make_dataset` (contract): a named dataset, item ``i`` a pure function of (seed, i);
  ``dataset.batch(indices)`` renders a whole batch in one vectorised call.
* :func:`render`: the vectorised torch ray caster behind them (sphere, cube, cylinder on a
  ground plane; perspective camera; directional light with shadows).
* :func:`load_images`: a user's labelled images (folder + CSV/JSON, or .npz) in the same
  interface (``batch``, ``concepts``, ``palette``); :func:`save_npz` writes that .npz.
* :func:`read_image`: the one image-file reader (``(3, H, W)`` in [0, 1], any PNG flavour).
* Axis convention (default camera): world +x is image right, world +y is image up.

Example:
    >>> ds = make_dataset("position", size=1000, seed=0)
    >>> images, labels = ds.batch(range(8))
    >>> images.shape, sorted(labels)
    (torch.Size([8, 3, 32, 32]), ['color', 'light', 'position', 'shape', 'size', 'view'])
"""

from conceptebm.datasets.dataset import LABEL_DOCS, MultiViewDataset, SceneDataset, scene_concepts
from conceptebm.datasets.factories import DATASETS, make_dataset
from conceptebm.datasets.images import ImageError, read_image
from conceptebm.datasets.renderer import render
from conceptebm.datasets.sampling import SceneSpec
from conceptebm.datasets.scene import (
    DEFAULT_LIGHT,
    DEFAULT_VIEW,
    PALETTE,
    SHAPES,
    SIZE_RANGE,
    Scene,
    project,
)
from conceptebm.datasets.user import (
    LabelledImages,
    concept_from_values,
    load_images,
    parse_columns,
    read_concepts,
    save_folder,
    save_npz,
    split_holdout,
)

#: What a user needs; the rest stays importable from its module.
__all__ = [
    "make_dataset",
    "DATASETS",
    "SceneDataset",
    "MultiViewDataset",
    "render",
    "scene_concepts",
    "PALETTE",
    "SHAPES",
    "LabelledImages",
    "load_images",
    "save_folder",
    "save_npz",
    "split_holdout",
    "read_concepts",
    "read_image",
    "ImageError",
]

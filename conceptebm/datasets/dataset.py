"""Procedural scene datasets: item ``i`` is a pure function of ``(seed, i)``.

Example:
    >>> from conceptebm.datasets import make_dataset
    >>> ds = make_dataset("position", size=100, seed=0)
    >>> image, labels = ds[3]
    >>> image.shape, labels["position"].shape, labels["color"].dtype
    (torch.Size([3, 32, 32]), torch.Size([2]), torch.int64)
    >>> images, labels = ds.batch([0, 1, 2])        # one vectorised render
    >>> images.shape, labels["position"].shape
    (torch.Size([3, 3, 32, 32]), torch.Size([3, 2]))
    >>> ds.concepts["color"].encode(labels["color"]).shape   # one-hot for an EBM
    torch.Size([3, 8])
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from conceptebm.concepts import Concept
from conceptebm.datasets.renderer import render
from conceptebm.datasets.sampling import SceneSpec, item_uniforms, name_salt, sample_scenes
from conceptebm.datasets.scene import (
    PALETTE,
    POSITION_RANGE,
    POSITION_TOLERANCES,
    SHAPES,
    Scene,
)

__all__ = ["SceneDataset", "MultiViewDataset", "scene_concepts", "LABEL_DOCS"]

LABEL_DOCS = {
    "position": "float (2,): ground position (x, y) in [-1, 1]^2; +x image right, +y image up",
    "size": "float (1,): radius / half-edge / cylinder radius and half-height, world units",
    "color": "long (): index into dataset.palette (name -> RGB)",
    "shape": "long (): index into ('sphere', 'cube', 'cylinder')",
    "view": "float (4,): camera (azimuth_deg, elevation_deg, distance, fov_deg)",
    "light": "float (7,): light (azimuth_deg, elevation_deg, intensity, ambient, r, g, b)",
    "scene": "long (): multi-view sets only: which scene (shared position) the view shows",
}


def scene_concepts(size_range=(0.25, 0.45)) -> dict[str, Concept]:
    """The :class:`Concept` of each object label of the scene datasets: the one place they
    are declared (evaluation scores each by its declaration: ``position`` by distance within
    :data:`~conceptebm.datasets.scene.POSITION_TOLERANCES` and MAE, ``size`` by MAE,
    ``color`` and ``shape`` by accuracy).

    Example:
        >>> c = scene_concepts()
        >>> c["position"].accuracy_tolerances, c["size"].accuracy_tolerances, c["shape"].values
        ((0.4, 0.15), (), ('sphere', 'cube', 'cylinder'))
    """
    return {
        "position": Concept.continuous("position", dim=2, low=POSITION_RANGE[0],
                                       high=POSITION_RANGE[1], tolerances=POSITION_TOLERANCES),
        "size": Concept.continuous("size", dim=1, low=size_range[0], high=size_range[1]),
        "color": Concept.categorical("color", list(PALETTE)),
        "shape": Concept.categorical("shape", SHAPES),
    }


def as_indices(indices, length: int) -> list[int]:
    """Item indices of a dataset of ``length`` items from an int, slice, sequence or tensor."""
    if isinstance(indices, slice):
        return list(range(length))[indices]
    if isinstance(indices, Tensor):
        indices = indices.reshape(-1).tolist()
    out = [int(i) for i in indices]
    for i in out:
        if not 0 <= i < length:
            raise IndexError(f"index {i} out of range for a dataset of size {length}")
    return out


class SceneDataset(Dataset):
    """Rendered scenes with labels; ``ds[i] -> (image (3, H, W) float32 in [0, 1], labels)``.

    Labels (see :data:`LABEL_DOCS`): ``position``, ``size``, ``color``, ``shape`` of the
    labelled object(s), stacked on a leading object dim when ``n_objects > 1``; ``view`` and
    ``light`` of the scene. ``batch(indices)`` renders many items in one vectorised call and
    equals stacking ``ds[i]`` (to float rounding, ~1e-7: vectorised sin/cos can differ in
    the last bit with the batch size); labels are exact.

    Attributes:
        name, seed, image_size, spec: how the dataset was made.
        concept: the concept this dataset is about (``None`` for "general").
        concepts: ``name -> Concept`` for every object label (use ``.encode``).
        device: where ``batch`` puts images and labels (scenes are sampled on the CPU).
        palette: colour name -> RGB albedo, in label order; shapes: shape names in label order.
    """

    def __init__(self, spec: SceneSpec, *, size: int = 10_000, seed: int = 0,
                 image_size: int = 32, name: str = "custom", concept: str | None = None,
                 antialias: int = 1, device=None, salt: str | None = None):
        if int(size) != size or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        if int(image_size) != image_size or image_size < 4:
            raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
        self.spec, self.size, self.seed = spec, int(size), int(seed)
        self.image_size, self.name, self.concept = int(image_size), name, concept
        self.antialias, self.device = antialias, device
        self.salt = name_salt(salt or name)  # different names: different random streams
        self.concepts = scene_concepts(spec.size_range)
        self.palette = dict(PALETTE)
        self.shapes = SHAPES
        self.n_objects = spec.n_objects

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (f"SceneDataset({self.name!r}, size={self.size}, seed={self.seed}, "
                f"image_size={self.image_size})")

    def scenes(self, indices) -> Scene:
        """The scene parameters of these items (render them with ``render``)."""
        return self.scenes_and_labels(indices)[0]

    def scenes_and_labels(self, indices) -> tuple[Scene, dict[str, Tensor]]:
        idx = as_indices(indices, self.size)
        u = item_uniforms(self.seed, idx, self.spec.num_draws, salt=self.salt)
        return sample_scenes(self.spec, u)

    def render_scenes(self, scene: Scene) -> Tensor:
        """Render scenes the way this dataset does (size, antialiasing, device)."""
        if self.device is not None:
            scene = Scene(*(getattr(scene, f).to(self.device) for f in Scene.__dataclass_fields__))
        return render(scene, self.image_size, antialias=self.antialias)

    def batch(self, indices) -> tuple[Tensor, dict[str, Tensor]]:
        """``(images (B, 3, H, W), labels dict of (B, ...))`` for the given item indices."""
        scene, labels = self.scenes_and_labels(indices)
        if self.device is not None:
            labels = {k: v.to(self.device) for k, v in labels.items()}
        return self.render_scenes(scene), labels

    def __getitem__(self, i: int):
        if not isinstance(i, numbers.Integral) and not (isinstance(i, Tensor) and i.dim() == 0):
            raise TypeError(f"index must be an int, got {type(i).__name__}; use .batch() "
                            "for many indices")
        i = int(i)
        if i < 0:
            i += self.size
        images, labels = self.batch([i])
        return images[0], {k: v[0] for k, v in labels.items()}

    def info(self) -> dict:
        """JSON-friendly description, stored next to saved images."""
        return {"name": self.name, "size": self.size, "seed": self.seed,
                "image_size": self.image_size, "concept": self.concept,
                "n_objects": self.n_objects, "palette": {k: list(v) for k, v in
                                                          self.palette.items()},
                "shapes": list(self.shapes), "labels": dict(LABEL_DOCS),
                "options": dict(self.spec.extra),
                "concepts": {k: c.to_dict() for k, c in self.concepts.items()}}


class MultiViewDataset(SceneDataset):
    """Several views of one object position per scene, with everything else varying.

    Item ``i`` is view ``i % n_views`` of scene ``i // n_views``; all views of a scene share
    the labelled ``position`` but differ in camera, light, size, shape and colour, so a
    position model sees the object from many sides. There are ``ceil(size / n_views)``
    scenes; the label
    ``"scene"`` says which scene an item belongs to; :meth:`views` returns whole scenes.
    """

    def __init__(self, spec: SceneSpec, *, size: int = 10_000, n_views: int = 4, **kw):
        if int(n_views) != n_views or n_views < 1:
            raise ValueError(f"n_views must be a positive integer, got {n_views!r}")
        super().__init__(spec, size=size, **kw)
        self.n_views = int(n_views)
        self.n_scenes = -(-self.size // self.n_views)  # the last scene may be cut short

    def scenes_and_labels(self, indices):
        idx = as_indices(indices, self.size)
        scene_ids = [i // self.n_views for i in idx]
        per_view = self.spec.num_draws
        u = item_uniforms(self.seed, scene_ids, 2 + per_view * self.n_views, salt=self.salt)
        view = torch.tensor([i % self.n_views for i in idx], dtype=torch.long)
        start = 2 + per_view * view[:, None] + torch.arange(per_view)  # (B, per_view)
        position = POSITION_RANGE[0] + (POSITION_RANGE[1] - POSITION_RANGE[0]) * u[:, :2]
        scene, labels = sample_scenes(self.spec, u.gather(1, start), position=position)
        labels["scene"] = torch.tensor(scene_ids, dtype=torch.long)
        return scene, labels

    def views(self, scene_indices: Sequence[int]) -> tuple[Tensor, dict[str, Tensor]]:
        """All views of these scenes: images ``(S, V, 3, H, W)``, labels ``(S, V, ...)``."""
        s = [int(j) for j in scene_indices]
        for j in s:
            if not 0 <= j < self.size // self.n_views:
                raise IndexError(f"scene {j} out of range: the dataset has "
                                 f"{self.size // self.n_views} complete scenes")
        idx = [j * self.n_views + v for j in s for v in range(self.n_views)]
        images, labels = self.batch(idx)
        shape = (len(s), self.n_views)
        return (images.reshape(*shape, *images.shape[1:]),
                {k: v.reshape(*shape, *v.shape[1:]) for k, v in labels.items()})

    def info(self) -> dict:
        return {**super().info(), "n_views": self.n_views, "scenes": self.n_scenes}

"""Named datasets for the paper's experiments: ``make_dataset(name, size=, seed=, image_size=)``.

Unless a factory says otherwise: one labelled object, position uniform on ``[-1, 1]^2``, size
uniform on ``[0.25, 0.45]``, colour uniform over the 8 palette colours, shape uniform over
sphere / cube / cylinder, no clutter, the default camera (so +x is image right, +y image up),
and a mildly random light (azimuth -70..10 deg, elevation 45..70 deg, intensity 0.6..0.8,
ambient 0.25..0.35, each colour channel 0.9..1). In the single-concept sets the named concept
varies *and so does everything else*: an EBM trained on one learns that concept with the
others marginalised out (paper section 4.1), and the sets differ only in which concept they
are about (``dataset.concept``) and in their random stream.

Example:
    >>> ds = make_dataset("cross_product", size=10, fraction=0.1, split="test")
    >>> bool((ds.batch(range(10))[1]["size"] < 0.45).all())
    True
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from conceptebm.datasets.dataset import MultiViewDataset, SceneDataset
from conceptebm.datasets.sampling import SceneSpec
from conceptebm.datasets.scene import PALETTE, POSITION_RANGE, SHAPES, SIZE_RANGE

__all__ = ["make_dataset", "DATASETS", "cross_product_region"]

LARGE = SIZE_RANGE[1]  # the only size seen outside the region in the cross-product split


def _names(value, allowed, what) -> tuple[str, ...]:
    vals = (value,) if isinstance(value, str) else tuple(value)
    for v in vals:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; choose from {', '.join(allowed)}")
    return vals


def _clutter(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    lo, hi = value
    return (int(lo), int(hi))


def _base_spec(opts: dict) -> SceneSpec:
    """Spec from the options every factory accepts (popped from ``opts``)."""
    spec = SceneSpec()
    if "colors" in opts:
        spec = replace(spec, colors=_names(opts.pop("colors"), PALETTE, "color"))
    if "shapes" in opts:
        spec = replace(spec, shapes=_names(opts.pop("shapes"), SHAPES, "shape"))
    if "clutter" in opts:
        spec = replace(spec, clutter=_clutter(opts.pop("clutter")))
    return spec


def _single(concept):
    def factory(opts):
        return _base_spec(opts), concept, {}
    factory.__doc__ = (f"One object; {concept or 'every concept'} varies, as does everything "
                       "else. Options: colors, shapes, clutter=(min, max).")
    return factory


def _cluttered(opts):
    """Like "general" plus 1-3 grey clutter objects that never overlap the labelled one."""
    opts.setdefault("clutter", (1, 3))
    return _base_spec(opts), "position", {}


#: light of the nuisance-randomised set: every azimuth, elevation 15..80 deg, intensity
#: 0.4..1.0, ambient 0.15..0.45 (wider than the "unseen light" of paper/benchmarks/inference.py)
ROBUST_LIGHT = ((-180.0, 180.0), (15.0, 80.0), (0.40, 1.00), (0.15, 0.45))


def _robust(opts):
    """The "position" set with the renderer's nuisance factors randomised wider than any test
    set: 0-3 grey clutter objects (option clutter), light from any direction
    (:data:`ROBUST_LIGHT`), light tint 0.25. The camera stays the default one: a fixed-camera
    reader reads world positions through it, so a jittered camera would move the label."""
    opts.setdefault("clutter", (0, 3))
    spec = replace(_base_spec(opts), light=ROBUST_LIGHT, light_tint=0.25)
    return spec, "position", {}


def _continual(stage):
    def factory(opts):
        color = _names(opts.pop("color", "purple"), PALETTE, "color")
        spec = _base_spec(opts)
        if stage == "position":
            shape = _names(opts.pop("shape", "cube"), SHAPES, "shape")
            spec = replace(spec, colors=color, shapes=shape)
        elif stage == "shape":
            spec = replace(spec, colors=color)
        return spec, stage, {}
    factory.__doc__ = {
        "position": "Continual stage 1: one colour (purple) and one shape (cube) at uniform "
                    "positions. Options: color, shape.",
        "shape": "Continual stage 2: one colour (purple), all shapes. Option: color.",
        "color": "Continual stage 3: all colours and shapes.",
    }[stage]
    return factory


def cross_product_region(fraction: float):
    """The top-right square ``[a, 1]^2`` holding ``fraction`` of the area of ``[-1, 1]^2``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return 1.0 - 2.0 * math.sqrt(fraction)


def _inside(a, u):
    return a + (1 - a) * u  # uniform on [a, 1]


def _outside(a, u):
    """Uniform on [-1, 1]^2 minus [a, 1]^2 (an L shape: a left strip and a bottom-right box)."""
    left, bottom = (a + 1) * 2, (1 - a) * (a + 1)  # areas
    pick_left = u[..., 0] < left / (left + bottom)
    v = torch.where(pick_left, u[..., 0] / (left / (left + bottom)),
                    (u[..., 0] - left / (left + bottom)) / (bottom / (left + bottom)))
    x_left, y_left = -1 + (a + 1) * v, -1 + 2 * u[..., 1]
    x_br, y_br = a + (1 - a) * v, -1 + (a + 1) * u[..., 1]
    return torch.stack((torch.where(pick_left, x_left, x_br),
                        torch.where(pick_left, y_left, y_br)), dim=-1)


def _cross_product(opts):
    """Sphere of one colour; all sizes only inside the top-right ``fraction`` of positions.

    Options: ``fraction`` (0.1), ``split`` (``"train"``: positions uniform, size uniform inside
    the region and ``LARGE`` outside; ``"size"``: only the region, all sizes (the size EBM's
    data); ``"position"``: everywhere, size ``LARGE`` only (the position EBM's data);
    ``"test"``: the held-out combinations, positions outside the region with size uniform
    below ``LARGE``), ``color`` ("yellow").
    """
    fraction = float(opts.pop("fraction", 0.1))
    split = opts.pop("split", "train")
    a = cross_product_region(fraction)
    lo, hi = POSITION_RANGE
    size_lo = SIZE_RANGE[0]

    def uniform_pos(u):
        return lo + (hi - lo) * u

    def placement(u_pos, u_size):
        s_any = size_lo + (LARGE - size_lo) * u_size[..., 0]
        if split == "train":
            pos = uniform_pos(u_pos)
            inside = (pos >= a).all(-1)
            return pos, torch.where(inside, s_any, torch.full_like(s_any, LARGE))
        if split == "size":
            return _inside(a, u_pos), s_any
        if split == "position":
            return uniform_pos(u_pos), torch.full_like(s_any, LARGE)
        return _outside(a, u_pos), s_any

    if split not in ("train", "size", "position", "test"):
        raise ValueError(f"split must be 'train', 'size', 'position' or 'test', got {split!r}")
    if split == "test" and fraction >= 1:
        raise ValueError("fraction=1 leaves no held-out positions for split='test'")
    color = _names(opts.pop("color", "yellow"), PALETTE, "color")
    spec = replace(_base_spec(opts), colors=color, shapes=("sphere",), placement=placement,
                   extra={"fraction": fraction, "split": split, "region_low": a})
    concept = {"size": "size", "position": "position"}.get(split)
    return spec, concept, {}


def _multiview(opts):
    """Views of one object position: camera azimuth 0..360 deg, elevation 35..75 deg,
    distance 7.5..9.5; light from any azimuth; size, shape and colour differ per view; a faint
    colour gradient on the ground tells the axes apart. Option: n_views (4)."""
    n_views = int(opts.pop("n_views", 4))
    spec = replace(_base_spec(opts), view=((-180.0, 180.0), (35.0, 75.0), (7.5, 9.5),
                                           (30.0, 30.0)),
                   light=((-180.0, 180.0), (35.0, 75.0), (0.5, 0.85), (0.25, 0.40)),
                   light_tint=0.2, ground_tint=0.06)
    return spec, "position", {"n_views": n_views}


def _objects(opts):
    """Two (option n_objects: 2 or 3) labelled objects of distinct colours, never overlapping;
    labels stacked as (n_objects, ...). Options: n_objects, colors, shapes, clutter."""
    n = int(opts.pop("n_objects", 2))
    if not 2 <= n <= 3:
        # four objects of size up to 0.45 often do not fit apart in [-1, 1]^2
        raise ValueError(f"n_objects must be 2 or 3 for multi-object scenes, got {n}")
    return replace(_base_spec(opts), n_objects=n), "position", {}


MANY_MAX = 6  # objects per scene the "objects" dataset places apart
MANY_SIZE = (0.25, 0.30)  # the low end of the single-object sets' sizes: 6 fit apart


def _many(opts):
    """``n_objects`` (0..6, default 3) labelled objects of distinct colours, placed one after
    another so that none overlap (``SceneSpec.sequential``), sizes 0.25-0.30 (inside the
    single-object sets' 0.25-0.45, small enough that 6 fit apart); labels keep their object
    dim for every count (``position (B, n_objects, 2)``; 0 objects: an empty scene). For
    counting objects with a model trained on one. Options: n_objects, colors, shapes,
    clutter."""
    n = opts.pop("n_objects", 3)
    if isinstance(n, bool) or int(n) != n or not 0 <= n <= MANY_MAX:
        raise ValueError(f"n_objects must be an integer in 0..{MANY_MAX}, got {n!r}")
    spec = replace(_base_spec(opts), n_objects=int(n), size_range=MANY_SIZE, sequential=True)
    return spec, "position", {}


DATASETS = {
    "position": _single("position"),
    "color": _single("color"),
    "shape": _single("shape"),
    "size": _single("size"),
    "general": _single(None),
    "cluttered": _cluttered,
    "position_robust": _robust,
    "continual_position": _continual("position"),
    "continual_shape": _continual("shape"),
    "continual_color": _continual("color"),
    "cross_product": _cross_product,
    "multiview": _multiview,
    "two_objects": _objects,
    "objects": _many,
}


def make_dataset(name: str, size: int = 10_000, seed: int = 0, image_size: int = 32,
                 **options) -> SceneDataset:
    """The dataset called ``name`` (see :data:`DATASETS`) with ``size`` items.

    ``options`` are passed to the factory (e.g. ``clutter=(0, 2)``, ``colors=("red",
    "blue")``, ``fraction=0.1, split="test"``, ``n_views=4``, ``antialias=2``); unknown
    options raise. Item ``i`` depends only on ``(name, options, seed, i)``: the random stream
    is salted with the name and the scene options (so a test split does not replay the train
    split's draws), not with ``image_size``, ``antialias`` or ``device``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    opts = dict(options)
    antialias = int(opts.pop("antialias", 1))
    device = opts.pop("device", None)
    spec, concept, extra = DATASETS[name](opts)
    if opts:
        raise ValueError(f"unknown option(s) {sorted(opts)} for dataset {name!r}; "
                         f"see conceptebm.datasets.DATASETS[{name!r}].__doc__")
    # the random stream depends on the name and the scene options (not on rendering options)
    scene_opts = sorted((k, v) for k, v in options.items() if k not in ("antialias", "device"))
    salt = name + (repr(scene_opts) if scene_opts else "")
    kw = dict(seed=seed, image_size=image_size, name=name, concept=concept,
              antialias=antialias, device=device, salt=salt)
    if name == "multiview":
        n_views = extra["n_views"]
        return MultiViewDataset(spec, size=size, n_views=n_views, **kw)
    return SceneDataset(spec, size=size, **kw)

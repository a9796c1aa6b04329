"""The renderer: axis convention, geometry, labels vs pixels, dense == windowed casting."""

import math

import pytest
import torch
import torch.nn.functional as F

from conceptebm.datasets import DEFAULT_LIGHT, DEFAULT_VIEW, Scene, make_dataset, project, render
from conceptebm.datasets.scene import palette_tensor


def _scene(positions, sizes, shapes, *, view=DEFAULT_VIEW, light=DEFAULT_LIGHT, colors=None):
    """One single-object scene per row of ``positions``."""
    b = len(positions)
    colors = colors if colors is not None else [5] * b  # blue
    return Scene(
        position=torch.tensor(positions, dtype=torch.float32)[:, None, :],
        size=torch.tensor(sizes, dtype=torch.float32)[:, None],
        shape=torch.tensor(shapes)[:, None],
        rgb=palette_tensor()[torch.tensor(colors)][:, None, :],
        active=torch.ones(b, 1, dtype=torch.bool),
        view=torch.tensor([view] * b, dtype=torch.float32),
        light=torch.tensor([light] * b, dtype=torch.float32),
        ground_tint=torch.zeros(b),
    )


def _object_mask(scene, size=32, **kw):
    """Pixels on objects: they differ from the empty scene and are saturated (not shadow)."""
    img = render(scene, size, **kw)
    empty = render(scene.without_objects(), size, **kw)
    changed = (img - empty).abs().amax(1) > 0.02
    return img, changed & ((img.amax(1) - img.amin(1)) > 0.15)


def _centroids(mask):
    rows, cols = torch.meshgrid(torch.arange(mask.shape[1], dtype=torch.float32),
                                torch.arange(mask.shape[2], dtype=torch.float32), indexing="ij")
    w = mask.float()
    n = w.sum((1, 2))
    return (w * cols).sum((1, 2)) / n, (w * rows).sum((1, 2)) / n, n


def test_axis_convention_default_view():
    # +x -> image right, +y -> image up (smaller row), at the default camera.
    scene = _scene([(0, 0), (0.8, 0), (-0.8, 0), (0, 0.8), (0, -0.8)], [0.35] * 5, [0] * 5)
    col, row, n = _centroids(_object_mask(scene)[1])
    assert (n > 10).all()
    assert col[1] > col[0] + 4 and col[2] < col[0] - 4
    assert abs(row[1] - row[0]) < 1 and abs(row[2] - row[0]) < 1
    assert row[3] < row[0] - 3 and row[4] > row[0] + 3
    assert abs(col[3] - col[0]) < 1 and abs(col[4] - col[0]) < 1


def test_label_range_visible_and_object_sizes():
    view = torch.tensor([DEFAULT_VIEW])
    # the whole label square, plus the largest object around it, projects inside 32x32
    corners = torch.tensor([[[x, y, z] for x in (-1.45, 1.45) for y in (-1.45, 1.45)
                             for z in (0.0, 0.9)]])
    pix = project(corners, view, 32)
    assert pix.min() >= -0.5 and pix.max() <= 31.5
    # a small far object and a large near one span about 4 and 8.5 pixels across
    scene = _scene([(0, 1), (0, -1)], [0.25, 0.45], [1, 1],
                   light=(0.0, 89.0, 0.85, 0.35, 1, 1, 1))  # light from above: no side shadow
    mask = _object_mask(scene)[1]
    widths = mask.any(1).sum(-1).tolist()  # columns covered
    assert 3 <= widths[0] <= 5 and 7 <= widths[1] <= 10, widths


def test_projected_centre_matches_pixels_on_dataset_items():
    ds = make_dataset("general", size=128, seed=0)
    scene, labels = ds.scenes_and_labels(range(128))
    col, row, n = _centroids(_object_mask(scene)[1])
    centre = torch.cat((labels["position"], labels["size"]), dim=-1)[:, None, :]
    want = project(centre, scene.view, 32)[:, 0]
    err = ((want[:, 0] - col) ** 2 + (want[:, 1] - row) ** 2).sqrt()
    assert (n >= 8).all()
    assert err.max() < 1.5 and err.mean() < 0.5, (err.max(), err.mean())  # pixels


def test_object_colour_is_nearest_palette_colour():
    ds = make_dataset("general", size=128, seed=1)
    scene, labels = ds.scenes_and_labels(range(128))
    img, mask = _object_mask(scene)
    w = mask.float()[:, None]
    mean = (img * w).sum((2, 3)) / w.sum((2, 3))  # (B, 3)

    def chroma(x):
        return x / x.sum(-1, keepdim=True)

    dist = ((chroma(mean)[:, None] - chroma(palette_tensor())[None]) ** 2).sum(-1)
    acc = (dist.argmin(-1) == labels["color"]).float().mean()
    assert acc >= 0.97, acc  # 1.0 at this seed; shading, tint and highlights leave margin


def test_shapes_have_their_silhouettes_from_above():
    # far, narrow camera straight down (nearly orthographic): cube square 4 s^2, sphere and
    # cylinder discs pi s^2 (tops at 2 s are 1.6 % nearer than the sphere's equator at s)
    top = (0.0, 89.0, 50.0, 4.0)
    scene = _scene([(0, 0)] * 3, [0.4] * 3, [0, 1, 2], view=top, light=(0, 89, .8, .3, 1, 1, 1))
    area = _object_mask(scene, size=128)[1].sum((1, 2)).float()
    sphere, cube, cylinder = area.tolist()
    assert sphere > 400  # enough pixels for 5 % tolerances
    assert cube / sphere == pytest.approx(4 / math.pi * 1.016, rel=0.05)
    assert cylinder / sphere == pytest.approx(1.016, rel=0.05)


def test_shadow_falls_away_from_the_light():
    # light from the -x side, low: the ground right of the object darkens, left does not
    scene = _scene([(0, 0)], [0.4], [1], light=(-90.0, 35.0, 0.9, 0.3, 1, 1, 1))
    img = render(scene, 64)[0].mean(0)
    empty = render(scene.without_objects(), 64)[0].mean(0)
    col = project(torch.tensor([[[0.0, 0.0, 0.0]]]), scene.view, 64)[0, 0, 0].round().int()
    row = 34
    right = (img[row, col + 14:col + 20] - empty[row, col + 14:col + 20]).mean()
    left = (img[row, col - 20:col - 14] - empty[row, col - 20:col - 14]).abs().max()
    assert right < -0.2 and left < 1e-6


@pytest.mark.parametrize("name", ["general", "cluttered", "multiview", "two_objects"])
def test_windowed_casting_equals_dense(name):
    scene = make_dataset(name, size=64, seed=2).scenes(range(64))
    dense = render(scene, 32, dense=True)
    assert torch.equal(dense, render(scene, 32, dense=False))
    # tiny chunks: equal up to float rounding (vectorised and scalar sin/cos may differ in
    # the last bit depending on how many images share a call)
    assert torch.allclose(dense, render(scene, 32, max_elements=5000), atol=1e-6, rtol=0)


def test_antialias_is_supersampling_and_sizes():
    scene = make_dataset("general", size=4, seed=3).scenes(range(4))
    aa = render(scene, 32, antialias=2)
    assert torch.allclose(aa, F.avg_pool2d(render(scene, 64), 2), atol=1e-6)
    for size in (16, 64, 128):
        img = render(scene, size)
        assert img.shape == (4, 3, size, size) and img.dtype == torch.float32
        assert 0 <= img.min() and img.max() <= 1


def test_inactive_slots_are_not_drawn_and_bad_scenes_raise():
    scene = make_dataset("general", size=2, seed=0).scenes([0, 1])
    off = scene.without_objects()
    assert torch.equal(render(off, 32), render(off.drop_empty_slots(), 32))
    assert not torch.equal(render(scene, 32), render(off, 32))
    bad = scene.select(slice(None))
    bad.view = bad.view.clone()
    bad.view[0, 1] = 95.0
    with pytest.raises(ValueError, match="elevation"):
        render(bad, 32)
    with pytest.raises(ValueError, match="image_size"):
        render(scene, 2)
    with pytest.raises(ValueError, match="antialias"):
        render(scene, 32, antialias=0)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_render_on_each_device_matches_cpu_and_ignores_chunking(device):
    # the same images on every device (CPU always; CUDA where present), whether the batch
    # is cast in one chunk or in chunks of 3 images (the renderer picks dense or windowed
    # casting per chunk)
    scene = make_dataset("cluttered", size=32, seed=0).scenes(range(32))
    reference = render(scene, 32)  # (32, 3, 32, 32) on the CPU
    moved = Scene(*(getattr(scene, f).to(device) for f in Scene.__dataclass_fields__))
    img = render(moved, 32)
    assert img.device.type == device and img.shape == (32, 3, 32, 32)
    assert torch.allclose(img.cpu(), reference, atol=1e-3)
    chunked = render(moved, 32, max_elements=3 * 32 * 32 * 5)  # 3 images (4 slots + 1)
    assert torch.allclose(chunked, img, atol=1e-5)
    assert (img - render(moved.without_objects(), 32)).abs().amax() > 0.1  # objects drawn


def test_two_object_labels_agree_with_pixels():
    # the 3x3 pixels around each object's projected centre have that object's colour (a
    # near object can hide part of a far one, so allow a few misses)
    ds = make_dataset("two_objects", size=64, seed=4)
    scene, labels = ds.scenes_and_labels(range(64))
    img = render(scene, 64)
    centre = torch.cat((labels["position"], labels["size"]), dim=-1)  # (B, 2, 3)
    pix = project(centre, scene.view, 64).round().long().clamp(1, 62)  # (B, 2, 2)
    mean3 = F.avg_pool2d(img, 3, stride=1, padding=1).permute(0, 2, 3, 1)  # (B, 64, 64, 3)
    b = torch.arange(64)[:, None].expand(64, 2)
    rgb = mean3[b, pix[..., 1], pix[..., 0]]  # (B, 2, 3)
    pal = palette_tensor()
    chroma = rgb / rgb.sum(-1, keepdim=True)
    dist = ((chroma[..., None, :] - (pal / pal.sum(-1, keepdim=True))) ** 2).sum(-1)
    assert (dist.argmin(-1) == labels["color"]).float().mean() >= 0.95

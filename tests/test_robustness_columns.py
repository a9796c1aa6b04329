"""The robustness table's JPEG, blur, ground, texture and camera columns
(conceptebm.scenes.robustness) and the renderer's ground option they use, which must leave
every default render as it was."""

import hashlib
import json

import pytest
import torch

from conceptebm.datasets import make_dataset
from conceptebm.datasets.raycast import Slots, primary_hits
from conceptebm.datasets.renderer import camera_rays, render
from conceptebm.datasets.scene import DEFAULT_VIEW, GROUND_RGB, project
from conceptebm.scenes.robustness import (
    CAMERA_JITTER,
    blur,
    camera_floor,
    ground_colors,
    jitter_views,
    jpeg,
    robustness_images,
    seen_position,
)


def _object_mask(scene, n=32):
    """``(B, n*n)`` True where a camera ray hits an object first (the ground is z = 0)."""
    eye, d = camera_rays(scene.view, n)
    t_obj, _ = primary_hits(eye, d, Slots(scene, torch.float32), scene.view, n)
    t_ground = torch.where(d[..., 2] < 0, -eye[:, None, 2] / d[..., 2].clamp_max(-1e-12),
                           torch.full_like(t_obj, float("inf")))
    return t_obj < t_ground


@pytest.mark.parametrize("name,digest,total", [
    ("position", "b3d5a9ffa4678ca2", 28358.93861198984),
    ("cluttered", "1f33f85bee0a0351", 26497.28669444844)])
def test_default_renders_are_unchanged(name, digest, total):
    # recorded with the renderer before the ground option was added (commit a08a432)
    x = make_dataset(name, size=16, seed=3).batch(range(16))[0]
    q = (x * 255).round().to(torch.uint8)
    assert hashlib.sha256(q.numpy().tobytes()).hexdigest()[:16] == digest
    assert abs(float(x.double().sum()) - total) < 1e-3


def test_the_training_ground_as_an_option_is_the_default_render():
    scene = make_dataset("cluttered", size=6, seed=1).scenes(range(6))
    grey = torch.tensor(GROUND_RGB).expand(6, 3)
    assert torch.equal(render(scene, 32, ground=grey), render(scene, 32))
    with pytest.raises(ValueError, match="ground must have shape"):
        render(scene, 32, ground=torch.zeros(5, 3))


def test_another_ground_changes_background_pixels_only():
    scene = make_dataset("position", size=8, seed=2).scenes(range(8))
    mask = _object_mask(scene).reshape(8, 1, 32, 32).expand(8, 3, 32, 32)
    base = render(scene, 32)
    for ground in (torch.tensor([0.15, 0.35, 0.8]).expand(8, 3),
                   torch.stack((torch.tensor(GROUND_RGB), 0.5 * torch.tensor(GROUND_RGB)))
                   .expand(8, 2, 3)):
        other = render(scene, 32, ground=ground)
        assert torch.equal(other[mask], base[mask])  # objects: same pixels
        moved = (other != base).any(1)  # (8, 32, 32)
        background = ~mask[:, 0]
        if ground.dim() == 2:  # a plain blue ground: every ground pixel changes
            assert bool(moved[background].all())
        else:  # the checkerboard: its light squares are the training grey, the dark ones not
            frac = moved[background].float().mean()
            assert 0.3 < frac < 0.7


def test_ground_colors_lie_in_their_ranges():
    c = ground_colors(2000, torch.Generator().manual_seed(0))
    val, low = c.max(1).values, c.min(1).values
    sat = 1 - low / val
    assert 0.35 - 1e-6 <= val.min() and val.max() <= 0.9 + 1e-6
    assert 0.2 - 1e-6 <= sat.min() and sat.max() <= 0.5 + 1e-6
    # hue uniform: each of the six HSV sectors gets about a sixth (binomial sd 0.008)
    sector = torch.stack([c[:, 0] == val, c[:, 1] == val, c[:, 2] == val], 1).float().argmax(1)
    assert all(abs((sector == k).float().mean() - 1 / 3) < 0.04 for k in range(3))


def test_jpeg_is_a_bounded_change():
    x = make_dataset("position", size=6, seed=4).batch(range(6))[0]
    y = jpeg(x, 40)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    err40, err95 = (y - x).abs().mean(), (jpeg(x, 95) - x).abs().mean()
    assert 0.002 < err40 < 0.05 and err95 < err40  # lossy, and less so at higher quality
    assert torch.equal(jpeg(x, 40), y)  # deterministic


def test_blur_is_a_gaussian_of_its_sigma():
    delta = torch.zeros(1, 3, 31, 31)
    delta[..., 15, 15] = 1.0
    out = blur(delta, 1.5)
    assert abs(float(out.sum()) - 3.0) < 1e-5  # mass kept (the kernel stays inside)
    r = torch.arange(31.0) - 15
    var = float((out[0, 0] * r[:, None] ** 2).sum())  # row variance of the spread point
    assert abs(var - 1.5 ** 2) < 0.05  # truncated at 3 sigma: 0.97 of sigma^2
    flat = torch.full((2, 3, 8, 8), 0.4)
    assert torch.allclose(blur(flat, 1.5), flat)


def test_camera_jitter_moves_the_projected_position():
    scene = make_dataset("position", size=200, seed=5).scenes(range(200))
    views = jitter_views(200, torch.Generator().manual_seed(0))
    lo = torch.tensor(DEFAULT_VIEW) - torch.tensor(CAMERA_JITTER) * torch.tensor(
        [1, 1, DEFAULT_VIEW[2], 1])
    hi = 2 * torch.tensor(DEFAULT_VIEW) - lo
    assert bool(((views >= lo) & (views <= hi)).all())
    centre = torch.cat((scene.position[:, 0], scene.size[:, :1]), -1)[:, None]
    default = torch.tensor([DEFAULT_VIEW]).expand(200, 4)
    shift = (project(centre, views, 32) - project(centre, default, 32)).norm(dim=-1)
    assert 0.1 < shift.mean() < 3 and shift.max() < 6  # pixels
    # seen_position is the exact inverse: the default camera shows it where the jittered one
    # shows the object, and with the default camera it is the object itself
    seen = seen_position(scene.position[:, 0], scene.size[:, 0], views)
    back = project(torch.cat((seen, scene.size[:, :1]), -1)[:, None], default, 32)
    assert torch.allclose(back, project(centre, views, 32), atol=1e-3)
    same = seen_position(scene.position[:, 0], scene.size[:, 0], default)
    assert torch.allclose(same, scene.position[:, 0], atol=1e-4)


def test_new_columns_are_the_clean_scenes_changed():
    imgs = robustness_images(5, seed=7)
    clean, truth = imgs["clean"]
    for col in ("jpeg", "blur", "ground", "texture", "camera"):
        x, t = imgs[col]
        assert torch.equal(t, truth) and x.shape == clean.shape and not torch.equal(x, clean)
    floor = camera_floor(5, 7)
    assert 0 < (floor - truth).abs().mean() < 0.2
    again = robustness_images(5, seed=7)
    assert all(torch.equal(again[c][0], imgs[c][0]) for c in ("ground", "camera"))


def test_benchmark_puts_foreign_runs_in_their_rows(tmp_path, run_benchmark):
    runs = {"command": "python benchmarks/data_defaults.py collect A B", "note": "",
            "runs": {"A": {"command": "conceptebm train ...", "best_iteration": 10,
                           "best_heldout_mae": 0.05, "iterations": 20, "train_s": 3.0,
                           "test_mae": 0.04, "test_mae_stderr": 0.004, "test_size": 4,
                           "test_source": "t"}}}
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    out = tmp_path / "rob.json"
    run_benchmark("robustness", "--quick", "--models", "position_late", "--columns",
                  "clean,camera", "--foreign", tmp_path / "runs.json", "--foreign-run",
                  "position_late=A", "--json", out)
    res = json.loads(out.read_text())
    row = res["models"]["position_late"]
    assert row["foreign"]["test_mae"] == 0.04 and row["foreign"]["run"] == "A"
    assert {"mae", "floor", "mae_seen"} <= set(row["camera"])

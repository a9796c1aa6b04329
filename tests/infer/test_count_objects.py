"""Counting objects (``scenes.count_objects``, ``locate_objects(k="auto")``, ``--objects``) on
an analytic model with one energy bump per bright dot, so the right count and positions are
known exactly: both count rules return 0 on an empty scene and K on K well separated bumps;
an integer k is unchanged; the CLI refuses a bad value in one line and says "no object
found"."""

import json

import pytest
import torch
from PIL import Image

import conceptebm.cli.infer as infer_cli
from conceptebm.cli import main
from conceptebm.concepts import Concept
from conceptebm.datasets import DEFAULT_VIEW, make_dataset, project
from conceptebm.datasets.sampling import GAP
from conceptebm.energies import ConditionalEnergy
from conceptebm.scenes import (
    Basins,
    count_objects,
    energy_basins,
    locate_objects,
    refine_basins,
    scene_energy_maps,
)
from conceptebm.scenes.objects import counts_at, energy_score, match_positions

# a real object reads at -10 (score 0); the empty ground at 0 (score 10)
CAL = {"quantiles": {"0.5": -10.0, "0.9": -9.5, "0.99": -9.0}, "error": {"0.9": 0.03}}
SPOTS = torch.tensor([(-0.6, -0.6), (0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (0.0, 0.05)])


def _pixels(c):
    """Where the default camera puts ground positions ``c (N, 2)``: (column, row)."""
    pts = torch.cat((c, torch.zeros_like(c[:, :1])), 1)[:, None]
    return project(pts, torch.tensor([DEFAULT_VIEW]).expand(c.shape[0], 4), 32)[:, 0]


class Bumps(ConditionalEnergy):
    """E(x|c) = -20 * sum_pixels |x - ground| * exp(-d^2 / 2), d the pixel distance to where c
    projects: one bump of depth -10 per white dot on the grey ground."""

    image_size, channels = 32, 3

    def __init__(self):
        super().__init__(Concept.continuous("position", dim=2))

    def energy(self, x, c):
        ground = x.flatten(2).median(-1).values[..., None, None]
        b = (x - ground).abs().amax(1)  # (B, H, W)
        col, row = _pixels(c).unbind(-1)
        j = torch.arange(32, dtype=x.dtype)
        win = torch.exp(-((j[None, :, None] - row[:, None, None]) ** 2
                          + (j[None, None, :] - col[:, None, None]) ** 2) / 2)
        return -20 * (b * win).flatten(1).sum(1)


def scenes(counts):
    """Grey images with a white dot at each of the first k spots, and those spots."""
    x = torch.full((len(counts), 3, 32, 32), 0.5)
    px = _pixels(SPOTS).round().long()
    for i, k in enumerate(counts):
        for col, row in px[:k].tolist():
            x[i, :, row, col] = 1.0
    return x, [SPOTS[:k] for k in counts]


@pytest.fixture(scope="module")
def model():
    return Bumps().attach_record({"energy_calibration": CAL})


@pytest.mark.parametrize("rule, counts", [("explain", [0, 2, 5, 3]),
                                          ("basins", [0, 1, 2, 3, 4, 5])])
def test_the_count_is_zero_on_empty_scenes_and_k_on_k_bumps(model, rule, counts):
    x, truth = scenes(counts)
    r = count_objects(model, x, rule=rule)
    assert r.found.tolist() == counts
    for i, k in enumerate(counts):
        found = r.points[i, :k]
        rows, cols = match_positions(found, truth[i])
        assert rows.numel() == k
        assert ((found[rows] - truth[i][cols]).norm(dim=-1) < 0.1).all()
        assert torch.isnan(r.points[i, k:]).all()  # padding beyond the count
        assert (r.score[i, :k] < 1).all()  # each scored as a typical real object
    assert r.describe(0) == "no object found"
    two = counts.index(2)
    assert r.describe(two).startswith("2 objects found") and "+- 0.030 (90%)" in r.describe(two)
    assert r.objects(0) == [] and len(r.objects(two)) == 2 and r.rule["rule"] == rule


def test_auto_goes_through_locate_objects_and_an_integer_k_is_unchanged(model):
    x, _ = scenes([2, 3])
    auto = locate_objects(model, x, k="auto")
    assert auto.found.tolist() == [2, 3]
    b = locate_objects(model, x, k=2)
    maps, grid = scene_energy_maps(model, x, 33)
    want = refine_basins(model, x, energy_basins(maps, grid, 2))
    assert isinstance(b, Basins)
    assert torch.equal(b.points, want.points) and torch.equal(b.found, want.found)
    with pytest.raises(ValueError, match="'auto'"):
        locate_objects(model, x, k="all")
    with pytest.raises(TypeError, match="k='auto'"):
        locate_objects(model, x, k=2, threshold=1.0)
    with pytest.raises(ValueError, match="energy_calibration"):
        count_objects(Bumps(), x)  # no calibration in its record


def test_scores_counts_and_matching():
    assert energy_score(torch.tensor([-10.0, -9.0, 0.0]), CAL).tolist() == [0.0, 1.0, 10.0]
    score = torch.tensor([[0.1, 0.2, 5.0, 0.1], [4.0, 0.0, 0.0, 0.0], [0.0] * 4])
    assert counts_at(score, 1.0).tolist() == [2, 0, 4]  # the leading run under it
    r, c = match_positions(torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
                           torch.tensor([[0.9, 1.0], [0.1, 0.0], [5.0, 5.0]]))
    assert sorted(zip(r.tolist(), c.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_objects_dataset_places_up_to_six_apart():
    for n in (0, 1, 4, 6):
        ds = make_dataset("objects", size=400, seed=1, n_objects=n)
        _, lab = ds.scenes_and_labels(range(400))
        pos, size = lab["position"], lab["size"][..., 0]
        assert pos.shape == (400, n, 2) and size.shape == (400, n)
        assert ((size >= 0.25) & (size <= 0.30)).all()
        if n > 1:
            gap = (pos[:, :, None] - pos[:, None]).abs().amax(-1) - size[:, :, None] - \
                size[:, None]
            apart = (gap[:, ~torch.eye(n, dtype=torch.bool)] > GAP).all(-1)
            # sequential placement: every scene up to 4 apart; 6 jam now and then (< 1 %)
            assert apart.double().mean() >= (1.0 if n <= 4 else 0.99)
            assert (lab["color"][:, :, None] != lab["color"][:, None]).sum((1, 2)).min() == \
                n * (n - 1)  # distinct colours
    for bad in (-1, 7, 2.5):
        with pytest.raises(ValueError, match="n_objects must be an integer in 0..6"):
            make_dataset("objects", n_objects=bad)


def _png(path, image):
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
    return str(path)


def test_cli_counts_objects_and_refuses_a_bad_value(tmp_path, capsys, monkeypatch, model):
    monkeypatch.setattr(infer_cli, "load_model", lambda spec, concept, device=None: model)
    x, _ = scenes([0, 3])
    empty, three = _png(tmp_path / "empty.png", x[0]), _png(tmp_path / "three.png", x[1])
    assert main(["infer", empty, three, "--objects", "auto"]) == 0
    out = capsys.readouterr().out
    assert f"{empty}: no object found" in out and f"{three}: 3 objects found" in out
    assert main(["infer", three, "--objects", "auto", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["count"] == 3 and len(rows[0]["objects"]) == 3
    assert {"value", "energy", "score", "radius_90"} <= set(rows[0]["objects"][0])
    assert main(["infer", three, "--objects", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["count"] == 2
    for bad in ("0", "17", "many"):
        assert main(["infer", three, "--objects", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "--objects" in err[0]
        assert "'auto' or an integer in [1, 16]" in err[0] and "Traceback" not in err[0]
    out_png = tmp_path / "map.png"
    assert main(["energy-map", three, "--objects", "auto", "-o", str(out_png),
                 "--points", "25"]) == 0
    assert "3 objects found" in capsys.readouterr().out and out_png.stat().st_size > 5000

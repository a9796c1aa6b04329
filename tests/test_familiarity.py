"""The familiarity check (is an image of the kind a model was trained on?): its false-refusal
rate on the training distribution, its JSON record, the shipped readers' records, and what
``conceptebm infer`` and ``calibrate --familiarity`` say."""

import json
import math
import subprocess
import sys

import pytest
import torch
from PIL import Image

import conceptebm
from conceptebm.datasets import make_dataset
from conceptebm.datasets.nonscenes import nonscene_images
from conceptebm.evaluate.calibration import object_found
from conceptebm.evaluate.familiarity import (
    colour_contrast,
    colourless,
    familiar,
    familiarity,
    fit_familiarity,
    scene_features,
)
from conceptebm.scenes.calibrate import FAMILY, familiarity_images


def _family(n, seed):
    """Images whose statistics vary smoothly: a random colour gradient plus noise."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, 1, 1, generator=g)
    b = torch.rand(n, 3, 1, 1, generator=g) * 0.5
    ramp = torch.linspace(0, 1, 16)[None, None, :, None]
    return (a * 0.5 + b * ramp + 0.05 * torch.randn(n, 3, 16, 16, generator=g)).clamp(0, 1)


def test_features_have_the_documented_size_and_histograms_sum_to_one():
    x = torch.rand(5, 3, 32, 32)
    f = scene_features(x)
    assert f.shape == (5, 64 * 3 + 32 + 16)
    hists = f[:, -16:]
    assert torch.allclose(hists[:, :8].sum(1), torch.ones(5))
    assert torch.allclose(hists[:, 8:].sum(1), torch.ones(5))
    # a white image puts all its brightness in the top bin (1.0 is not lost off the end)
    assert scene_features(torch.ones(1, 3, 8, 8))[0, -1] == 1.0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        scene_features(torch.rand(3, 8, 8))


def test_refusal_rate_on_the_training_distribution_is_one_minus_the_quantile():
    # threshold at the 0.9 quantile of 400 held-out distances: fresh images of the same
    # family are refused 0.1 of the time; sd from the threshold's quantile (sqrt(.09/400))
    # and from the 4,000 fresh images (sqrt(.09/4000)): 0.016; tolerance 4 sd
    record = fit_familiarity(_family(1600, 0), _family(400, 1), components=16, quantile=0.9)
    refused = (~familiar(record, _family(4000, 2))).float().mean().item()
    sd = math.sqrt(0.09 / 400 + 0.09 / 4000)
    assert abs(refused - 0.1) < 4 * sd
    # another family (bright, flat, no gradient) is refused
    assert not familiar(record, torch.full((10, 3, 16, 16), 0.97)).any()


def test_record_is_json_and_sets_of_views_take_their_worst_view():
    record = fit_familiarity(_family(400, 0), components=8)
    back = json.loads(json.dumps(record))
    x = _family(6, 3)
    assert torch.equal(familiarity(back, x), familiarity(record, x))
    sets = torch.stack([x[:3], torch.cat([x[3:5], torch.ones(1, 3, 16, 16)])])  # (2, 3, ...)
    d = familiarity(record, sets)
    assert d.shape == (2,) and d[1] > 1.0
    assert torch.isclose(d[0], familiarity(record, x[:3]).max())
    with pytest.raises(ValueError, match="refit"):
        familiarity({**record, "features": "old"}, x)
    with pytest.raises(ValueError, match=">= 20 images"):
        fit_familiarity(_family(10, 0))


def test_colour_contrast_sees_a_patch_of_colour_and_not_grey_one_tint_or_noise():
    grey = torch.rand(1, 1, 32, 32).expand(1, 3, 32, 32).clone()  # any grey texture
    assert colour_contrast(grey).item() < 1e-6
    # a brown texture (one tint all over): chroma = grey level x (0.27, -0.03, -0.23), norm
    # 0.36 g; a cell's mean grey (16 pixels of U(0.35, 0.65): sd 0.022) moves it by sd 0.008,
    # and the largest of 64 such deviations stays under 4 sd
    tint = torch.tensor([0.8, 0.5, 0.3])[None, :, None, None]
    assert colour_contrast((0.35 + 0.3 * grey) * tint).item() < 0.03
    scene = torch.full((1, 3, 32, 32), 0.6)
    scene[0, :, 8:12, 20:24] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # one 4x4 cell
    chroma = torch.tensor([0.9, 0.1, 0.1]) - 1.1 / 3  # against a grey median: chroma 0
    assert colour_contrast(scene).item() == pytest.approx(float(chroma.norm()), abs=1e-5)
    # colour noise of sd 0.1 averaged over 16 pixels: chroma of sd about 0.02 a channel
    noise = (0.5 + 0.1 * torch.randn(200, 3, 32, 32, generator=torch.Generator()
                                     .manual_seed(0))).clamp(0, 1)
    assert colour_contrast(noise).max().item() < 0.2
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        colour_contrast(torch.rand(3, 8, 8))


def test_images_without_the_training_images_colour_are_refused_by_the_colour_floor():
    coloured = _family(400, 0)
    coloured[:, :, 4:8, 4:8] = torch.tensor([0.1, 0.8, 0.2])[:, None, None]  # a green patch each
    record = fit_familiarity(coloured, components=8)
    keep = torch.arange(400) % 5 != 4
    expected = torch.quantile(colour_contrast(coloured[keep]), record["colour_quantile"])
    assert record["colour_floor"] == pytest.approx(float(expected))
    grey = coloured.mean(1, keepdim=True).expand(-1, 3, -1, -1)  # same layout, no colour
    assert familiar(record, coloured[:50]).float().mean() >= 0.9
    assert not familiar(record, grey[:50]).any()
    assert colourless(record, grey[:5]).all() and not colourless(record, coloured[:5]).any()
    # the score says by how much: floor / contrast
    assert (familiarity(record, grey[:5]) > 1e3).all()
    # off, or absent from an older record: the same images pass the density check alone
    off = fit_familiarity(coloured, components=8, colour_quantile=0)
    assert off["colour_floor"] == 0.0 and not colourless(off, grey[:5]).any()
    older = {k: v for k, v in record.items() if k not in ("colour_floor", "colour_quantile")}
    assert torch.equal(familiarity(older, grey[:5]), familiarity(off, grey[:5]))


def test_object_found_also_asks_familiarity_when_given_images():
    record = fit_familiarity(_family(400, 0), components=8)
    cal = {"quantiles": {"0.5": 0.0, "0.9": 0.5, "0.99": 1.0}}
    images = torch.cat([_family(1, 5), torch.ones(1, 3, 16, 16)])
    energy = torch.tensor([0.0, 0.0])  # both pass the energy check
    assert object_found(cal, energy).tolist() == [True, True]
    assert object_found(cal, energy, familiarity=record, images=images).tolist() == [True, False]


def test_scene_family_renders_are_a_pure_function_of_their_seed():
    a, b = familiarity_images(24, seed=5, image_size=16), familiarity_images(24, seed=5,
                                                                              image_size=16)
    assert a.shape == (24, 3, 16, 16) and torch.equal(a, b)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert len(FAMILY) == 6
    with pytest.raises(ValueError, match="n >= 12"):
        familiarity_images(5)


@pytest.mark.parametrize("name", ["position_late_robust", "position_multiview"])
def test_shipped_readers_know_rendered_scenes_and_refuse_pictures(name):
    model = conceptebm.load(name)
    record = model.record["familiarity"]
    assert record["family"] == list(FAMILY) and record["components"] == 64
    scenes = make_dataset("position", size=40, seed=99).batch(range(40))[0]
    assert familiar(record, scenes).float().mean() >= 0.95
    assert record["colour_floor"] > 0.05  # every scene has a coloured object
    pictures = nonscene_images(32, seed=1)
    for kind in ("photos", "digits", "grey_photos", "patches", "textures", "tinted_textures"):
        assert familiar(record, pictures[kind]).float().mean() <= 0.15, kind


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "conceptebm", *args], capture_output=True,
                          text=True, timeout=300)


def test_infer_says_a_picture_is_unlike_the_scenes(tmp_path):
    pic, grey = tmp_path / "board.png", tmp_path / "grey.png"
    board = ((torch.arange(64)[:, None] // 8 + torch.arange(64)[None] // 8) % 2).float()
    red_green = torch.stack([board, 1 - board, 0 * board], -1)  # a red and green chessboard
    Image.fromarray((red_green.numpy() * 255).astype("uint8")).save(pic)
    Image.fromarray((board.numpy() * 255).astype("uint8")).convert("RGB").save(grey)
    r = _cli("infer", str(pic), str(grey), "--resize", "--separate", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["object_found"] for row in rows] == [False, False]
    assert rows[0]["familiarity"] > 1.0 and rows[0]["colourless"] is False
    assert rows[1]["familiarity"] > 1.0 and rows[1]["colourless"] is True
    assert f"{pic} is unlike the images the model was trained on" in r.stderr
    assert f"no object found in {grey}: no part of it stands out in colour" in r.stderr
    r = _cli("infer", str(pic), str(grey), "--resize", "--separate")
    assert "board.png: no object found: the image is unlike the scenes" in r.stdout
    assert "grey.png: no object found: the image has no patch of colour" in r.stdout


def test_calibrate_takes_one_calibration_at_a_time():
    r = _cli("calibrate", "position_late", "--familiarity", "--map-grid")
    assert r.returncode == 2
    assert r.stderr.startswith("error: conceptebm calibrate: --map-grid and --familiarity")
    assert "Traceback" not in r.stderr


def test_a_run_on_a_users_images_carries_its_own_check(tmp_path):
    from conceptebm.datasets import load_images
    from conceptebm.datasets.foreign import write_foreign
    from conceptebm.train import FolderSpec, smoke_config, train_on_folder

    folder = write_foreign(tmp_path / "data", n=80, seed=0, image_size=16)
    run = tmp_path / "run"
    train_on_folder(FolderSpec(str(folder), holdout=10),
                    smoke_config(concept="position", objective="contrastive", out_dir=str(run),
                                 eval_every=3), progress=False, say=lambda *a, **k: None)
    model = conceptebm.load(str(run))
    record = model.record["familiarity"]
    assert 70 < record["n"] <= 80 and record["threshold"] > 0  # 70 fitted, the held-out read
    own = load_images(folder, infer=True)
    mine = torch.stack([own[i][0] for i in range(len(own))])
    assert familiar(record, mine).float().mean() >= 0.9
    assert not familiar(record, torch.ones(2, 3, 16, 16)).any()


def test_counting_finds_no_object_in_a_picture():
    from conceptebm.cli.objects import objects_text
    from conceptebm.scenes import count_objects

    model = conceptebm.load("position_late_robust")
    scenes = make_dataset("objects", size=2, seed=7, n_objects=2).batch(range(2))[0]
    photos = nonscene_images(32, seed=2)["photos"][:2]
    r = count_objects(model, torch.cat([scenes, photos]))
    assert r.found[2:].tolist() == [0, 0] and (r.familiarity[2:] > 1).all()
    assert (r.familiarity[:2] <= 1).all() and (r.found[:2] >= 1).all()
    assert r.describe(2).endswith("unlike the scenes the model was trained on")
    row = {"image": "p.png", "concept": "position", "objects_asked": "auto", "count": 0,
           "objects": [], "familiarity": 3.0}
    assert "unlike the scenes" in objects_text(row)

"""A user's labelled images: folder + CSV / JSON, .npz, and errors that name file and problem."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conceptebm.concepts import Concept
from conceptebm.datasets import PALETTE, load_images, make_dataset, save_npz

COLORS = list(PALETTE)


@pytest.fixture(scope="module")
def source():
    ds = make_dataset("general", size=6, seed=0)
    images, labels = ds.batch(range(6))
    return ds, images, labels


def _write_pngs(folder, images, sizes=None):
    files = []
    for i, img in enumerate(images):
        arr = (img.permute(1, 2, 0) * 255).round().byte().numpy()
        pil = Image.fromarray(arr)
        if sizes and i in sizes:
            pil = pil.resize((sizes[i], sizes[i]))
        name = f"img_{i:03d}.png"
        pil.save(folder / name)
        files.append(name)
    return files


def _write_csv(path, files, labels, *, override=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "position_x", "position_y", "size", "color", "shape"])
        for i, f in enumerate(files):
            row = [f, *labels["position"][i].tolist(), labels["size"][i, 0].item(),
                   COLORS[labels["color"][i]], int(labels["shape"][i])]
            if override and i in override:
                row = override[i](row)
            w.writerow(row)


def test_folder_with_csv_round_trips(tmp_path, source):
    _, images, labels = source
    files = _write_pngs(tmp_path, images)
    _write_csv(tmp_path / "labels.csv", files, labels)
    ds = load_images(tmp_path)
    assert len(ds) == 6 and ds.image_size == 32
    got_images, got = ds.batch(range(6))
    assert (got_images - images).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNG rounding
    assert torch.allclose(got["position"], labels["position"], atol=1e-6)
    assert torch.equal(got["color"], labels["color"])
    assert torch.equal(got["shape"], labels["shape"])
    assert ds.palette == PALETTE
    assert ds.concepts["color"].encode(got["color"]).shape == (6, 8)
    img, lab = ds[2]
    assert img.shape == (3, 32, 32) and lab["position"].shape == (2,)


def test_folder_with_json_and_custom_concept(tmp_path, source):
    _, images, labels = source
    files = _write_pngs(tmp_path, images[:3])
    records = [{"file": f, "position": labels["position"][i].tolist(), "angle": 10.0 * i}
               for i, f in enumerate(files)]
    (tmp_path / "labels.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match="label 'angle' has no Concept"):
        load_images(tmp_path)
    ds = load_images(tmp_path, concepts={"angle": Concept.continuous("angle", 1, 0, 90)})
    assert ds.batch([0, 1, 2])[1]["angle"][:, 0].tolist() == [0.0, 10.0, 20.0]


def test_npz_round_trip_keeps_palette(tmp_path, source):
    ds, images, labels = source
    path = save_npz(ds, tmp_path / "scenes.npz")
    back = load_images(path)
    got_images, got = back.batch(range(6))
    assert (got_images - images).abs().max() <= 0.5 / 255 + 1e-6
    for k in ("position", "size", "color", "shape"):
        assert torch.allclose(got[k].float(), labels[k].float(), atol=1e-6), k
    assert back.palette == {k: pytest.approx(v) for k, v in PALETTE.items()}
    stored = np.load(path)
    assert list(stored["palette_names"]) == COLORS
    with pytest.raises(ValueError, match="one labelled object"):
        save_npz(make_dataset("two_objects", size=2), tmp_path / "two.npz")


@pytest.mark.parametrize("problem, fix, message", [
    ("missing image", lambda d, files: (d / files[1]).unlink(), r"img_001.png.*does not exist"),
    ("unreadable", lambda d, files: (d / files[2]).write_bytes(b"not a png"),
     r"line 4 \(img_002.png\).*cannot read image"),
])
def test_bad_images_name_the_file(tmp_path, source, problem, fix, message):
    _, images, labels = source
    files = _write_pngs(tmp_path, images)
    _write_csv(tmp_path / "labels.csv", files, labels)
    fix(tmp_path, files)
    with pytest.raises(ValueError, match=message):
        load_images(tmp_path)


def test_mixed_sizes_name_the_file(tmp_path, source):
    _, images, labels = source
    files = _write_pngs(tmp_path, images, sizes={3: 64})
    _write_csv(tmp_path / "labels.csv", files, labels)
    with pytest.raises(ValueError, match=r"img_003.png.*64x64.*img_000.png.*32x32.*one size"):
        load_images(tmp_path)


@pytest.mark.parametrize("override, message", [
    (lambda r: [*r[:1], "", *r[2:]], r"line 3 \(img_001.png\): missing value.*position_x"),
    (lambda r: [r[0], 1.5, *r[2:]], r"line 3 \(img_001.png\): position value 1.5 outside"),
    (lambda r: [*r[:3], 0.9, *r[4:]], r"size value 0.9 outside \[0.25, 0.45\]"),
    (lambda r: [*r[:4], "pink", r[5]], r"color 'pink' is not one of red"),
    (lambda r: [*r[:5], 7], r"shape index 7 out of range \[0, 2\]"),
])
def test_bad_labels_name_the_file(tmp_path, source, override, message):
    _, images, labels = source
    files = _write_pngs(tmp_path, images[:3])
    _write_csv(tmp_path / "labels.csv", files, labels, override={1: override})
    with pytest.raises(ValueError, match=message):
        load_images(tmp_path)


def test_bad_npz_and_paths(tmp_path):
    np.savez(tmp_path / "a.npz", pictures=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no 'images' array"):
        load_images(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", images=np.zeros((2, 8, 8, 3), np.uint8),
             position=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'position' has 3 rows for 2 images"):
        load_images(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", images=np.full((2, 8, 8, 3), 2.0), size=np.full(2, 0.3))
    with pytest.raises(ValueError, match=r"images\[0\] has values outside \[0, 1\]"):
        load_images(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 8, 8, 3), np.uint8),
             color=np.array(["red", "teal"]))
    with pytest.raises(ValueError, match=r"d.npz color\[1\]: color 'teal'"):
        load_images(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="no labels file"):
        load_images(tmp_path)
    with pytest.raises(ValueError, match="neither a folder"):
        load_images(tmp_path / "missing.npz")


# ---------------------------------------------------------------- column maps, inference
def _write_foreign_csv(path, files, labels, header=("file", "x", "y", "tint", "size")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i, f in enumerate(files):
            w.writerow([f, *labels["position"][i].tolist(), ["teal", "rust"][i % 2],
                        0.18 + 0.02 * i])


def test_bare_xy_columns_become_position_and_ranges_are_inferred(tmp_path, source):
    _, images, labels = source
    files = _write_pngs(tmp_path, images)
    _write_foreign_csv(tmp_path / "labels.csv", files, labels)
    with pytest.raises(ValueError, match=r"line 2 .*size value 0.18 outside .*inferred"):
        load_images(tmp_path)  # strict by default: the built-in size range is 0.25..0.45
    ds = load_images(tmp_path, infer=True)
    assert sorted(ds.concepts) == ["position", "size", "tint"]
    assert ds.concepts["position"].low == -1 and "position" not in ds.inferred
    assert ds.concepts["size"].low == pytest.approx(0.18)
    assert ds.concepts["size"].high == pytest.approx(0.28)
    assert ds.concepts["tint"].values == ("rust", "teal")
    assert "inferred" in ds.inferred["size"] and any("size" in s for s in ds.describe())
    got = ds.batch(range(6))[1]
    assert torch.allclose(got["position"], labels["position"], atol=1e-6)
    assert got["tint"].tolist() == [1, 0, 1, 0, 1, 0]


def test_column_map_and_declared_concepts_file(tmp_path, source):
    _, images, labels = source
    files = _write_pngs(tmp_path, images)
    _write_foreign_csv(tmp_path / "labels.csv", files, labels,
                       header=("file", "u", "v", "tint", "radius"))
    (tmp_path / "concepts.json").write_text(json.dumps(
        {"where": {"kind": "continuous", "dim": 2, "low": -1, "high": 1},
         "radius": {"low": 0.1, "high": 0.5}}))
    ds = load_images(tmp_path, columns=["where=u,v"], infer=True)
    assert ds.concepts["where"].dim == 2 and "where" not in ds.inferred
    assert ds.concepts["radius"].high == 0.5 and "radius" not in ds.inferred
    assert torch.allclose(ds.batch([3])[1]["where"], labels["position"][3:4], atol=1e-6)
    with pytest.raises(ValueError, match=r"line 1: --columns where=u,w names \['w'\]"):
        load_images(tmp_path, columns={"where": ("u", "w")}, infer=True)
    (tmp_path / "concepts.json").write_text(json.dumps({"radius": {"low": 0.2, "high": 0.5}}))
    with pytest.raises(ValueError, match=r"line 2 \(img_000.png\): radius value 0.18 outside "
                                         r"\[0.2, 0.5\]; correct the cell, widen"):
        load_images(tmp_path, columns=["where=u,v"], infer=True)


def test_npz_columns_stored_concepts_and_holdout(tmp_path):
    from conceptebm.datasets import split_holdout

    images = np.zeros((10, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "d.npz", images=images, x=np.linspace(-1, 1, 10),
             y=np.zeros(10), digit=np.arange(10) % 3,
             concepts=np.array(json.dumps({"digit": {"values": ["0", "1", "2"]}})))
    ds = load_images(tmp_path / "d.npz", columns=["position=x,y"], infer=True)
    assert ds.concepts["digit"].values == ("0", "1", "2") and "digit" not in ds.inferred
    assert ds.labels["position"].shape == (10, 2)
    train, held = split_holdout(ds, 3, seed=0)
    assert len(train) == 7 and len(held) == 3
    assert set(train.labels["position"][:, 0].tolist()).isdisjoint(
        held.labels["position"][:, 0].tolist())
    again = split_holdout(ds, 3, seed=0)[1]
    assert torch.equal(again.labels["position"], held.labels["position"])
    with pytest.raises(ValueError, match="leaves 0 of 10"):
        split_holdout(ds, 10)


@pytest.mark.parametrize("text, message", [
    ('{"a": {"kind": "continuous", "low": 1, "high": 0}}', r"c.json: concept 'a': .*low < high"),
    ('{"a": {"kind": "categorical"}}', r"c.json: concept 'a': .*needs \"values\""),
    ('{"a": 3', r"c.json: not valid JSON .*fix line 1"),
])
def test_concepts_file_errors_name_the_file_and_fix(tmp_path, text, message):
    from conceptebm.datasets import read_concepts

    (tmp_path / "c.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_concepts(tmp_path / "c.json")


def test_declared_concepts_round_trip_through_npz_and_checkpoint(tmp_path):
    from conceptebm.checkpoints import load_energy, save_checkpoint
    from conceptebm.datasets import LabelledImages
    from conceptebm.energies.nets import ConvEnergyNet

    digit = Concept.categorical("digit", [str(i) for i in range(4)])
    ds = LabelledImages(torch.rand(4, 3, 8, 8), {"digit": torch.arange(4)}, {"digit": digit})
    back = load_images(save_npz(ds, tmp_path / "d.npz"))
    assert back.concepts["digit"] == digit and torch.equal(back.labels["digit"], torch.arange(4))
    net = ConvEnergyNet(back.concepts["digit"], image_size=8, width=2)
    save_checkpoint(tmp_path / "m.safetensors", {"model": net.state_dict()}, {"net": net.config})
    assert load_energy(tmp_path / "m.safetensors").concept == digit

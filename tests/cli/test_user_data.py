"""A user's own images end to end from the command line: train --data (CSV with a column map,
JSON, .npz), infer and energy-map on the result, render/sample --each, the digits export."""

import csv
import json

import numpy as np
import pytest
import torch

from conceptebm.cli import main
from conceptebm.concepts import Concept
from conceptebm.datasets import LabelledImages, load_images, save_npz
from conceptebm.datasets.foreign import write_foreign

SMOKE = ["--smoke", "--quiet", "--eval-every", "3"]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return write_foreign(tmp_path_factory.mktemp("foreign"), n=24, seed=0)


def _renamed(folder, dest, header):
    """The foreign folder's CSV with other column names (a user's own layout)."""
    rows = list(csv.reader(open(folder / "labels.csv")))
    dest.mkdir()
    with open(dest / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows[1:]:
            w.writerow([str(folder / r[0]), *r[1:]])
    return dest


def test_train_csv_with_column_map_then_infer(tmp_path, foreign, capsys):
    data = _renamed(foreign, tmp_path / "mine", ["file", "u", "v", "tint", "form", "radius"])
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--columns", "where=u,v", "--concept", "where",
                 "--objective", "contrastive", "--holdout", "6", "--out-dir", str(run),
                 *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "24 images of 32x32, 6 held out" in out
    assert "radius: continuous, 1-D, range" in out and "inferred from the data" in out
    record = json.loads((run / "data.json").read_text())
    assert record["holdout"] == 6 and record["train"] == 18
    assert record["concepts"]["where"]["dim"] == 2
    evals = list(csv.DictReader(open(run / "eval.csv")))
    assert evals and "inference_where_mae" in evals[-1]  # judge-free: MAP on held-out images
    assert "--data" in (run / "command.txt").read_text()
    image = str(foreign / "scene_00000.png")
    for model in (str(run / "best.safetensors"), str(run)):  # a checkpoint or the run folder
        assert main(["infer", "--model", model, image, image, "--separate", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert [g["concept"] for g in got] == ["where", "where"]
        assert all(-1 <= v <= 1 for g in got for v in g["value"])
    assert main(["energy-map", "--model", str(run), image, "-o", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 0


def test_train_json_labels_categorical_inferred(tmp_path, foreign):
    rows = list(csv.DictReader(open(foreign / "labels.csv")))
    data = tmp_path / "json"
    data.mkdir()
    (data / "labels.json").write_text(json.dumps(
        [{"file": str(foreign / r["file"]), "color": r["color"]} for r in rows]))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--concept", "color", "--objective",
                 "contrastive", "--out-dir", str(run), *SMOKE]) == 0
    from conceptebm.checkpoints import load_energy

    net = load_energy(run / "best.safetensors")
    assert net.concept.values == tuple(sorted({r["color"] for r in rows}))  # in the checkpoint
    assert "inference_color_acc" in list(csv.DictReader(open(run / "eval.csv")))[-1]


def test_train_npz_cd_on_8x8_with_declared_concept(tmp_path):
    digit = Concept.categorical("digit", ["a", "b", "c"])
    g = torch.Generator().manual_seed(0)
    ds = LabelledImages(torch.rand(30, 3, 8, 8, generator=g), {"digit": torch.arange(30) % 3},
                        {"digit": digit})
    path = save_npz(ds, tmp_path / "d.npz")
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--concept", "digit", "--out-dir", str(run),
                 *SMOKE]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["image_size"] == 8  # follows the images
    from conceptebm.checkpoints import load_energy

    assert load_energy(run / "best.safetensors").concept == digit


def test_train_data_errors_name_the_fix(tmp_path, foreign, capsys):
    assert main(["train", "--data", str(foreign), "--concept", "angle", "--out-dir",
                 str(tmp_path / "r"), *SMOKE]) == 2
    assert "--concept 'angle' is not a label of" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # a refused run leaves no folder (nor command.txt)
    (tmp_path / "c.json").write_text(json.dumps({"size": {"low": 0.25, "high": 0.45}}))
    assert main(["train", "--data", str(foreign), "--concept", "position", "--concepts-file",
                 str(tmp_path / "c.json"), "--out-dir", str(tmp_path / "r2"), *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "labels.csv line" in err and "outside [0.25, 0.45]" in err and "widen" in err


def test_render_each_then_train_from_the_shell(tmp_path):
    folder = tmp_path / "each"
    assert main(["render", "position", "-n", "12", "--each", str(folder)]) == 0
    ds = load_images(folder)
    assert len(ds) == 12 and sorted(ds.concepts) == ["color", "position", "shape", "size"]
    assert main(["train", "--data", str(folder), "--concept", "position", "--objective",
                 "contrastive", "--holdout", "0.25", "--out-dir", str(tmp_path / "run"),
                 *SMOKE]) == 0


def test_resume_of_a_data_run_needs_only_the_run_folder(tmp_path, capsys):
    folder, run = tmp_path / "each", tmp_path / "run"
    assert main(["render", "position", "-n", "12", "--each", str(folder)]) == 0
    assert main(["train", "--data", str(folder), "--concept", "position", "--objective",
                 "contrastive", "--holdout", "0.25", "--out-dir", str(run), *SMOKE]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out-dir", str(run), "--iterations", "5"]) == 0
    out = capsys.readouterr().out
    assert f"on the run's data {folder}" in out
    assert "3 held out" in out  # the same split: a quarter of 12


def test_sample_each_writes_labels_of_a_conjunction(tmp_path):
    folder = tmp_path / "samples"
    assert main(["sample", "position=(0.3,-0.2) & color=red", "-n", "2", "--langevin-steps", "2",
                 "--each", str(folder)]) == 0
    ds = load_images(folder)
    assert torch.allclose(ds.labels["position"], torch.tensor([[0.3, -0.2]] * 2))
    assert ds.concepts["color"].values[int(ds.labels["color"][0])] == "red"
    assert (folder / "expression.txt").read_text().strip() == "position=(0.3,-0.2) & color=red"


def test_digits_export_smoke(tmp_path):
    pytest.importorskip("sklearn")
    assert main(["make-data", "digits", "-o", str(tmp_path / "d.npz")]) == 0
    ds = load_images(tmp_path / "d.npz")
    assert len(ds) == 1797 and ds.image_size == 8 and ds.concepts["digit"].dim == 10
    assert np.bincount(ds.labels["digit"].numpy()).min() > 150

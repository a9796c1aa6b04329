"""``conceptebm train --data DIR --test ...``: the held-out split chooses, the test split is
read once at the end and never enters training or selection."""

import json

import pytest
import torch

import conceptebm.train.loop as loop
from conceptebm.checkpoints import load_energy
from conceptebm.cli import main
from conceptebm.datasets import load_images
from conceptebm.datasets.foreign import write_foreign
from conceptebm.evaluate.heldout_map import heldout_map_metrics

SMOKE = ["--concept", "position", "--objective", "contrastive", "--smoke", "--quiet",
         "--eval-every", "3"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    return write_foreign(root / "data", n=30, seed=0), write_foreign(root / "test", n=9, seed=7)


def _keys(images):
    return {x.numpy().tobytes() for x in images}


@pytest.fixture
def seen(monkeypatch):
    """The images the training loop is handed (training set and held-out set), and whether
    a test read happened before the loop returned."""
    got = {"train": set(), "held": set(), "calls": []}
    real_train, real_map = loop.train, heldout_map_metrics

    def spy_train(config, *, dataset=None, eval_dataset=None, **kw):
        got["train"] |= _keys(dataset.images)
        got["held"] |= _keys(eval_dataset.images)
        got["calls"].append("train")
        return real_train(config, dataset=dataset, eval_dataset=eval_dataset, **kw)

    def spy_map(net, images, targets, **kw):
        got["calls"].append("test read")
        return real_map(net, images, targets, **kw)

    monkeypatch.setattr(loop, "train", spy_train)
    monkeypatch.setattr("conceptebm.evaluate.heldout_map.heldout_map_metrics", spy_map)
    return got


def test_test_folder_is_read_once_after_training_and_never_selects(tmp_path, folders, seen,
                                                                   capsys):
    data, test = folders
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--test", str(test), "--holdout", "6",
                 "--out-dir", str(run), *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "test split (9 images, read once after training, not used for selection)" in out
    test_images = load_images(test, infer=True).images
    assert not _keys(test_images) & (seen["train"] | seen["held"])  # never in the loop
    assert seen["calls"] == ["train", "test read"]  # read once, after every choice was made
    record = json.loads((run / "data.json").read_text())
    held, train = record["holdout_items"]["files"], record["train_items"]["files"]
    assert len(held) == 6 and len(train) == 24 and not set(held) & set(train)
    assert record["test"]["size"] == 9 and record["test"]["source"] == str(test)
    report = json.loads((run / "test.json").read_text())
    assert report["split"] == "test" and report["checkpoint"] == "best.safetensors"
    labels = load_images(test, infer=True).labels["position"]
    again = heldout_map_metrics(load_energy(run / "best.safetensors"), test_images, labels)
    assert report["metrics"]["position_mae"]["value"] == pytest.approx(
        again["position_mae"].value, abs=1e-6)
    assert report["metrics"]["position_mae"]["stderr"] > 0


def test_test_fraction_of_data_is_disjoint_from_training_and_holdout(tmp_path, folders, seen):
    data, _ = folders
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--test", "0.2", "--holdout", "5",
                 "--out-dir", str(run), *SMOKE]) == 0
    record = json.loads((run / "data.json").read_text())
    test = set(record["test"]["files"])
    held = set(record["holdout_items"]["files"])
    train = set(record["train_items"]["files"])
    assert (len(test), len(held), len(train)) == (6, 5, 19)
    assert not test & held and not test & train and not held & train
    assert test | held | train == set(load_images(data, infer=True).files)
    everything = load_images(data, infer=True)
    test_images = everything.subset([everything.files.index(f) for f in sorted(test)]).images
    assert not _keys(test_images) & (seen["train"] | seen["held"])
    assert record["test_arg"] == "0.2" and (run / "test.json").is_file()


def test_without_test_nothing_changes(tmp_path, folders, seen):
    data, _ = folders
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--holdout", "6", "--out-dir", str(run),
                 *SMOKE]) == 0
    assert seen["calls"] == ["train"] and not (run / "test.json").exists()
    assert json.loads((run / "data.json").read_text())["test"] is None


@pytest.mark.parametrize("argv, fragment", [
    (["--test", "0.2"], "--test needs --data"),  # no --data
    (["--data", "DATA", "--test", "DATA"], "is the training data"),
    (["--data", "DATA", "--test", "29"], "leaves 1 of 30 images"),
    (["--data", "DATA", "--test", "20", "--holdout", "10"], "--holdout 10"),
    (["--data", "DATA", "--test", "/nonexistent/conceptebm/test"], "--test"),
    (["--data", "DATA", "--test", "1.5"], "--test"),
    (["--data", "DATA", "--test", "BADTEST"], "'mauve'"),
])
def test_bad_test_splits_are_one_error_line_and_leave_no_run(tmp_path, folders, capsys, argv,
                                                             fragment):
    data, test = folders
    bad = tmp_path / "badtest"  # a colour the run never saw: refused, naming file and line
    bad.mkdir()
    rows = (test / "labels.csv").read_text().splitlines()
    first = rows[1].split(",")
    first[3] = "mauve"
    (bad / "labels.csv").write_text("\n".join([rows[0], ",".join(first)]) + "\n")
    (bad / first[0]).write_bytes((test / first[0]).read_bytes())
    argv = [{"DATA": str(data), "BADTEST": str(bad)}.get(a, a) for a in argv]
    run = tmp_path / "run"
    concept = "color" if "mauve" in fragment else "position"
    common = [a if a != "position" else concept for a in SMOKE]
    assert main(["train", *argv, "--out-dir", str(run), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert "Traceback" not in err[0] and not run.exists()


def test_resume_reads_the_same_test_split(tmp_path, folders, capsys):
    data, _ = folders
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--test", "7", "--out-dir", str(run),
                 *SMOKE]) == 0
    first = json.loads((run / "data.json").read_text())["test"]["files"]
    capsys.readouterr()
    assert main(["train", "--resume", "--out-dir", str(run), "--iterations", "9",
                 "--quiet"]) == 0
    assert "test split (7 images" in capsys.readouterr().out
    assert json.loads((run / "data.json").read_text())["test"]["files"] == first


def test_resume_of_a_run_on_a_concept_no_scene_dataset_has(tmp_path, capsys):
    """--resume with only the run folder, for a label the scene datasets lack (digits)."""
    from conceptebm.concepts import Concept
    from conceptebm.datasets import LabelledImages, save_npz

    g = torch.Generator().manual_seed(0)
    kind = Concept.categorical("kind", ["a", "b"])
    labels = torch.arange(24) % 2
    images = (torch.rand(24, 1, 8, 8, generator=g) * 0.2 + 0.6 * labels.view(-1, 1, 1, 1)
              ).expand(-1, 3, -1, -1).contiguous()
    npz = save_npz(LabelledImages(images, {"kind": labels}, {"kind": kind}),
                   tmp_path / "kinds.npz")
    run = tmp_path / "run"
    assert main(["train", "--data", str(npz), "--concept", "kind", "--test", "4",
                 "--out-dir", str(run), "--smoke", "--quiet", "--eval-every", "3"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out-dir", str(run), "--iterations", "9",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "to iteration 9" in out and "test split (4 images" in out
    assert json.loads((run / "data.json").read_text())["test"]["indices"]

"""Training on a user's folder from Python (conceptebm.train.train_on_folder) is what
``conceptebm train --data`` runs: the same splits, the same record, a test read once, and a
resume on the recorded data."""

import json

import pytest

import conceptebm
from conceptebm.checkpoints import load_checkpoint
from conceptebm.cli import main
from conceptebm.datasets.foreign import write_foreign
from conceptebm.scenes import posterior_temperature
from conceptebm.train import FolderSpec, smoke_config, train_on_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_foreign(tmp_path_factory.mktemp("fold") / "data", n=30, seed=0, image_size=16)


def _config(out, **kw):
    return smoke_config(concept="position", objective="contrastive", out_dir=str(out),
                        eval_every=3, **kw)


def test_python_and_the_command_line_make_the_same_run_record(folder, tmp_path):
    py_run, cli_run = tmp_path / "py", tmp_path / "cli"
    result, test = train_on_folder(FolderSpec(str(folder), holdout=5, test=0.2),
                                   _config(py_run), progress=False, say=lambda *a, **k: None)
    assert main(["train", "--data", str(folder), "--concept", "position", "--objective",
                 "contrastive", "--smoke", "--quiet", "--eval-every", "3", "--holdout", "5",
                 "--test", "0.2", "--out-dir", str(cli_run)]) == 0
    py, cli = (json.loads((r / "data.json").read_text()) for r in (py_run, cli_run))
    for key in ("holdout_items", "train_items", "test", "concepts", "holdout", "train"):
        assert py[key] == cli[key], key
    assert test["split"] == "test" and test["size"] == 6
    assert json.loads((py_run / "test.json").read_text()) == test
    assert result.out_dir == str(py_run) or str(result.out_dir) == str(py_run)
    # both runs fitted a posterior temperature on their 5 held-out images and stored it in
    # the checkpoint conceptebm.load reads (header and JSON twin alike), used by default
    for run in (py_run, cli_run):
        ckpt = next(run / f for f in ("best.safetensors", "last.safetensors")
                    if (run / f).is_file())
        record = load_checkpoint(ckpt).meta
        cal = record["posterior_calibration"]
        assert record["posterior_temperature"] == cal["temperature"] > 0
        assert cal["n"] == 5 and cal["views"] == 1 and 0 <= cal["coverage_fit"] <= 1
        assert json.loads(ckpt.with_suffix(".json").read_text())["posterior_temperature"] == \
            cal["temperature"]
        assert posterior_temperature(conceptebm.load(str(run))) == cal["temperature"]


def test_resume_from_python_continues_on_the_recorded_data(folder, tmp_path):
    run = tmp_path / "run"
    first, _ = train_on_folder(FolderSpec(str(folder), holdout=5), _config(run, iterations=3),
                               progress=False, say=lambda *a, **k: None)
    record = json.loads((run / "data.json").read_text())
    again, _ = train_on_folder(None, _config(run, iterations=6), resume=True, progress=False,
                               say=lambda *a, **k: None)
    assert first.iteration == 3 and again.iteration == 6
    assert json.loads((run / "data.json").read_text())["holdout_items"] == \
        record["holdout_items"]
    with pytest.raises(ValueError, match="pass a FolderSpec, or resume a run"):
        train_on_folder(None, _config(tmp_path / "new"), progress=False)

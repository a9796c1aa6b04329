"""Inference says when it does not know: training records an energy calibration, the shipped
models carry one, and ``conceptebm infer`` reports a blank image as "no object found"."""

import json

import pytest
import torch
from PIL import Image

from conceptebm import pretrained
from conceptebm.cli import main
from conceptebm.datasets import make_dataset


def _png(path, image):
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
    return str(path)


def test_training_stores_an_energy_calibration_with_the_best_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--smoke", "--concept", "color", "--eval-samples", "12",
                 "--out-dir", str(run), "--quiet"]) == 0
    record = json.loads((run / "best.json").read_text())
    cal = record["energy_calibration"]
    assert cal["n"] == 12 and set(cal["quantiles"]) == {"0.5", "0.9", "0.99"}
    assert cal["quantiles"]["0.5"] <= cal["quantiles"]["0.99"] and "contrast" in cal
    assert 0 <= cal["accuracy"] <= 1


@pytest.mark.parametrize("name", pretrained.NAMES)
def test_shipped_models_carry_a_calibration(name):
    record = json.loads((pretrained.DIR / f"{name}.json").read_text())
    assert "energy_calibration" in record, \
        f"run `conceptebm calibrate {name} --write` for the shipped {name!r}"
    cal = record["energy_calibration"]
    assert cal["n"] >= 100 and cal["seed"] == 20_261_129 and "calibrate" in cal["command"]
    assert cal["quantiles"]["0.5"] <= cal["quantiles"]["0.99"]
    assert cal["contrast"]["0.01"] > 0


def test_shipped_position_model_finds_no_object_in_a_blank_image(tmp_path, capsys):
    images, _ = make_dataset("position", size=4, seed=7).batch([0])
    real = _png(tmp_path / "real.png", images[0])
    grey = _png(tmp_path / "grey.png", torch.full((3, 32, 32), 0.5))
    white = _png(tmp_path / "white.png", torch.ones(3, 32, 32))
    assert main(["infer", real, grey, white, "--separate", "--json"]) == 0
    captured = capsys.readouterr()
    assert [r["object_found"] for r in json.loads(captured.out)] == [True, False, False]
    assert f"no object found in {grey}" in captured.err


def test_calibrate_fits_a_posterior_temperature_and_the_old_module_forwards(capsys, tmp_path,
                                                                            monkeypatch):
    import json as _json

    from conceptebm.cli import main as cli_main
    from conceptebm.scenes import temperature

    assert cli_main(["calibrate", "position_late", "--posterior-temperature", "-n", "10",
                     "--points", "16"]) == 0
    line = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cal = line["posterior_calibration"]
    assert line["model"] == "position_late" and cal["n"] == 10 and cal["points"] == 16
    assert cal["temperature"] > 0 and cal["command"].startswith("conceptebm calibrate ")
    # the deprecated python -m form warns once and forwards its arguments
    seen = {}
    monkeypatch.setattr("conceptebm.cli.main", lambda argv: seen.setdefault("argv", argv) and 0)
    temperature.main(["position_late", "-n", "10"])
    assert seen["argv"] == ["calibrate", "--posterior-temperature", "position_late", "-n", "10"]
    assert "python -m conceptebm.scenes.temperature is deprecated" in capsys.readouterr().err


def test_a_models_own_energy_margin_moves_its_threshold_and_survives_recalibration(
        tmp_path, monkeypatch, capsys):
    import json as _json
    import shutil

    from conceptebm import pretrained
    from conceptebm.checkpoints import read_record
    from conceptebm.cli import main as cli_main
    from conceptebm.evaluate.calibration import no_object_threshold, object_found
    from conceptebm.scenes.calibrate import store_calibration

    for ext in (".safetensors", ".json"):
        shutil.copy(pretrained.DIR / f"position_multiview{ext}", tmp_path)
    monkeypatch.setattr(pretrained, "DIR", tmp_path)
    path = tmp_path / "position_multiview.safetensors"
    cal = read_record(path)["energy_calibration"]
    q50, q99 = cal["quantiles"]["0.5"], cal["quantiles"]["0.99"]
    assert cli_main(["calibrate", "position_multiview", "--energy-margin", "0.25",
                     "--write"]) == 0
    line = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["threshold"] == pytest.approx(q99 + 0.25 * (q99 - q50))
    stored = read_record(path)["energy_calibration"]
    assert stored["margin"] == 0.25 and "--energy-margin 0.25" in stored["margin_command"]
    assert no_object_threshold(stored) == pytest.approx(line["threshold"])
    at = line["threshold"]
    assert object_found(stored, torch.tensor([at - 1e-3])).item()
    assert not object_found(stored, torch.tensor([at + 1e-3])).item()
    # a fresh energy calibration keeps the model's margin (it is in units of the spread)
    store_calibration(path, {k: v for k, v in cal.items() if k not in ("margin",
                                                                       "margin_command")})
    assert read_record(path)["energy_calibration"]["margin"] == 0.25
    assert cli_main(["calibrate", "position_multiview", "--energy-margin", "9"]) == 2
    assert "--energy-margin: must be a finite number in [-1, 5]" in capsys.readouterr().err

"""``train --preset NAME`` and what ``train --data`` trains with no recipe flag."""

import json

import pytest

from conceptebm.cli import build_parser, main
from conceptebm.cli.train import command_line, config_from_args
from conceptebm.datasets.foreign import write_foreign
from conceptebm.train.config import CONTRASTIVE_RECIPE, DATA_RECIPE, make_config

TINY = ["--iterations", "2", "--width", "4", "--batch-size", "4", "--eval-every", "1",
        "--eval-samples", "4", "--eval-grid", "5", "--checkpoint-every", "1", "--quiet",
        "--threads", "1"]


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_presets_start_the_config_and_options_override_them():
    cfg = config_from_args(parse("--preset", "position_contrastive"))
    assert cfg == make_config(objective="contrastive")
    assert cfg.net == "conv" and cfg.lr == CONTRASTIVE_RECIPE["lr"]
    data = config_from_args(parse("--preset", "data", "--augment-noise", "0.2"))
    assert data.net == "late" and data.objective == "contrastive"
    assert data.augment_noise == 0.2  # the option wins over the preset
    assert data.contrastive_near_negatives == DATA_RECIPE["contrastive_near_negatives"]
    assert config_from_args(parse("--preset", "cd")) == make_config()
    args = parse("--preset", "data", "--iterations", "9")
    assert "--preset data" in command_line(args)
    assert config_from_args(parse(*command_line(args).split()[2:])) == config_from_args(args)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_foreign(tmp_path_factory.mktemp("foreign"), 24, image_size=16)


def _config(run):
    return json.loads((run / "config.json").read_text())


def test_data_with_no_recipe_flag_trains_the_data_recipe(folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--concept", "position", "--holdout", "4",
                 "--out-dir", str(run), *TINY]) == 0
    cfg = _config(run)
    assert cfg["net"] == "late" and cfg["objective"] == "contrastive"
    assert cfg["augment_noise"] == DATA_RECIPE["augment_noise"] and cfg["iterations"] == 2
    assert "the 'data' preset" in capsys.readouterr().out
    assert "--preset data" in (run / "command.txt").read_text()


@pytest.mark.parametrize("flags, net, objective", [
    (["--objective", "cd", "--sampler-steps", "2", "--buffer-size", "8"], "conv", "cd"),
    (["--preset", "position_contrastive"], "conv", "contrastive"),
])
def test_a_recipe_flag_keeps_the_recipe_it_names(folder, tmp_path, flags, net, objective):
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--concept", "position", "--holdout", "4",
                 "--out-dir", str(run), *TINY, *flags]) == 0
    cfg = _config(run)
    assert (cfg["net"], cfg["objective"]) == (net, objective)
    assert cfg["augment_noise"] == 0


def test_a_categorical_concept_keeps_the_field_defaults(folder, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--concept", "color", "--holdout", "4",
                 "--out-dir", str(run), *TINY, "--sampler-steps", "2",
                 "--buffer-size", "8"]) == 0
    assert (_config(run)["net"], _config(run)["objective"]) == ("conv", "cd")

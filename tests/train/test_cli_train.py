import json

import pytest

from conceptebm.cli import build_parser, main
from conceptebm.cli.train import command_line, config_from_args


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_every_setting_is_an_option_and_none_switches_off():
    args = parse("--concept", "color", "--ema", "none", "--grad-clip", "0.5", "--betas", "0.1",
                 "0.9", "--no-spectral-norm", "--frozen", "a.safetensors", "position",
                 "--label-policy", "stored", "--iterations", "7")
    cfg = config_from_args(args)
    assert cfg.concept == "color" and cfg.ema is None and cfg.grad_clip == 0.5
    assert cfg.betas == (0.1, 0.9) and cfg.spectral_norm is False
    assert cfg.frozen == ["a.safetensors", "position"] and cfg.label_policy == "stored"
    assert cfg.iterations == 7 and cfg.lr == 5e-4  # untouched settings keep their defaults
    again = config_from_args(parse(*command_line(args).split()[2:]))
    assert again == cfg  # the recorded command rebuilds the same config


def test_smoke_preset_config_file_and_errors(tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"lr": 1e-3, "width": 6}))
    cfg = config_from_args(parse("--smoke", "--config", str(f), "--width", "5"))
    assert cfg.lr == 1e-3 and cfg.width == 5 and cfg.iterations == 6  # option > file > preset
    with pytest.raises(ValueError, match="lr must be"):
        config_from_args(parse("--lr", "-1"))


def test_train_command_smoke_on_real_scenes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--smoke", "--concept", "color", "--out-dir", str(out),
                 "--quiet"]) == 0
    for name in ("last.safetensors", "best.safetensors", "metrics.csv", "eval.csv",
                 "loss.png", "command.txt"):
        assert (out / name).exists(), name
    assert "conceptebm train --smoke --concept color" in (out / "command.txt").read_text()
    # resume after the run finished: continue to more iterations
    assert main(["train", "--smoke", "--concept", "color", "--out-dir", str(out), "--resume",
                 "--iterations", "7", "--quiet"]) == 0
    # without --resume an existing run is not overwritten
    assert main(["train", "--smoke", "--concept", "color", "--out-dir", str(out),
                 "--quiet"]) == 2
    assert "already holds a training run" in capsys.readouterr().err

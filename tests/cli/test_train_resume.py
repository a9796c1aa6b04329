"""``conceptebm train --resume --out-dir RUN`` continues RUN with its own config."""

import json

from conceptebm.cli import main


def test_resume_with_only_out_dir_continues_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--smoke", "--concept", "color", "--eval-every", "0", "--seed", "3",
                 "--out-dir", str(run), "--quiet"]) == 0
    assert "to iteration 6" in capsys.readouterr().out
    assert main(["train", "--resume", "--out-dir", str(run), "--iterations", "9",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "--iterations 9 overrides the run's 6" in out and "to iteration 9" in out
    saved = json.loads((run / "config.json").read_text())
    # the run's own settings were kept (not the defaults: concept position, seed 0, width 16)
    assert (saved["concept"], saved["seed"], saved["width"], saved["iterations"]) == \
        ("color", 3, 4, 9)


def test_resume_on_a_missing_run_is_an_error(tmp_path, capsys):
    assert main(["train", "--resume", "--out-dir", str(tmp_path / "none"), "--smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "there is no training run in" in err
    assert not (tmp_path / "none").exists()  # nothing trained from scratch
    (tmp_path / "empty").mkdir()
    assert main(["train", "--resume", "--out-dir", str(tmp_path / "empty"), "--smoke"]) == 2
    assert "holds no training run" in capsys.readouterr().err

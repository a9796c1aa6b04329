"""One command-line convention (issue 26): ``-o/--output`` names a file and ``--out-dir`` a
folder, ``--quiet`` hides the progress bars, every ``--threads`` has the same default, and the
old spellings keep working until conceptebm 0.3 with one warning line each."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from conceptebm.cli import build_parser, main, parse
from conceptebm.cli.validate import REMOVED_IN, THREADS_DEFAULT, deprecation_line

# the commands that draw a progress bar (each has --quiet); the others print none
WITH_PROGRESS = {"demo", "render", "train", "sample", "infer", "energy-map", "train-judges",
                 "calibrate"}  # calibrate: --map-grid shows a bar over the grids
# files written besides the command's main output, named by what they hold
SECOND_FILES = {("render", "--labels"), ("infer", "--save")}
# the commands that only read and print (no torch work to spread over threads), and
# make-data itself (each of its datasets has --threads)
NO_THREADS = {"models", "models show", "make-data"}


def _commands(parser, prefix=""):
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    found = {}
    for name, command in (sub.choices.items() if sub else ()):
        found[prefix + name] = command
        found.update(_commands(command, prefix + name + " "))
    return found


@pytest.fixture(scope="module")
def parser():
    return build_parser()


@pytest.fixture(scope="module")
def commands(parser):
    return _commands(parser)


def _option(command, flag):
    return next((a for a in command._actions if flag in a.option_strings), None)


def test_files_are_dash_o_and_folders_out_dir(commands):
    for name, command in commands.items():
        for action in command._actions:
            if action.help == argparse.SUPPRESS:  # a deprecated spelling
                continue
            kind = getattr(action.type, "__name__", "")
            flag = action.option_strings[-1] if action.option_strings else None
            if kind == "output_file" and (name, flag) not in SECOND_FILES:
                assert action.option_strings[:2] == ["-o", "--output"], (name, action)
            if kind == "folder" and action.dest != "each":  # render/sample --each DIR
                assert action.option_strings == ["--out-dir"], (name, action)
            assert "--out" not in action.option_strings, (name, action)


def test_quiet_and_threads_are_the_same_everywhere(commands):
    quiet = {name for name, c in commands.items() if _option(c, "--quiet")}
    assert quiet == WITH_PROGRESS
    for name, command in commands.items():
        threads = _option(command, "--threads")
        if name in NO_THREADS:
            assert threads is None, name
            continue
        assert threads is not None, f"{name} has no --threads"
        assert threads.default == THREADS_DEFAULT == 1, name
        assert "same numbers on every machine" in threads.help, name  # says why


# (old command line, new command line, the deprecated word, the new one)
RENAMED = [
    (["sample", "color=red", "--steps", "7"], ["sample", "color=red", "--langevin-steps", "7"],
     "--steps", "--langevin-steps"),
    (["sample", "color=red", "--temperature", "0.5"],
     ["sample", "color=red", "--or-temperature", "0.5"], "--temperature", "--or-temperature"),
    (["infer", "IMG", "--steps", "7"], ["infer", "IMG", "--map-steps", "7"], "--steps",
     "--map-steps"),
    (["infer", "IMG", "--temperature", "0.5"], ["infer", "IMG", "--posterior-temperature", "0.5"],
     "--temperature", "--posterior-temperature"),
    (["demo", "--out", "DIR"], ["demo", "--out-dir", "DIR"], "--out", "--out-dir"),
    (["demo", "--steps", "7"], ["demo", "--langevin-steps", "7"], "--steps", "--langevin-steps"),
    (["train-judges", "--out", "DIR/judges"], ["train-judges", "-o", "DIR/judges.safetensors"],
     "--out", "--output"),
    (["train-judges", "--no-progress"], ["train-judges", "--quiet"], "--no-progress", "--quiet"),
]


@pytest.mark.parametrize("old, new, word, replacement", RENAMED,
                         ids=[f"{r[0][0]} {r[2]}" for r in RENAMED])
def test_old_spellings_work_with_one_warning_line(old, new, word, replacement, parser, tmp_path,
                                                 capsys):
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(image)

    def words(argv):
        return [str(image) if w == "IMG" else w.replace("DIR", str(tmp_path)) for w in argv]

    expected = vars(parse(words(new), parser))
    assert capsys.readouterr().err == ""
    tail = words(old)[-1:] if old[-1] == word else words(old)[-2:]
    given = vars(parse(words(old) + tail, parser))  # the old word twice: still one line
    err = capsys.readouterr().err
    line = deprecation_line(old[0], word, replacement)
    assert err == line + "\n", err
    assert f"{word} is deprecated; use {replacement}; it goes in conceptebm 0.3" in line
    given.pop("_deprecations_said")
    assert given == expected


def test_old_spellings_are_hidden_from_help(capsys):
    for argv in (["sample", "--help"], ["infer", "--help"], ["demo", "--help"],
                 ["train-judges", "--help"]):
        with pytest.raises(SystemExit):
            parse(argv)
        text = capsys.readouterr().out
        assert "--steps" not in text and "--temperature " not in text and "--out " not in text
        assert "--no-progress" not in text


def test_the_removal_version_is_the_librarys():
    import conceptebm

    assert REMOVED_IN == "0.3"  # as the library's deprecated names (tests/test_deprecations.py)
    assert tuple(map(int, conceptebm.__version__.split(".")[:2])) < (0, 3)


def test_make_data_foreign_writes_a_folder_train_reads(tmp_path, capsys):
    from conceptebm.datasets import load_images

    out = tmp_path / "foreign"
    assert main(["make-data", "foreign", "--out-dir", str(out), "-n", "3", "--seed", "1"]) == 0
    assert f"wrote 3 foreign scenes and labels.csv to {out}" in capsys.readouterr().out
    assert len(load_images(out, infer=True)) == 3
    # again into its own folder: fine; into a folder of the user's: refused, nothing written
    assert main(["make-data", "foreign", "--out-dir", str(out), "-n", "2"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["make-data", "foreign", "--out-dir", str(mine), "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert f"--out-dir {mine} holds files make-data did not write (notes.txt)" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_old_python_m_forms_forward_to_the_subcommand(tmp_path):
    """``python -m conceptebm.datasets.foreign --out DIR`` still works until 0.3: one warning
    line, then the validated subcommand (so its refusals too)."""
    def run(*argv):
        return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)

    ok = run("conceptebm.datasets.foreign", "--out", str(tmp_path / "f"), "-n", "2")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.splitlines() == [
        "warning: python -m conceptebm.datasets.foreign is deprecated; use conceptebm "
        "make-data foreign; it goes in conceptebm 0.3"]
    assert (tmp_path / "f" / "labels.csv").is_file()
    bad = run("conceptebm.scenes.calibrate", "banana")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = bad.stderr.splitlines()
    assert len(lines) == 2 and "deprecated; use conceptebm calibrate" in lines[0]
    assert lines[1].startswith("error: conceptebm calibrate: argument NAME: invalid choice")


def test_old_digits_and_judges_entry_points_forward(tmp_path, capsys):
    from conceptebm.cli import train_judges
    from conceptebm.datasets import digits

    assert digits.main(["--out", str(tmp_path / "d.npz")]) == 0  # sklearn: the dev extra
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "warning: python -m conceptebm.datasets.digits is deprecated; use conceptebm "
        "make-data digits; it goes in conceptebm 0.3"]
    assert (tmp_path / "d.npz").is_file()
    assert train_judges.main(["--iterations", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "use conceptebm train-judges" in err[0] and err[1].startswith("error: ")


def test_calibrate_prints_one_json_line_per_model(monkeypatch, capsys):
    import conceptebm.scenes.calibrate as calibrate

    monkeypatch.setattr(calibrate, "calibration_report",
                        lambda name, n: {"model": name, "n": n, "energy_calibration": {}})
    assert main(["calibrate", "position", "color", "-n", "12"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"model": "position", "n": 12, "energy_calibration": {}},
                    {"model": "color", "n": 12, "energy_calibration": {}}]

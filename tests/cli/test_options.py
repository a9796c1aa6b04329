"""Every option of every subcommand refuses bad values the same way: one stderr line
``error: ...`` naming the option and the value, exit status 2, no traceback, no work done.

The walk introspects the argparse parsers, so an option added later is covered at once: it
must use a type of :mod:`conceptebm.cli.validate` (whose ``bad`` values are fed to it) or
``choices``, or be listed in ``FREE_TEXT`` with the reason it accepts anything.
"""

import argparse

import pytest
import torch
from PIL import Image

import conceptebm.cli.infer as infer_cli
from conceptebm.cli import build_parser, main, parse

# Options whose every value is meaningful (or checked against what exists after parsing).
FREE_TEXT = {
    ("train", "--frozen"),  # names or paths of earlier EBMs, checked by the run's check
}
# What every option gets, besides its type's own bad values: each is refused the same way or
# accepted; nothing else (a traceback, another exit status) may happen.
BATTERY = ["abc", "nan", "inf", "-inf", "-5", "0", "1e999", "", "1.5"]


@pytest.fixture(scope="module")
def parser():
    return build_parser()


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scene.png"
    Image.new("RGB", (32, 32), (200, 180, 160)).save(path)
    return str(path)


def _commands(parser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command, the actions of a command that has them included (``make-data
    foreign``, ``models show``), by the words that name it."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    found = {}
    for name, command in (sub.choices.items() if sub else ()):
        found[prefix + name] = command
        found.update(_commands(command, prefix + name + " "))
    return found


def _positionals(name: str, png: str) -> list[str]:
    """What a command needs besides the option under test (its positionals and required
    options; a relative folder: the walk runs in a scratch folder and parses only)."""
    return {"sample": ["position=(0,0)"], "infer": [png], "energy-map": [png],
            "render": ["position"], "calibrate": ["position"], "models show": ["position"],
            "make-data foreign": ["--out-dir", "made"]}.get(name, [])


def _value_options(sub: argparse.ArgumentParser):
    for action in sub._actions:
        if action.option_strings and action.nargs != 0 and not isinstance(
                action, (argparse._HelpAction, argparse.BooleanOptionalAction)):
            yield action


def _argv(name, png, action, value):
    flag = action.option_strings[-1]
    if isinstance(action.nargs, int):  # e.g. --betas B1 B2
        return [*name.split(), *_positionals(name, png), flag, *[value] * action.nargs]
    return [*name.split(), *_positionals(name, png), f"{flag}={value}"]  # '-inf' is no option


def _refused(parser, argv, capsys) -> str | None:
    """The error line if ``argv`` is refused (asserting its form), else ``None``."""
    try:
        parse(argv, parser)
    except SystemExit as stop:
        captured = capsys.readouterr()
        err = captured.err
        assert stop.code == 2, (argv, stop.code, err)
        assert "Traceback" not in err and not captured.out, (argv, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        return lines[0]
    capsys.readouterr()
    return None


def test_every_option_of_every_command_is_walked(parser):
    commands = _commands(parser)
    assert {"demo", "render", "train", "sample", "infer", "energy-map", "train-judges",
            "make-data foreign", "make-data digits", "calibrate", "models show"} <= set(commands)
    unvalidated = [(name, a.option_strings[-1]) for name, sub in commands.items()
                   for a in _value_options(sub)
                   if not (getattr(a.type, "bad", None) or a.choices)
                   and (name, a.option_strings[-1]) not in FREE_TEXT]
    assert not unvalidated, f"options without a validated type (use conceptebm.cli.validate " \
                            f"or add them to FREE_TEXT with a reason): {unvalidated}"


def test_bad_values_are_one_error_line_naming_option_and_value(parser, png, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(png.rsplit("/", 1)[0])  # accepted --out folders are never made here
    walked = 0
    for name, sub in _commands(parser).items():
        for action in _value_options(sub):
            bad = list(getattr(action.type, "bad", ()) or (["nope"] if action.choices else []))
            for value in bad:
                line = _refused(parser, _argv(name, png, action, value), capsys)
                assert line is not None, f"{name} {action.option_strings[-1]} {value!r} accepted"
                flag = action.option_strings[-1].lstrip("-")
                assert flag.replace("_", "-") in line, line  # names the option
                if not (isinstance(action.nargs, int) and value.startswith("-")):
                    assert repr(value) in line or value in line, line  # and the value
                walked += 1
            for value in BATTERY:  # refused the same way, or accepted
                _refused(parser, _argv(name, png, action, value), capsys)
    assert walked > 170


def test_positionals_are_validated(parser, png, capsys):
    for argv, fragment in [
        (["infer", "/nonexistent/a.png"], "no such file"),
        (["energy-map", "/nonexistent/a.png"], "no such file"),
        (["render", "nope"], "invalid choice"),
        (["sample", "position=(0,0) & $"], "unexpected character"),
        (["sample", "banana=1"], "unknown concept 'banana'"),
        (["calibrate", "banana"], "invalid choice: 'banana'"),
        (["make-data", "nope"], "invalid choice: 'nope'"),
        (["make-data"], "required: dataset"),
    ]:
        try:
            parse(argv, parser)
        except SystemExit as stop:
            err = capsys.readouterr().err
            assert stop.code == 2 and err.startswith("error: ") and fragment in err, err
            assert "Traceback" not in err
        else:
            raise AssertionError(f"{argv} accepted")


@pytest.fixture
def no_work(monkeypatch):
    """Any model load or training run fails the test: validation must come first."""
    def forbidden(*a, **k):
        raise AssertionError("work started before the options were validated")

    import conceptebm.compose.generate as generate
    import conceptebm.datasets.digits as digits
    import conceptebm.datasets.foreign as foreign
    import conceptebm.scenes.calibrate as calibrate
    import conceptebm.train.loop as loop

    monkeypatch.setattr(infer_cli, "load_model", forbidden)
    monkeypatch.setattr(generate, "load_concepts", forbidden)
    monkeypatch.setattr(loop, "train", forbidden)
    monkeypatch.setattr(foreign, "write_foreign", forbidden)
    monkeypatch.setattr(digits, "write_digits", forbidden)
    monkeypatch.setattr(calibrate, "calibration_report", forbidden)


@pytest.mark.parametrize("argv, fragment", [
    (["sample", "color=red", "--langevin-steps", "-5"],
     "--langevin-steps: must be an integer in [1, 100_000]"),
    (["sample", "color=red", "--steps", "-5"], "--steps: must be an integer in [1, 100_000]"),
    (["sample", "color=red", "--step-size", "nan"], "--step-size: must be a finite number"),
    (["sample", "color=red", "--threads", "0"], "--threads: must be an integer in [1, 1024]"),
    (["sample", "color=red", "-o", "noext"], "e.g. noext.png"),
    (["sample", "color=red", "--alpha", "5"], "--alpha: must be a finite number in [0, 1]"),
    (["sample", "color=red", "--or-temperature", "1e9"], "in (0, 10]"),
    (["sample", "1e30*color=red"], "weight must be a number in (0, 100]"),
    (["sample", "(" * 400 + "color=red" + ")" * 400], "nested more than 64 deep"),
    (["sample", "color=red & " * 2000 + "color=red"], "the limit is 10000"),
    (["infer", "IMG", "--posterior", "--level", "1.5"], "--level: must be a finite number in"),
    (["infer", "IMG", "--grid", "2"], "--grid: must be an integer in [8, 201]"),
    (["infer", "IMG", "--grid", "7"], "--grid: must be an integer in [8, 201]"),
    (["train", "--iterations", "-5"], "--iterations must be an integer >= 1, got -5"),
    (["train", "--objective", "contrastive", "--empty-negatives", "100000"],
     "--empty-negatives must be at most 1024"),
    (["train", "--objective", "contrastive", "--contrastive-negatives", "5000"],
     "--contrastive-negatives must be at most 1024"),
    (["train", "--batch-size", "100000000"], "--batch-size must be at most 8192 (per process"),
    (["train", "--image-size", "100000"], "--image-size must be at most 1024"),
    (["train", "--concept", "banana"], "'banana'"),
    (["train", "--dataset", "banana"], "--dataset 'banana' names no dataset"),
    (["train", "--resume", "--out-dir", "/nonexistent/run"], "there is no training run"),
    (["render", "position", "-n", "0"], "-n: must be an integer in [1,"),
    (["render", "position", "-n", "100000"], "--each DIR"),
    (["demo", "-n", "0"], "-n: must be an integer in [1, 1024]"),
    (["energy-map", "IMG", "--points", "2"], "--points: must be an integer in [5, 2000]"),
    (["infer", "IMG", "--map-steps", "-1"], "--map-steps: must be an integer in [0, 10000]"),
    (["make-data", "foreign", "--out-dir", "/tmp/x", "-n", "0"], "-n: must be an integer"),
    (["make-data", "digits", "-o", "digits.csv"], "--output: must be a NumPy archive path"),
    (["make-data", "digits", "--image-size", "12"], "must be a power of two in [8, 1024]"),
    (["calibrate", "position", "-n", "5"], "-n: must be an integer in [10, 100_000]"),
    (["train-judges", "-o", "judges"], "--output: must be a checkpoint path ending in"),
])
def test_the_issue_list_is_refused_before_any_work(argv, fragment, png, capsys, no_work):
    argv = [png if a == "IMG" else a for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and fragment in captured.err, captured.err
    assert "Traceback" not in captured.err and not captured.out


def test_cuda_without_cuda_is_refused(capsys, no_work, monkeypatch):
    # the machine's CUDA is hidden, so the refusal is checked on every machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sample", "color=red", "--device", "cuda"]) == 2
    assert "this machine has no CUDA device; use --device cpu" in capsys.readouterr().err


def test_train_config_file_errors(tmp_path, capsys, no_work):
    unknown, broken = tmp_path / "u.json", tmp_path / "b.json"
    unknown.write_text('{"iterations": 5, "bogus": 1}')
    broken.write_text('{"iterations": 5,')
    assert main(["train", "--config", str(unknown)]) == 2
    assert "unknown setting(s) ['bogus']" in capsys.readouterr().err
    assert main(["train", "--config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "is not valid JSON" in err and "line 1, column 18" in err
    assert main(["train", "--config", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_every_command_has_working_help(parser, capsys):
    for name in _commands(parser):
        with pytest.raises(SystemExit) as stop:
            parse([*name.split(), "--help"], parser)
        assert stop.value.code == 0 and "usage:" in capsys.readouterr().out

"""``conceptebm train``: train a concept EBM from the command line.

Every :class:`~conceptebm.train.TrainConfig` setting is an option (``--sampler-steps 20``,
``--ema none``...), so the command line and the Python API cannot drift apart. ``--smoke``
starts from the tiny preset the tests run; ``--resume`` continues a killed run in its
``--out-dir``. Under ``torchrun --nproc_per_node N -m conceptebm train ...`` the same command
trains with DistributedDataParallel (only rank 0 prints).

Defaults: a scene dataset trains the generative contrastive-divergence recipe (``--preset
cd``, the option defaults). ``--data DIR`` with a 2-D continuous concept (a position in the
image; the only kind the recipe was measured on) and no recipe flag (``--preset``,
``--config``, ``--objective``, ``--net``, a conv-net option) trains ``--preset data`` instead,
an inference reader meant for images this project did not render: the late net, the
concept-contrastive objective with uniform and near wrong values, noise, blur and brightness
jitter on the real images, a cosine learning rate over 3,000 iterations. It was chosen on the
held-out splits of image sources this project's scenes differ from, and measured on sources it
was not chosen on (benchmarks/data_defaults.py, benchmarks/results/data_defaults.json; the
train guide gives the table). ``--preset position_contrastive`` trains the shipped
reader's recipe (conv net), ``--preset cd`` the generative one; options given override any
preset.

``--out-dir`` must be a new or empty folder, or a run's own folder (marked by
``conceptebm-run.json``): a folder holding files a run did not write is refused before anything
is written. The run's records (``command.txt``, ``data.json``) are written only once the
options, the data and a resumed checkpoint are accepted, so a refused ``--resume`` leaves the
run as it was. Ctrl-C or SIGTERM saves a checkpoint, prints one line saying how to resume and
exits with status 130 / 143.

Examples::

    conceptebm train --concept position --out-dir runs/position
    conceptebm train --concept position --out-dir runs/position --resume
    conceptebm train --concept color --device cuda --iterations 20000
    conceptebm train --concept position --smoke --out-dir /tmp/smoke
    conceptebm train --data my_images/ --concept position --out-dir runs/mine   # preset data
    conceptebm train --data my_images/ --concept position --preset position_contrastive
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import shlex
import signal
import sys
import typing
from pathlib import Path

from conceptebm.cli import validate
from conceptebm.cli.user_data import (
    add_data_options,
    data_words,
    report_test,
    test_option,
    training_data,
)
from conceptebm.cli.validate import CommandError

__all__ = ["register", "config_from_args", "command_line"]


_NONE = "none"  # marks an optional setting switched off on the command line


_FINITE = validate.real()  # ranges are TrainConfig.validate's, checked after parsing


def _optional_float(text: str) -> float | str:
    return _NONE if text.lower() in ("none", "off") else _FINITE(text)


_optional_float.bad = ("abc", "nan", "inf")  # what the CLI test feeds it

_NAME = validate.text("a name or a path")
# generated options whose values are more than a number or a name
_SPECIAL_TYPES = {"device": validate.device(), "out_dir": validate.output_dir()}


def _field_comments(cls) -> dict[str, str]:
    """The comment after each field of a dataclass (and its continuation lines): the option
    help then says exactly what the config's source says."""
    out, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s{4}(\w+): [^#]*#\s*(.*)$", line)
        if m:
            last = m.group(1)
            out[last] = m.group(2).strip()
        elif last and re.match(r"\s+#\s", line) and not re.match(r"\s+# ----", line):
            out[last] += " " + line.strip().lstrip("#").strip()
        else:
            last = None
    return out


def _add_config_options(p: argparse.ArgumentParser) -> None:
    from conceptebm.train.config import FIELD_CHOICES, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    comments = _field_comments(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{comments.get(f.name, '')} (default {default!r})".replace("%", "%%")
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        elif f.name in _SPECIAL_TYPES:
            p.add_argument(flag, type=_SPECIAL_TYPES[f.name], default=None, help=help_text)
        elif hint is int:
            p.add_argument(flag, type=validate.integer(), default=None, help=help_text)
        elif hint is float:
            p.add_argument(flag, type=_FINITE, default=None, help=help_text)
        elif hint is str:  # names and paths: TrainConfig and _check say which exist
            p.add_argument(flag, type=_NAME, default=None, help=help_text,
                           choices=FIELD_CHOICES.get(f.name))
        elif hint == (float | None):
            p.add_argument(flag, type=_optional_float, default=None,
                           help=help_text + "; 'none' disables")
        elif hint == tuple[float, float]:
            p.add_argument(flag, type=_FINITE, nargs=2, default=None, help=help_text)
        elif hint == list[str]:
            p.add_argument(flag, nargs="*", default=None, help=help_text)
        elif hint == list[float]:
            p.add_argument(flag, type=_FINITE, nargs="*", default=None, help=help_text)
        else:  # pragma: no cover - a new field type needs a line here
            raise TypeError(f"no command-line form for TrainConfig.{f.name}: {hint}")


def config_from_args(args: argparse.Namespace, report=None):
    """The :class:`TrainConfig` named by parsed arguments, in increasing priority: with
    ``--resume`` the run's own config (``RUN/config.json``, else the record in
    ``RUN/last.safetensors``), the ``--config`` file, ``--smoke``, then each explicit option.

    Options given again on ``--resume`` override the run's config; ``report(line)`` is told of
    each. Raises :class:`~conceptebm.cli.validate.CommandError` naming the bad option or file.
    """
    from conceptebm.train.config import PRESETS, TrainConfig, make_config, smoke_config

    values: dict = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    explicit = {name: None if v is _NONE else v for name, v in _explicit(args).items()}
    if args.config:
        values.update(_read_config_file(args.config))
    if getattr(args, "resume", False):
        run = Path(explicit.get("out_dir") or values.get("out_dir") or TrainConfig.out_dir)
        saved = _run_config(run)
        for name, v in {**values, **explicit}.items():
            if name != "out_dir" and name in saved and _norm(saved[name]) != _norm(v) \
                    and report is not None:
                report(f"--{name.replace('_', '-')} {_show(v)} overrides the run's "
                       f"{_show(saved[name])}")
        values = {**saved, **values, "out_dir": str(run)}
    values.update(explicit)
    try:
        # make_config: unset fields take the defaults of --objective (CONTRASTIVE_RECIPE)
        return smoke_config(**values) if args.smoke else make_config(**values)
    except (ValueError, TypeError) as err:
        raise CommandError(re.sub(r"TrainConfig\.(\w+)",
                                  lambda m: "--" + m.group(1).replace("_", "-"), str(err))) \
            from None


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _show(v) -> str:
    return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else repr(v)


def _read_config_file(path: str) -> dict:
    """The settings of a ``--config`` JSON file; unknown keys and broken JSON are errors."""
    from conceptebm.train.config import TrainConfig

    try:
        values = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise CommandError(f"--config {path} is not valid JSON: {err.msg} at line {err.lineno}"
                           f", column {err.colno}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"--config {path} cannot be read: {err}") from None
    if not isinstance(values, dict):
        raise CommandError(f"--config {path} must hold a JSON object of TrainConfig settings, "
                           f"got a {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CommandError(f"--config {path} has unknown setting(s) {unknown}; known: "
                           f"{', '.join(sorted(known))}")
    return values


def _run_config(run: Path) -> dict:
    """The config a run folder was trained with (``--resume`` with only ``--out-dir``)."""
    if not run.is_dir():
        raise CommandError(f"--resume: there is no training run in {run} (no such folder); "
                           "check --out-dir, or drop --resume to start a new run")
    if (run / "config.json").exists():
        try:
            return json.loads((run / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise CommandError(f"--resume: {run / 'config.json'} is not valid JSON "
                               f"({err.msg}); pass the settings again with --config") from None
    if (run / "last.safetensors").exists():
        from conceptebm.checkpoints import CheckpointError, load_checkpoint

        try:
            saved = load_checkpoint(run / "last.safetensors").meta.get("train")
        except CheckpointError as err:
            raise CommandError(f"--resume: {err}") from None
        if isinstance(saved, dict):
            return saved
    raise CommandError(f"--resume: {run} holds no training run (no config.json or "
                       "last.safetensors); check --out-dir, or drop --resume to start a new run")


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 prints


def _check(args: argparse.Namespace) -> None:
    """Everything the run needs, before any work: the config, its dataset and concept, the
    files it starts from, an --out-dir it may write into."""
    from conceptebm.train.rundir import RunFolderError, check_out_dir

    notes: list[str] = []
    config = config_from_args(args, report=notes.append)
    problem = validate.write_problem(config.out_dir)  # also an out_dir from --config
    if problem:
        raise CommandError(f"--out-dir {config.out_dir}: {problem}")
    try:
        check_out_dir(config.out_dir, resume=bool(args.resume), option="--out-dir")
    except RunFolderError as err:
        raise CommandError(str(err).replace("resume=True (--resume)", "--resume")) from None
    # a scene dataset must have the concept (a resumed run on a user's images has data.json)
    data_run = getattr(args, "resume", False) and (Path(config.out_dir) / "data.json").is_file()
    if not getattr(args, "data", None) and not data_run:
        from conceptebm.datasets.factories import DATASETS, make_dataset

        if config.dataset_name not in DATASETS:
            what = "--dataset" if config.dataset else "--concept"
            raise CommandError(f"{what} {config.dataset_name!r} names no dataset; datasets: "
                               f"{', '.join(DATASETS)} (or train on your own images with "
                               "--data)")
        concepts = make_dataset(config.dataset_name, size=1).concepts
        if config.concept not in concepts:
            raise CommandError(f"--concept {config.concept!r} is not a label of the "
                               f"{config.dataset_name!r} dataset; its concepts: "
                               f"{', '.join(concepts)}")
    if config.init_weights and not Path(config.init_weights).is_file():
        raise CommandError(f"--init-weights {config.init_weights}: no such checkpoint file")
    for spec in config.frozen:
        if spec.endswith(".safetensors") and not Path(spec).is_file():
            raise CommandError(f"--frozen {spec}: no such checkpoint file")
    if getattr(args, "test", None) is not None and not getattr(args, "data", None):
        raise CommandError("--test needs --data: a test split is of a user's images (scene "
                           "datasets draw fresh test scenes by seed)")
    args.train_config, args.overrides = config, notes


def _data_default(args: argparse.Namespace, config, dataset, say):
    """``--data`` with a 2-D continuous concept (a place in the image) and no recipe flag
    (``--preset``, ``--config``, ``--resume``, ``--smoke``, ``--objective``, ``--net``, a
    conv-net option) trains
    :data:`~conceptebm.train.config.DATA_RECIPE`, the options given still overriding it."""
    from conceptebm.train.config import DATA_RECIPE, RECIPE_OPTIONS

    explicit = _explicit(args)
    if (args.preset or args.config or args.resume or args.smoke
            or any(k in explicit for k in RECIPE_OPTIONS)
            or dataset.concepts[config.concept].is_categorical
            or dataset.concepts[config.concept].dim != 2):
        return config
    recipe = {k: v for k, v in DATA_RECIPE.items() if k not in explicit}
    say(f"[train] --data, continuous concept, no recipe flag: the 'data' preset ("
        f"{', '.join(f'{k} {_show(v)}' for k, v in recipe.items())}); --preset cd or "
        "--preset position_contrastive trains the earlier recipes")
    args.preset = "data"  # command.txt records it
    try:
        return config.replace(**recipe)
    except ValueError as err:
        raise ValueError(re.sub(r"TrainConfig\.(\w+)",
                                lambda m: "--" + m.group(1).replace("_", "-"), str(err))) \
            from None


def _explicit(args: argparse.Namespace) -> dict:
    from conceptebm.train.config import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name) is not None}


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces ``args`` (recorded in the run folder)."""
    words = ["conceptebm", "train"]
    for flag in ("smoke", "resume"):
        if getattr(args, flag):
            words.append(f"--{flag}")
    if getattr(args, "preset", None):
        words += ["--preset", args.preset]
    if args.config:
        words += ["--config", args.config]
    for name, v in _explicit(args).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(v, bool):
            words.append(flag if v else "--no-" + name.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            words += [flag, *map(str, v)]
        else:
            words += [flag, str(v)]
    words += data_words(args)
    return " ".join(shlex.quote(w) for w in words)


def _main(args: argparse.Namespace) -> int:
    import torch

    from conceptebm.checkpoints import CheckpointError, atomic_write_text
    from conceptebm.train.loop import TrainingDiverged, TrainingInterrupted, train
    from conceptebm.train.rundir import append_line

    torch.set_num_threads(args.threads)
    if not hasattr(args, "train_config"):  # called without cli.parse (e.g. from Python)
        _check(args)
    config = args.train_config
    say = print if _is_main() else (lambda *a, **k: None)
    for line in args.overrides:
        say(f"[train] resume: {line}")
    out = Path(config.out_dir)
    dataset = eval_dataset = data_record = None
    record = out / "data.json"
    if args.resume and not getattr(args, "data", None) and record.is_file():
        # A run on a user's images continues on the same images and the same split.
        d = json.loads(record.read_text())
        args.data, args.columns, args.concepts_file, args.holdout = (
            d["data"], d.get("columns"), d.get("concepts_file"), d.get("holdout"))
        args.test = test_option(d.get("test_arg"))  # the same test split, read at the end
        args.resize = d.get("resize", getattr(args, "resize", None))
        say(f"[train] resume: on the run's data {d['data']} (from {record})")
    if getattr(args, "data", None):  # a user's images: loaded, described, split (user_data)
        try:
            config, dataset, eval_dataset, data_record = training_data(
                args, config, _explicit(args), say=say)
            config = _data_default(args, config, dataset, say)
        except ValueError as err:
            print(f"error: conceptebm train: {err}", file=sys.stderr)
            return 2

    def write_records() -> None:
        # once the folder, the data and a resumed checkpoint are accepted (train's on_start):
        # a refused --data or --resume leaves the run folder as it was
        if data_record is not None:
            atomic_write_text(record, json.dumps(data_record, indent=1))
        append_line(out / "command.txt", command_line(args))

    try:
        result = train(config, dataset=dataset, eval_dataset=eval_dataset, resume=args.resume,
                       progress=not args.quiet, on_start=write_records)
    except TrainingDiverged as err:
        if _is_main():  # every process of a DDP run diverges together: rank 0 says so
            print(f"error: conceptebm train: {err}", file=sys.stderr)
        return 3
    except (FileExistsError, CheckpointError) as err:
        message = str(err).replace("resume=True (--resume)", "--resume")
        print(f"error: conceptebm train: {message}", file=sys.stderr)
        return 2
    except TrainingInterrupted as err:
        if _is_main():
            name = "Ctrl-C (SIGINT)" if err.signum == signal.SIGINT else "SIGTERM"
            print(f"error: conceptebm train: stopped by {name} after iteration "
                  f"{err.iteration}; saved {out / 'last.safetensors'}; continue with: "
                  f"conceptebm train --resume --out-dir {shlex.quote(str(out))}",
                  file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the first iteration
        last = out / "last.safetensors"
        where = (f"the last checkpoint is {last}; continue with: conceptebm train --resume "
                 f"--out-dir {shlex.quote(str(out))}" if last.is_file()
                 else "no checkpoint was written")
        if _is_main():
            print(f"error: conceptebm train: stopped by Ctrl-C (SIGINT); {where}",
                  file=sys.stderr)
        return 130
    if not _is_main():  # under torchrun, rank 0 reports
        return 0
    print(f"trained {config.concept} EBM to iteration {result.iteration} ({result.stopped}); "
          f"best score {result.best_score:.4f} at iteration {result.best_iteration}")
    print(f"checkpoints, metrics.csv, eval.csv and loss.png in {out}")
    report_test(args, result)  # --test: read once, now that every choice is made
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a concept EBM (contrastive divergence; on --data "
                       "with a position, a robust reader: --preset data)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=validate.existing_file((".json",), "JSON file"),
                   help="JSON file of TrainConfig settings (options override it)")
    from conceptebm.train.config import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="start from a named recipe (options given override it): 'cd' the "
                        "generative contrastive-divergence recipe (the option defaults below), "
                        "'position_contrastive' the shipped reader's concept-contrastive recipe "
                        "(conv net), 'data' the recipe for a user's images. Default: 'data' for "
                        "--data with a 2-D continuous concept (a position) and no --objective, "
                        "--net, --config "
                        "or conv-net option (late net, contrastive objective with uniform and "
                        "near negatives, noise/blur/jitter augmentation, cosine learning rate: "
                        "chosen on two image sources, measured on a third, "
                        "benchmarks/results/data_defaults.json); else 'cd'")
    p.add_argument("--smoke", action="store_true",
                   help="tiny preset that runs in seconds (what the tests run)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last checkpoint, with the "
                        "settings it was started with (options given again override them)")
    validate.add_threads(p)
    validate.add_quiet(p)
    _add_config_options(p)
    add_data_options(p)  # --data, --columns, --concepts-file, --holdout (cli/user_data.py)
    p.set_defaults(func=_main, check=_check)

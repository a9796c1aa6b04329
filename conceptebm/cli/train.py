"""``conceptebm train``: train a concept EBM from the command line.

Every :class:`~conceptebm.train.TrainConfig` setting is an option (``--sampler-steps 20``,
``--ema none``...), so the command line and the Python API cannot drift apart. ``--smoke``
starts from the tiny preset the tests run; ``--resume`` continues a killed run in its
``--out-dir``. Under ``torchrun --nproc_per_node N -m conceptebm train ...`` the same command
trains with DistributedDataParallel.

Examples::

    conceptebm train --concept position --out-dir runs/position
    conceptebm train --concept position --out-dir runs/position --resume
    conceptebm train --concept color --device cuda --iterations 20000
    conceptebm train --concept position --smoke --out-dir /tmp/smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import shlex
import sys
import typing
from pathlib import Path

__all__ = ["register", "config_from_args", "command_line"]


_NONE = "none"  # marks an optional setting switched off on the command line


def _optional_float(text: str) -> float | str:
    return _NONE if text.lower() in ("none", "off") else float(text)


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
    from conceptebm.train.config import TrainConfig

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
        elif hint in (int, float, str):
            p.add_argument(flag, type=hint, default=None, help=help_text)
        elif hint == (float | None):
            p.add_argument(flag, type=_optional_float, default=None,
                           help=help_text + "; 'none' disables")
        elif hint == tuple[float, float]:
            p.add_argument(flag, type=float, nargs=2, default=None, help=help_text)
        elif hint == list[str]:
            p.add_argument(flag, nargs="*", default=None, help=help_text)
        else:  # pragma: no cover - a new field type needs a line here
            raise TypeError(f"no command-line form for TrainConfig.{f.name}: {hint}")


def config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` named by parsed arguments (``--config`` file, ``--smoke``,
    then each explicit option, in increasing priority)."""
    from conceptebm.train.config import TrainConfig, smoke_config

    values = {}
    if args.config:
        values.update(json.loads(Path(args.config).read_text()))
    for name, v in _explicit(args).items():
        values[name] = None if v is _NONE else v
    return smoke_config(**values) if args.smoke else TrainConfig(**values)


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
    return " ".join(shlex.quote(w) for w in words)


def _main(args: argparse.Namespace) -> int:
    import torch

    from conceptebm.train.checkpoint import CheckpointError
    from conceptebm.train.loop import TrainingDiverged, train

    torch.set_num_threads(args.threads)
    config = config_from_args(args)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "command.txt", "a") as f:
        f.write(command_line(args) + "\n")
    try:
        result = train(config, resume=args.resume, progress=not args.quiet)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (FileExistsError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    print(f"trained {config.concept} EBM to iteration {result.iteration} ({result.stopped}); "
          f"best score {result.best_score:.4f} at iteration {result.best_iteration}")
    print(f"checkpoints, metrics.csv, eval.csv and loss.png in {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a concept EBM with contrastive divergence",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file of TrainConfig settings (options override it)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny preset that runs in seconds (what the tests run)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last checkpoint")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_options(p)
    p.set_defaults(func=_main)

"""``conceptebm train-judges``: train the supervised judges (evaluation).

See :mod:`conceptebm.evaluate.train_judges` for the recipe.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from conceptebm.cli import validate
from conceptebm.cli.validate import CommandError
from conceptebm.datasets.factories import DATASETS
from conceptebm.evaluate import train_judges as _train_judges_module
from conceptebm.evaluate.checkpoint import save_judge
from conceptebm.evaluate.train_judges import JudgeTrainConfig, train_judges

__all__ = ["register", "main"]


def _dataset_name(text: str) -> str:
    if text not in DATASETS:
        raise ValueError(text)
    return text


# each setting's allowed values (JudgeTrainConfig checks them again); a new field falls back
# to any integer / finite number and the config's own check
_TYPES = {
    "dataset": validate.OptionType(f"must be a dataset name ({', '.join(DATASETS)})",
                                   _dataset_name, ["nope"], "dataset"),
    "image_size": validate.integer(8, 1024), "iterations": validate.integer(1, 10**9),
    "batch_size": validate.integer(1, 65_536), "lr": validate.real(0, 1, low_open=True),
    "warmup": validate.integer(0, 10**9), "reg_weight": validate.real(0, 1e3),
    "noise_frac": validate.real(0, 1), "noise_max": validate.real(0, 1),
    "blur_frac": validate.real(0, 1), "blur_max": validate.real(0, 10),
    "clutter_frac": validate.real(0, 1), "width": validate.integer(1, 1024),
    "hidden": validate.integer(1, 65_536), "seed": validate.SEED,
    "eval_size": validate.integer(0, 10**7), "eval_seed": validate.SEED,
    "threads": validate.THREADS,
}


def _option_type(f):
    if f.name in _TYPES:
        return _TYPES[f.name]
    return {int: validate.integer(), float: validate.real()}.get(type(f.default), str)


def _check(args: argparse.Namespace) -> None:
    try:
        JudgeTrainConfig(**{f.name: getattr(args, f.name) for f in fields(JudgeTrainConfig)})
    except (ValueError, TypeError) as err:
        raise CommandError(str(err)) from None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(JudgeTrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_option_type(f),
                            default=f.default, help=f"(default {f.default})")
    parser.add_argument("--out", type=validate.text("a checkpoint path stem"),
                        default="runs/judges/judges",
                        help="checkpoint stem: writes OUT.safetensors and OUT.json (the shipped "
                             "judges are conceptebm/pretrained/judges)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few tiny steps and a small evaluation (for tests)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _command(prefix: list[str], args: argparse.Namespace) -> str:
    """The command that reproduces this run: ``prefix`` plus every non-default flag."""
    words = list(prefix)
    for f in fields(JudgeTrainConfig):
        if getattr(args, f.name) != f.default:
            words += [f"--{f.name.replace('_', '-')}", str(getattr(args, f.name))]
    words += ["--out", str(args.out)] + (["--smoke"] if args.smoke else [])
    return shlex.join(words)


def _run(args: argparse.Namespace, prefix: list[str]) -> int:
    command = _command(prefix, args)
    values = {f.name: getattr(args, f.name) for f in fields(JudgeTrainConfig)}
    if args.smoke:
        values.update(iterations=min(values["iterations"], 3), batch_size=16, eval_size=32,
                      width=8, hidden=16, warmup=1)
    cfg = JudgeTrainConfig(**values)
    judge, report = train_judges(cfg, command=command, progress=not args.no_progress)
    stem = save_judge(judge, args.out)
    print(f"trained in {report['training']['seconds']:.0f} s; saved {stem}.safetensors/.json")
    for cond, metrics in report.get("heldout", {}).items():
        if isinstance(metrics, dict):
            row = ", ".join(f"{k} {m['value']:.4f}±{m['stderr']:.4f}" for k, m in metrics.items())
            print(f"held-out {cond}: {row}")
    return 0


def register(subparsers) -> None:
    """Add ``conceptebm train-judges``."""
    p = subparsers.add_parser("train-judges", help="train the supervised judges (evaluation)",
                              description=_train_judges_module.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=lambda a: _run(a, ["conceptebm", "train-judges"]), check=_check)


def main(argv: list[str] | None = None) -> int:
    from conceptebm.cli import Parser

    parser = Parser(prog="python -m conceptebm.cli.train_judges",
                                     description=_train_judges_module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        _check(args)
    except CommandError as err:
        parser.exit(2, f"error: {err}\n")
    return _run(args, ["python", "-m", "conceptebm.cli.train_judges"])


if __name__ == "__main__":
    sys.exit(main())

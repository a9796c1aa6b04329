"""``conceptebm train-judges``: train the supervised judges (evaluation).

See :mod:`conceptebm.evaluate.train_judges` for the recipe.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path

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


_OUTPUT = validate.output_file((".safetensors",), "checkpoint")


def _old_stem(stem: str) -> str:
    """``--out STEM`` (deprecated) as the ``-o`` path it meant: ``STEM.safetensors``."""
    path = Path(stem)
    return str(path.with_suffix("") if path.suffix in (".json", ".safetensors") else path) \
        + ".safetensors"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(JudgeTrainConfig):
        if f.name == "threads":  # the same option as every subcommand's
            validate.add_threads(parser)
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_option_type(f),
                            default=f.default, help=f"(default {f.default})")
    parser.add_argument("-o", "--output", type=_OUTPUT, default="runs/judges/judges.safetensors",
                        help="checkpoint to write, with its JSON record beside it (default "
                             "runs/judges/judges.safetensors; the shipped judges are "
                             "conceptebm/pretrained/judges.safetensors)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few tiny steps and a small evaluation (for tests)")
    validate.add_quiet(parser)
    validate.add_deprecated(parser, "--out", "--output", command="train-judges",
                            type=validate.text("a checkpoint path stem"), convert=_old_stem)
    validate.add_deprecated(parser, "--no-progress", "--quiet", command="train-judges")


def _command(prefix: list[str], args: argparse.Namespace) -> str:
    """The command that reproduces this run: ``prefix`` plus every non-default flag."""
    words = list(prefix)
    for f in fields(JudgeTrainConfig):
        if getattr(args, f.name) != f.default:
            words += [f"--{f.name.replace('_', '-')}", str(getattr(args, f.name))]
    words += ["-o", str(args.output)] + (["--smoke"] if args.smoke else [])
    return shlex.join(words)


def _run(args: argparse.Namespace, prefix: list[str]) -> int:
    command = _command(prefix, args)
    values = {f.name: getattr(args, f.name) for f in fields(JudgeTrainConfig)}
    if args.smoke:
        values.update(iterations=min(values["iterations"], 3), batch_size=16, eval_size=32,
                      width=8, hidden=16, warmup=1)
    cfg = JudgeTrainConfig(**values)
    judge, report = train_judges(cfg, command=command, progress=not args.quiet)
    stem = save_judge(judge, args.output)
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
    """``python -m conceptebm.cli.train_judges ARGS`` (deprecated): ``conceptebm train-judges
    ARGS``, after one warning line; it goes in conceptebm 0.3."""
    from conceptebm.cli import main as conceptebm

    print(f"warning: python -m conceptebm.cli.train_judges is deprecated; use conceptebm "
          f"train-judges; it goes in conceptebm {validate.REMOVED_IN}", file=sys.stderr)
    return conceptebm(["train-judges", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

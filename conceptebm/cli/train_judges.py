"""``conceptebm train-judges``: train the supervised judges (evaluation).

See :mod:`conceptebm.evaluate.train_judges` for the recipe.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from conceptebm.evaluate import train_judges as _train_judges_module
from conceptebm.evaluate.checkpoint import save_judge
from conceptebm.evaluate.train_judges import JudgeTrainConfig, train_judges

__all__ = ["register", "main"]



def _add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(JudgeTrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default),
                            default=f.default, help=f"(default {f.default})")
    parser.add_argument("--out", default="runs/judges/judges",
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
    p.set_defaults(func=lambda a: _run(a, ["conceptebm", "train-judges"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conceptebm.cli.train_judges",
                                     description=_train_judges_module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return _run(args, ["python", "-m", "conceptebm.cli.train_judges"])


if __name__ == "__main__":
    sys.exit(main())

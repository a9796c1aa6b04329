"""The ``conceptebm`` command line: ``conceptebm <command> ...`` or ``python -m conceptebm``.

Each command lives next to the code it drives, in a module that defines
``register(subparsers)``; that function adds its sub-parser(s) and sets ``func`` to a callable
``func(args) -> int``. Add a command by listing its module in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "conceptebm.cli.demo",  # demo
    "conceptebm.cli.render",  # render
    "conceptebm.cli.train",  # train
    "conceptebm.cli.sample",  # sample
    "conceptebm.cli.infer",  # infer, energy-map
    "conceptebm.cli.train_judges",  # train-judges
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conceptebm",
        description="Compositional energy-based models and concept inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):  # command not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)

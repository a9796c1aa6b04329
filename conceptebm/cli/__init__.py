"""The ``conceptebm`` command line: ``conceptebm <command> ...`` or ``python -m conceptebm``.

Each command lives next to the code it drives, in a module that defines
``register(subparsers)``; that function adds its sub-parser(s) and sets ``func`` to a callable
``func(args) -> int`` and, optionally, ``check`` to a callable ``check(args)`` that validates
the options together (raising :class:`~conceptebm.cli.validate.CommandError`) before any work
starts. Add a command by listing its module in ``COMMAND_MODULES``.

Every user error ends the same way: one line ``error: ...`` on stderr naming the option, the
value and what is allowed, and exit status 2 (option types: :mod:`conceptebm.cli.validate`).
Set ``CONCEPTEBM_TRACEBACK=1`` to see the traceback of an error raised during the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from conceptebm.cli.validate import CommandError
from conceptebm.runtime import tune_process

__all__ = ["main", "build_parser", "parse", "Parser", "COMMAND_MODULES"]

COMMAND_MODULES = [
    "conceptebm.cli.demo",  # demo
    "conceptebm.cli.render",  # render
    "conceptebm.cli.train",  # train
    "conceptebm.cli.sample",  # sample
    "conceptebm.cli.infer",  # infer, energy-map
    "conceptebm.cli.train_judges",  # train-judges
]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``error: <prog>: <message>``, with exit
    status 2 (argparse's default prints the whole usage first)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="conceptebm",
        description="Compositional energy-based models and concept inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):  # command not written yet
                continue
            raise
        module.register(sub)
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def parse(argv: list[str], parser: argparse.ArgumentParser | None = None):
    """Parse and validate ``argv`` without running anything: the arguments, or ``SystemExit(2)``
    after one ``error:`` line (what :func:`main` does before the work; the tests walk it)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        try:
            check(args)
        except CommandError as err:
            raise SystemExit(_fail(f"conceptebm {args.command}: {err}")) from None
    return args


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns its exit status (2 after an ``error:`` line, also for options
    that argparse or a command's ``check`` refuses)."""
    parser = build_parser()
    try:
        args = parse(sys.argv[1:] if argv is None else argv, parser)
    except SystemExit as stop:  # --help, or one error line already printed
        return stop.code if isinstance(stop.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import torch  # noqa: F401  (every command needs it; imported before the freeze below)

    tune_process()  # warm buffer reuse, no full GC walks of modules (conceptebm.runtime)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError, FileNotFoundError) as err:
        # user errors found during the work (a bad image, a checkpoint of another concept,
        # an expression the models cannot ground...): every one is a ValueError with a message
        if os.environ.get("CONCEPTEBM_TRACEBACK"):
            raise
        return _fail(f"conceptebm {args.command}: {err}")

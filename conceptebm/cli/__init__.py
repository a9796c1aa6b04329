"""The ``conceptebm`` command line: ``conceptebm <command> ...`` or ``python -m conceptebm``.

Each command lives next to the code it drives, in a module that defines
``register(subparsers)``; that function adds its sub-parser(s) and sets ``func`` to a callable
``func(args) -> int`` and, optionally, ``check`` to a callable ``check(args)`` that validates
the options together (raising :class:`~conceptebm.cli.validate.CommandError`) before any work
starts. Add a command by listing its module in ``COMMAND_MODULES``.

Every user error ends the same way: one line ``error: ...`` on stderr naming the option, the
value and what is allowed, and exit status 2 (option types: :mod:`conceptebm.cli.validate`).
Failures of the operating system and of memory are one line too, naming the path or the size
and the fix (:func:`describe_failure`): a folder without write permission, a read-only file
system or a name too long for it are bad input (2); a full disk, memory that ran out or a
reader that closed the output pipe are runtime failures (1). Ctrl-C and SIGTERM stop with
status 130 / 143 after one line (training saves a checkpoint first and says how to resume).
Set ``CONCEPTEBM_TRACEBACK=1`` to see the traceback of an error raised during the work.
The statuses are listed in ``conceptebm --help`` (:data:`EXIT_STATUS`); what the tool refuses
and why is ``docs/refusals.md``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from conceptebm.cli.validate import CommandError
from conceptebm.runtime import tune_process

__all__ = ["main", "build_parser", "parse", "Parser", "COMMAND_MODULES", "EXIT_STATUS",
           "Interrupted", "describe_failure"]

EXIT_STATUS = """exit status:
  0    done
  1    a runtime failure: the disk is full, memory ran out, the reader closed the output pipe,
       another process of a distributed run failed (one line names it and the fix)
  2    bad input: an option, a file or a folder (no permission, read-only, a name too long,
       holding files this tool did not write); one line names it, the value and the fix
  3    training diverged (the last good checkpoint is kept)
  130  stopped by Ctrl-C (SIGINT), 143 stopped by SIGTERM: training saves a checkpoint first
       and says how to resume; render/sample --each keep the images finished so far
No traceback is printed unless CONCEPTEBM_TRACEBACK=1."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) during a command: stopped like Ctrl-C, status ``128 + signum``."""

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message)
        self.signum = int(signum)

COMMAND_MODULES = [
    "conceptebm.cli.demo",  # demo
    "conceptebm.cli.render",  # render
    "conceptebm.cli.train",  # train
    "conceptebm.cli.sample",  # sample
    "conceptebm.cli.infer",  # infer, energy-map
    "conceptebm.cli.train_judges",  # train-judges
    "conceptebm.cli.cards",  # models, models show
    "conceptebm.cli.make_data",  # make-data foreign, make-data digits
    "conceptebm.cli.calibrate",  # calibrate
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
        epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    for command in sub.choices.values():  # every command's --help says what its status means
        if command.epilog is None:
            command.epilog = EXIT_STATUS
            if command.formatter_class is argparse.HelpFormatter:
                command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def parse(argv: list[str], parser: argparse.ArgumentParser | None = None):
    """Parse and validate ``argv`` without running anything: the arguments, or ``SystemExit(2)``
    after one ``error:`` line (what :func:`main` does before the work; the tests walk it)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    _check_output_paths(parser, args)
    check = getattr(args, "check", None)
    if check is not None:
        try:
            check(args)
        except CommandError as err:
            raise SystemExit(_fail(f"conceptebm {args.command}: {err}")) from None
    return args


def _check_output_paths(parser: argparse.ArgumentParser, args) -> None:
    """Each output path given on the command line can be written: a name the file system
    takes, no file in the place of a folder, a folder with write permission on a writable disk
    (:func:`~conceptebm.cli.validate.write_problem`). Unused defaults are not checked (a
    read-only working folder is fine for ``render --each /elsewhere``)."""
    from conceptebm.cli.validate import write_problem

    chosen = [parser]  # the command, and the action of a command that has them (make-data)
    while True:
        sub = next((a for a in chosen[-1]._actions
                    if isinstance(a, argparse._SubParsersAction)), None)
        nested = sub.choices.get(getattr(args, sub.dest, None)) if sub else None
        if nested is None:
            break
        chosen.append(nested)
    for action in chosen[-1]._actions:
        value = getattr(args, action.dest, None)
        if not getattr(action.type, "writes", False) or not value or value == action.default:
            continue
        problem = write_problem(value)
        if problem:
            flag = "/".join(action.option_strings) or action.dest
            shown = value if len(str(value)) <= 80 else str(value)[:60] + "..."
            raise SystemExit(_fail(f"conceptebm {args.command}: argument {flag}: "
                                   f"{action.type.rule}, got {shown!r} ({problem})"))


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def _free_space(path) -> str:
    """``", N GB free there"`` for the nearest existing folder above ``path`` (or nothing)."""
    p = Path(path).absolute() if path else None
    while p is not None and not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"; {_size(shutil.disk_usage(p).free)} free there" if p else ""
    except OSError:
        return ""


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    oom = getattr(__import__("torch"), "OutOfMemoryError", ()) if "torch" in sys.modules else ()
    if oom and isinstance(err, oom):
        return True
    return isinstance(err, RuntimeError) and bool(
        re.search(r"can't allocate memory|out of memory|not enough memory", str(err), re.I))


def describe_failure(err: BaseException) -> tuple[str, int] | None:
    """``(one line, exit status)`` for a failure of the operating system or of memory (see
    :data:`EXIT_STATUS`), or ``None`` for anything else.

    >>> import errno
    >>> describe_failure(OSError(errno.ENOSPC, "No space left on device", "/tmp/x"))[1]
    1
    >>> describe_failure(PermissionError(errno.EACCES, "Permission denied", "/x"))[0][:30]
    'permission denied: /x; choose '
    """
    status = getattr(err, "one_line_status", None)
    if status is not None:  # an error of ours meant to be read as one line (RankFailed)
        return str(err), int(status)
    if _is_out_of_memory(err):
        m = re.search(r"allocat\w* (\d+) bytes|Tried to allocate ([\d.]+ [KMGT]i?B)", str(err))
        size = (f" (an allocation of {_size(int(m.group(1)))} failed)" if m and m.group(1)
                else f" (an allocation of {m.group(2)} failed)" if m else "")
        return (f"out of memory{size}; lower --batch-size, pass --resize SIZE for smaller "
                "images, or use fewer images or chains (-n) at a time", 1)
    if not isinstance(err, OSError):
        return None
    path = err.filename if err.filename is not None else ""
    code = err.errno
    if isinstance(err, BrokenPipeError) or code == errno.EPIPE:
        return ("the reader closed the output pipe before everything was printed (e.g. "
                "| head); files were written completely; read the whole output or write it "
                "to a file", 1)
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied: {path}; choose a folder you can write to (e.g. under "
                "your home folder) or change its permissions", 2)
    if code == errno.EROFS:
        return (f"{path} is on a read-only file system; write to a folder on a writable "
                "disk (e.g. under your home folder)", 2)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return (f"no space left on the device (disk full or quota reached) while writing "
                f"{path}{_free_space(path)}; free some space or write to another disk, then "
                "run the command again", 1)
    if code == errno.ENAMETOOLONG:
        name = max(Path(str(path)).parts or ("",), key=len)
        short = str(path) if len(str(path)) <= 80 else str(path)[:60] + "..."
        return (f"a file name is too long for the file system: {short} (a part of "
                f"{len(name)} characters; most file systems allow 255 bytes); choose a "
                "shorter name", 2)
    if code in (errno.ENOTDIR, errno.EEXIST) and path:
        return (f"{path}: a file is in the way of a folder of that path; choose another "
                "path or move the file", 2)
    if code == errno.ENOENT and path:
        return f"{path}: no such file or folder; check the path", 2
    if code is None:  # raised with a message of ours (FileNotFoundError("...")): bad input
        return str(err), 2
    what = err.strerror or str(err)
    return f"{what}{': ' + str(path) if path else ''}", 1


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so the exit's flush stays silent."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured by tests)
        pass


def _on_sigterm(signum, frame):  # noqa: ARG001 - the signal module's signature
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns its exit status (2 after an ``error:`` line, also for options
    that argparse or a command's ``check`` refuses; 1 for runtime failures of the system or of
    memory; 130 / 143 after Ctrl-C / SIGTERM; see :data:`EXIT_STATUS`)."""
    parser = build_parser()
    try:
        args = parse(sys.argv[1:] if argv is None else argv, parser)
    except SystemExit as stop:  # --help, or one error line already printed
        return stop.code if isinstance(stop.code, int) else 2
    except BrokenPipeError:  # --help | head
        _quiet_stdout()
        return 1
    except KeyboardInterrupt:  # Ctrl-C while the options are read: nothing was written
        print("error: conceptebm: stopped by Ctrl-C (SIGINT) before any work", file=sys.stderr)
        return 130
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import torch  # noqa: F401  (every command needs it; imported before the freeze below)

    tune_process()  # warm buffer reuse, no full GC walks of modules (conceptebm.runtime)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    traceback = bool(os.environ.get("CONCEPTEBM_TRACEBACK"))
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError) as err:
        # user errors found during the work (a bad image, a checkpoint of another concept,
        # an expression the models cannot ground...): every one is a ValueError with a message
        if traceback:
            raise
        return _fail(f"conceptebm {args.command}: {err}")
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (Interrupted)
        if traceback:
            raise
        signum = getattr(err, "signum", signal.SIGINT)
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
        print(f"error: conceptebm {args.command}: stopped by {name}"
              f"{'; ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 128 + signum
    except (OSError, MemoryError, RuntimeError) as err:
        found = describe_failure(err)
        if found is None or traceback:
            raise
        if isinstance(err, BrokenPipeError) or getattr(err, "errno", None) == errno.EPIPE:
            _quiet_stdout()
        message, status = found
        if not getattr(err, "one_line_status", None) or os.environ.get("RANK", "0") == "0":
            # under torchrun the other processes' failure is reported by rank 0 alone
            print(f"error: conceptebm {args.command}: {message}", file=sys.stderr)
        return status

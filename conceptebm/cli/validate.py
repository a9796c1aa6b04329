"""Option types and checks shared by every ``conceptebm`` subcommand.

Each factory returns an :class:`OptionType`: a callable for argparse's ``type=`` that converts
the text or raises :class:`argparse.ArgumentTypeError` with what is allowed and the value it got,
so argparse prints ``error: argument -n: must be an integer >= 1, got '0'``. Each type also
lists a few ``bad`` example values it refuses: the CLI test feeds them to every option of every
subcommand (a new option is covered as soon as it uses one of these types).

Example:
    >>> steps = integer(low=1)
    >>> steps("40")
    40
    >>> steps("-5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer >= 1, got '-5'
    >>> real(low=0, high=1, low_open=True, high_open=True)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number in (0, 1), got 'nan'
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# the release that removes the deprecated spellings (one for every old spelling of the package)
from conceptebm.compat import REMOVED_IN

__all__ = ["OptionType", "CommandError", "integer", "real", "device", "existing_file",
           "existing_path", "output_file", "output_dir", "text", "write_problem", "IMAGE_SUFFIXES",
           "THREADS", "THREADS_DEFAULT", "SEED", "REMOVED_IN", "add_threads", "add_quiet",
           "add_deprecated", "deprecation_line"]

# what matplotlib / Pillow write from the suffix alone
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


class CommandError(ValueError):
    """A user error found after parsing: printed as one line ``error: ...``, exit status 2."""


class _Reason(ValueError):
    """Why a converter refused a value (appended to the rule in the message)."""


class OptionType:
    """An argparse ``type=`` with a rule: ``convert(text)`` returns the value or raises
    ``ValueError``; ``bad`` lists values the rule refuses (for the tests)."""

    writes = False  # a path the command writes: checked by conceptebm.cli.parse when given

    def __init__(self, rule: str, convert: Callable[[str], object], bad: Sequence[str],
                 name: str):
        self.rule, self.convert, self.bad, self.__name__ = rule, convert, tuple(bad), name

    def __call__(self, value: str):
        try:
            return self.convert(value)
        except _Reason as err:  # our own reason, worth printing
            why = f" ({err})" if str(err) else ""
            raise argparse.ArgumentTypeError(f"{self.rule}, got {value!r}{why}") from None
        except (ValueError, TypeError, OverflowError):  # int("abc"), float("x")...
            raise argparse.ArgumentTypeError(f"{self.rule}, got {value!r}") from None
        except OSError as err:  # a path the system cannot even look at (a name too long...)
            shown = value if len(value) <= 80 else value[:60] + "..."
            raise argparse.ArgumentTypeError(f"{self.rule}, got {shown!r} "
                                             f"({err.strerror or err}; choose another path)"
                                             ) from None

    def __repr__(self) -> str:
        return f"OptionType({self.rule!r})"


def _bounds_text(low, high, low_open: bool, high_open: bool) -> str:
    def num(v) -> str:
        return f"{v:_}" if isinstance(v, int) and abs(v) >= 100_000 else f"{v:g}"

    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{num(low)}, {num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {num(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {num(high)}"
    return ""


def integer(low: int | None = None, high: int | None = None) -> OptionType:
    """A whole number in ``[low, high]`` (either end may be ``None``)."""
    rule = "must be an integer" + _bounds_text(low, high, False, False)

    def convert(text: str) -> int:
        v = int(text.strip())
        if (low is not None and v < low) or (high is not None and v > high):
            raise _Reason("")
        return v

    bad = ["abc", "1.5", "nan"] + ([str(low - 1)] if low is not None else []) \
        + ([str(high + 1)] if high is not None else [])
    return OptionType(rule, convert, bad, "integer")


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> OptionType:
    """A finite number in the interval from ``low`` to ``high`` (open ends on request)."""
    rule = "must be a finite number" + _bounds_text(low, high, low_open, high_open)

    def convert(text: str) -> float:
        v = float(text)
        if not math.isfinite(v):
            raise _Reason("")
        if low is not None and (v < low or (low_open and v == low)):
            raise _Reason("")
        if high is not None and (v > high or (high_open and v == high)):
            raise _Reason("")
        return v

    bad = ["abc", "nan", "inf", "-inf"]
    if low is not None:
        bad.append(repr(float(low)) if low_open else repr(low - max(1.0, abs(low))))
    if high is not None:
        bad.append(repr(float(high)) if high_open else repr(high + max(1.0, abs(high))))
    return OptionType(rule, convert, bad, "number")


def device() -> OptionType:
    """A torch device that exists here: ``cpu``, ``cuda``, ``cuda:N`` (N < device count),
    ``mps``."""
    def convert(text: str) -> str:
        import torch

        try:
            dev = torch.device(text)
        except RuntimeError:
            raise _Reason("not a torch device name") from None
        if dev.type == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n == 0:
                raise _Reason("this machine has no CUDA device; use --device cpu")
            if dev.index is not None and dev.index >= n:
                raise _Reason(f"this machine has {n} CUDA device(s)")
        elif dev.type == "mps" and not torch.backends.mps.is_available():
            raise _Reason("MPS is not available here; use --device cpu")
        elif dev.type not in ("cpu", "cuda", "mps"):
            raise _Reason("conceptebm runs on cpu, cuda or mps")
        return text

    return OptionType("must be an available torch device (cpu, cuda, cuda:N, mps)", convert,
                      ["banana", "cuda:99"], "device")


def existing_file(suffixes: Sequence[str] | None = None, what: str = "file") -> OptionType:
    """A path to an existing file (optionally with one of ``suffixes``)."""
    allowed = f" ({', '.join(suffixes)})" if suffixes else ""

    def convert(text: str) -> str:
        p = Path(text)
        if not p.exists():
            raise _Reason("no such file")
        if p.is_dir():
            raise _Reason(f"it is a folder; give a {what} inside it")
        if suffixes and p.suffix.lower() not in suffixes:
            raise _Reason(f"the suffix must be one of {', '.join(suffixes)}")
        return text

    return OptionType(f"must be an existing {what}{allowed}", convert,
                      ["/nonexistent/conceptebm/file" + (suffixes[0] if suffixes else "")],
                      what.replace(" ", "_"))


def existing_path(what: str = "file or folder") -> OptionType:
    """A path to an existing file or folder."""
    def convert(text: str) -> str:
        if not text.strip() or not Path(text).exists():
            raise _Reason("no such file or folder")
        return text

    return OptionType(f"must be an existing {what}", convert, ["/nonexistent/conceptebm/data"],
                      "path")


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def write_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` (a file or folder to create or write into) cannot be written, or
    ``None``: a name longer than its file system allows, a file in the way of a folder, or a
    folder above it without write permission or on a read-only file system (checked for the
    output paths a user gives, not for unused defaults). Root passes the permission check;
    the write itself then says no, in one line (see ``conceptebm.cli``)."""
    p = Path(path)
    base = _nearest_existing(p.parent if p.is_file() else p)  # a file to overwrite: its folder
    try:
        limit = os.pathconf(base if base.is_dir() else base.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    long = [part for part in p.parts if len(os.fsencode(part)) > limit]
    if long:
        return (f"a name of {len(os.fsencode(long[0]))} bytes; this file system allows "
                f"{limit}: choose a shorter name")
    if not base.is_dir():
        return f"{base} is a file, not a folder: choose another path"
    target = p if p.exists() else base
    if not os.access(target, os.W_OK):
        read_only = False
        try:
            read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            pass
        return (f"{target} is on a read-only file system: write to a writable disk" if read_only
                else f"no permission to write in {target}: choose a folder you can write to "
                     "or change its permissions")
    return None


def output_file(suffixes: Sequence[str] = IMAGE_SUFFIXES, what: str = "image") -> OptionType:
    """A path to write whose suffix says its format (so the file written is the one named:
    ``noext`` is refused rather than silently written as ``noext.png``)."""
    def convert(text: str) -> str:
        p = Path(text)
        if not text.strip() or p.suffix.lower() not in suffixes:
            hint = f"; e.g. {p.name or 'out'}{suffixes[0]}" if text.strip() else ""
            raise _Reason(f"the suffix names the format{hint}")
        if p.exists() and p.is_dir():
            raise _Reason("it is a folder")
        return text

    article = "an" if what[0] in "aeiou" else "a"
    out = OptionType(f"must be {article} {what} path ending in {', '.join(suffixes)}", convert,
                     ["noext", "out.txt", ""], "output_file")
    out.writes = True  # conceptebm.cli.parse checks a given path can be written (write_problem)
    return out


def output_dir() -> OptionType:
    """A folder to write into (created if missing; an existing file is refused)."""
    def convert(text: str) -> str:
        if not text.strip():
            raise _Reason("empty")
        if Path(text).exists() and not Path(text).is_dir():
            raise _Reason("a file of that name exists")
        return text

    out = OptionType("must be a folder path", convert, [""], "folder")
    out.writes = True
    return out


def text(pattern_doc: str = "non-empty text") -> OptionType:
    """Any non-empty text (for names checked later against what exists)."""
    def convert(value: str) -> str:
        if not value.strip():
            raise _Reason("")
        return value

    return OptionType(f"must be {pattern_doc}", convert, [""], "text")


# ----------------------------------------------------------------------------- shared options
THREADS = integer(1, 1024)  # torch CPU threads
SEED = integer(0, 2**63 - 1)  # torch.Generator.manual_seed takes any of these

#: The one ``--threads`` default of every subcommand. One thread: a result does not depend
#: on how many cores the machine has (torch splits CPU reductions by thread count, and
#: Langevin chains amplify the last bits; paper/PROTOCOL.md section 5), several processes
#: (torchrun, a shell loop) do not oversubscribe the cores, and the times the benchmarks
#: report are one-thread times. More threads speed up large batches: pass --threads N.
THREADS_DEFAULT = 1
THREADS_HELP = (f"torch CPU threads, 1-1024 (default {THREADS_DEFAULT}: the same numbers on "
                "every machine and no oversubscription when several processes run; more "
                "threads speed up large batches)")



def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: the same option, default and help on every subcommand."""
    parser.add_argument("--threads", type=THREADS, default=THREADS_DEFAULT, help=THREADS_HELP)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars (on stderr); the results are printed as before."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (the results are still printed)")


def deprecation_line(command: str, old: str, new: str) -> str:
    """The one warning line a deprecated spelling prints (on stderr).

    >>> deprecation_line("infer", "--steps", "--map-steps")
    'warning: conceptebm infer: --steps is deprecated; use --map-steps; it goes in conceptebm 0.3'
    """
    return (f"warning: conceptebm {command}: {old} is deprecated; use {new}; it goes in "
            f"conceptebm {REMOVED_IN}")


class _Deprecated(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and prints one
    :func:`deprecation_line` (once per command line, however often it is given)."""

    def __init__(self, option_strings, dest, *, new: str, command: str,
                 convert: Callable[[object], object] | None = None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.command, self.convert = new, command, convert

    def __call__(self, parser, namespace, values, option_string=None):
        said = namespace.__dict__.setdefault("_deprecations_said", set())
        if option_string not in said:
            said.add(option_string)
            print(deprecation_line(self.command, option_string, self.new), file=sys.stderr)
        value = self.const if self.nargs == 0 else values  # an old flag: the new one's value
        setattr(namespace, self.dest, value if self.convert is None else self.convert(value))


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: str, *, command: str,
                   type: OptionType | None = None,  # noqa: A002 - argparse's word
                   convert: Callable[[object], object] | None = None) -> None:
    """Keep ``old`` working as a hidden alias of the option ``new`` already on ``parser``
    until conceptebm :data:`REMOVED_IN`: the new option's type (so the same refusals) unless
    ``type`` is given, and ``convert`` to map an old value to the new option's meaning
    (``--out STEM`` -> ``STEM.safetensors``)."""
    target = next(a for a in parser._actions if new in a.option_strings)
    if target.nargs == 0:  # a flag (--no-progress -> --quiet)
        parser.add_argument(old, action=_Deprecated, dest=target.dest, new=new,
                            command=command, convert=convert, nargs=0, const=target.const,
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return
    parser.add_argument(old, action=_Deprecated, dest=target.dest, new=new, command=command,
                        convert=convert, type=type or target.type, metavar=target.metavar,
                        choices=target.choices, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)

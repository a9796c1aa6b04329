"""Every docstring example in the package runs as written.

The README's test command (``pytest`` with ``testpaths = ["tests"]``) runs them through this
file: one test per module that has examples, each asserting that examples ran and none
failed. Every example runs under a fixed torch seed inside ``torch.random.fork_rng`` (so an
example that draws from the global RNG is reproducible and the other tests' RNG is left as
it was), with ``ELLIPSIS``.

An example may carry ``# doctest: +SKIP`` only for a reason listed in ``SKIPS`` (an optional
dependency, long compute); the test fails on an unlisted skip.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re
import warnings
from pathlib import Path

import pytest
import torch

import conceptebm

ROOT = Path(conceptebm.__file__).resolve().parent
NOT_IMPORTED = {"conceptebm.__main__"}  # runs the command line on import
OPTIONFLAGS = doctest.ELLIPSIS

#: Modules with skipped examples, and why. Keep this short: an example that is not run is
#: an example that may be wrong.
SKIPS: dict[str, str] = {}

_SKIP = re.compile(r"doctest:.*\+SKIP")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: The reproduction (``paper/``, not installed; importable from the repository root in tests):
#: its library modules' examples run too. Its benchmark scripts are not imported.
PAPER = ROOT.parent / "paper"


def _sources() -> dict[str, str]:
    """Source text of every module of the package and of the reproduction's library modules,
    by module name (read, not imported)."""
    paths = sorted(ROOT.rglob("*.py")) + sorted(p for p in PAPER.rglob("*.py")
                                                 if "benchmarks" not in p.parts)
    return {_module_name(p): p.read_text() for p in paths if _module_name(p) not in NOT_IMPORTED}


SOURCES = _sources()
WITH_EXAMPLES = sorted(name for name, text in SOURCES.items() if ">>>" in text)


def run_examples(name: str) -> tuple[doctest.TestResults, str]:
    """Run the docstring examples of module ``name``; returns the results and the report."""
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    out = io.StringIO()
    for test in doctest.DocTestFinder().find(module):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            runner.run(test, out=out.write)
    return doctest.TestResults(runner.failures, runner.tries), out.getvalue()


def test_the_package_has_examples():
    assert len(WITH_EXAMPLES) >= 30, WITH_EXAMPLES
    assert "conceptebm.infer.chain" in WITH_EXAMPLES and "conceptebm.__main__" not in SOURCES
    assert "paper.baselines.regressor" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    result, report = run_examples(name)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed:\n{report}"
    if name not in SKIPS:
        assert result.attempted > 0, (f"{name} has '>>>' examples but none ran: are they in "
                                      "objects defined elsewhere, or all skipped?")


def test_skipped_examples_have_a_listed_reason():
    skipping = {name for name in WITH_EXAMPLES if _SKIP.search(SOURCES[name])}
    unlisted = sorted(skipping - set(SKIPS))
    assert not unlisted, (f"{unlisted} skip docstring examples: make them run (a small "
                          "model, a temporary directory), or list the module in SKIPS with the "
                          "reason (an optional dependency, long compute)")
    stale = sorted(set(SKIPS) - skipping)
    if stale:
        warnings.warn(f"SKIPS lists modules that no longer skip examples: {stale}",
                      stacklevel=1)


def test_a_wrong_example_fails(tmp_path, monkeypatch):
    # The runner reports a failing example (so a passing run means the examples passed).
    (tmp_path / "wrong_example.py").write_text('"""\n>>> 1 + 1\n3\n"""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    result, report = run_examples("wrong_example")
    assert (result.failed, result.attempted) == (1, 1) and "Expected:\n    3\nGot:\n    2" in report

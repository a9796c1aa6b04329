"""The documentation: its examples run as written, and the site builds offline in strict mode
with every notebook executed (a broken link, API reference, docstring or notebook cell fails).

The site build is also where the notebooks run (in their quick setting, ``CI`` set by
conftest.py): ``mkdocs-jupyter`` executes each one with ``allow_errors: false``, so a cell that
raises fails this test, and the executed pages must show their figures.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Pages with examples (not the symlinked reproduction pages or the notebooks).
PAGES = sorted(p for p in DOCS.rglob("*.md") if not p.is_symlink()
               and "paper" not in p.relative_to(DOCS).parts)


def test_every_guide_is_in_the_site_and_the_site_cites_only_the_repository():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        rel = page.relative_to(DOCS).as_posix()
        assert rel in nav, f"{rel} is not in mkdocs.yml's nav"
    for link in ("notebooks", "paper/RESULTS.md", "paper/PROTOCOL.md"):
        assert (DOCS / link).resolve().is_relative_to(ROOT), link
    outside = [f"{p.name}: {m}" for p in PAGES
               for m in re.findall(r"\]\((\.\./\.\./[^)]*|/[^)]*|file:[^)]*)\)", p.read_text())]
    assert not outside, outside


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_the_examples_of_a_page_run(page):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        result = doctest.testfile(str(page), module_relative=False, report=True,
                                  optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) of {page.name} failed"


def test_pages_that_show_code_run_some_of_it():
    with_examples = [p for p in PAGES if ">>>" in p.read_text()]
    assert len(with_examples) >= 8, [p.name for p in with_examples]


@pytest.mark.slow
def test_the_site_builds_strict_offline_with_the_notebooks_executed(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for book in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = (site / "notebooks" / f"{book.stem}.html").read_text()
        assert "<img" in page, f"the executed {book.name} shows no figure"
    api = (site / "api" / "models.html").read_text()
    assert "conceptebm.models.load" in api and "MAPSettings" in (site / "api" /
                                                                "infer.html").read_text()
    assert (site / "paper" / "RESULTS.html").is_file()


def test_docstrings_and_pages_cite_only_files_in_the_repository():
    # a ``path/with/a/slash.py`` (or .md, .json, .ipynb) named in the package or the docs
    # exists; placeholders in capitals (RUN/data.json) are the user's paths
    pattern = re.compile(r"``([\w./-]+\.(?:py|md|json|ipynb|csv))``")
    sources = sorted((ROOT / "conceptebm").rglob("*.py")) + PAGES
    missing = [f"{p.relative_to(ROOT)}: {m}" for p in sources
               for m in pattern.findall(p.read_text())
               if "/" in m and not m.split("/")[0].isupper()
               and not (ROOT / m).exists() and not (ROOT / "conceptebm" / m).exists()]
    assert not missing, "\n".join(missing)
    # names of working notes the developers keep outside the repository (split so that this
    # test is not itself a citation of them)
    notes = re.compile("|".join(["shared/" "reference", "cpu-" "prototype", "pyro-" "notes",
                                 "official-code-" "notes"]))
    outside = [str(p.relative_to(ROOT)) for p in sources if notes.search(p.read_text())]
    assert not outside, outside

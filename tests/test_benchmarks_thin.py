"""Benchmarks are scripts, not a library: nothing imports one, none edits ``sys.path``.

A test that needs a benchmark runs it as a subprocess (``python benchmarks/x.py --quick``, or
``python -m paper.benchmarks.x --quick`` for the paper's); logic two benchmarks share lives in
the package (or, for the paper's experiments, in ``paper/experiments``).
"""

import ast
from pathlib import Path

# Spelled in two pieces so that a plain grep for the pattern finds only real uses, not this
# test that forbids them.
LOAD_BY_PATH = "spec_from_" "file_location"
ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {p.stem for folder in ("benchmarks", "paper/benchmarks")
              for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}


def _sources():
    for folder in ("benchmarks", "tests", "conceptebm", "paper"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def _problems(path: Path, tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in BENCHMARKS
                    or a.name.startswith(("benchmarks", "paper.benchmarks"))]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in BENCHMARKS or top == "benchmarks" or \
                    node.module.startswith("paper.benchmarks"):
                out.append(f"imports from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr == LOAD_BY_PATH:
            out.append(f"loads a module by file path ({LOAD_BY_PATH})")
        elif (isinstance(node, ast.Attribute) and node.attr in ("insert", "append")
              and isinstance(node.value, ast.Attribute) and node.value.attr == "path"
              and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys"):
            out.append(f"edits sys.path (sys.path.{node.attr})")
    return [f"{path.relative_to(ROOT)}:{p}" for p in out]


def test_nothing_imports_a_benchmark_or_edits_sys_path():
    problems = [p for path, tree in _sources() for p in _problems(path, tree)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_what_it_looks_for():
    bad = ast.parse("import sys\nsys.path.append('x')\nfrom train_quality import main\n"
                    f"import importlib.util\nimportlib.util.{LOAD_BY_PATH}('a', 'b')\n")
    found = _problems(ROOT / "benchmarks" / "x.py", bad)
    assert len(found) == 3, found

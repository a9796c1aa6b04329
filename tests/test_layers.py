"""Layers point down: a static walk of the package's import graph fails on an upward import.

Every module of ``conceptebm`` is parsed with ``ast`` (nothing is imported), and every import
in it is collected, including imports inside functions and ``importlib.import_module`` calls
with a constant name. Each module belongs to a layer (its first name under ``conceptebm``);
an import of a module in a higher layer is an upward edge. The order, bottom to top:

    concepts, schedules, runtime < energies < infer < checkpoints < plotting < datasets
    < evaluate, pretrained < train < scenes, compose < cli
    < conceptebm/__init__, __main__

The paper's reproduction (``paper/``: experiments, baselines, benchmarks) sits above all of
them and outside the package: nothing in ``conceptebm`` may import it (checked below).

* ``schedules`` (learning-rate curves) and ``concepts`` import nothing of the package.
* ``checkpoints`` (safetensors + JSON I/O) rebuilds nets and reads the sampler settings a
  checkpoint carries (``infer.settings``), so it sits just above the engine, which knows
  energies and tensors but never files, and below everything that loads
  or writes models (evaluate, pretrained, train).
* ``plotting`` imports nothing of the package; it is ranked above the engine so that
  ``infer`` (and the layers under it) stay free of figure and file-writing code, and below
  datasets, so every application layer may use it.
* Imports under ``if TYPE_CHECKING:`` (annotations only) are not edges.
* ``from conceptebm.infer import infer_concept`` (a lazy alias of a scene application) is an
  import of ``conceptebm.scenes``: that is what it loads.

A new top-level module must be given a layer here (the test says so).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import conceptebm
from conceptebm.infer import _SCENE_ALIASES as SCENE_ALIASES

PACKAGE = "conceptebm"
ROOT = Path(conceptebm.__file__).resolve().parent

#: Layer of each top-level name under ``conceptebm``; higher may import lower or equal.
RANK = {
    "concepts": 0,
    "schedules": 0,
    "compat": 0,  # moved names and their deprecation warnings; imports nothing of the package
    "runtime": 0,  # process settings (the C allocator's policy); imports nothing of the package
    "energies": 1,
    "infer": 2,
    "checkpoints": 3,
    "plotting": 4,
    "datasets": 5,
    "evaluate": 6,
    "pretrained": 6,
    "models": 6,  # conceptebm.load: a name, checkpoint or run folder -> a model (pretrained,
    #               checkpoints)
    "train": 7,
    "scenes": 8,
    "compose": 8,
    "cli": 9,
    "__init__": 10,  # conceptebm/__init__.py itself: the package's public surface
    "__main__": 10,
}

#: Upward imports that are part of the design, by (importer, enclosing function, imported).
ALLOWED = {
    # PEP 562 contract aliases: conceptebm.infer.infer_concept etc. resolve to the scene
    # applications on first use, so importing the engine never imports them.
    ("conceptebm.infer", "__getattr__", "conceptebm.scenes"),
    # Deprecated `python -m` entry points (they go in conceptebm 0.3): each main() forwards its
    # arguments to the validated subcommand that replaced it, so there is one parser.
    ("conceptebm.datasets.foreign", "main", "conceptebm.cli"),
    ("conceptebm.datasets.digits", "main", "conceptebm.cli"),
    ("conceptebm.scenes.calibrate", "main", "conceptebm.cli"),
    ("conceptebm.scenes.temperature", "main", "conceptebm.cli"),
}

#: Upward edges that exist today and are being removed (architecture issue 11), keyed by
#: (importer, imported) module. Empty: the last ones (pretrained -> train.checkpoint, in
#: ``info`` and ``load``) went when checkpoint I/O moved to conceptebm/checkpoints.py. Do not
#: add to this list: fix the import instead (move the shared piece down, or pass it in).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = ROOT) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _layer(module: str) -> str:
    """The layer key of a ``conceptebm...`` module name ("__init__" for the package root)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module named by a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Imports(ast.NodeVisitor):
    """Collects ``(enclosing function or "", imported module, line)`` of one module."""

    def __init__(self, importer: str, is_package: bool, modules: dict[str, Path]):
        self.importer, self.is_package, self.modules = importer, is_package, modules
        self.found: list[tuple[str, str, int]] = []
        self._scope: list[str] = []

    def _add(self, target: str, line: int) -> None:
        edge = (self._scope[0] if self._scope else "", target, line)
        if (target == PACKAGE or target.startswith(PACKAGE + ".")) and edge not in self.found:
            self.found.append(edge)

    def _function(self, node) -> None:
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
        if name == "TYPE_CHECKING":  # annotations only: never imported at run time
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.importer, self.is_package, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            # `from conceptebm import pretrained` imports a module; `from x import name` its x
            target = sub if sub in self.modules else base
            if target == "conceptebm.infer" and alias.name in SCENE_ALIASES:
                target = "conceptebm.scenes"  # the lazy alias loads the scene applications
            self._add(target, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name in ("import_module", "__import__") and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)


def import_edges(root: Path = ROOT) -> list[tuple[str, str, str, int]]:
    """Every ``(importer, enclosing function, imported, line)`` inside the package."""
    modules = _modules(root)
    edges = []
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        edges += [(name, scope, target, line) for scope, target, line in visitor.found]
    return edges


def upward_edges(root: Path = ROOT) -> list[tuple[tuple[str, str], str]]:
    """Upward imports not allowed by design: ``((importer, imported), message)`` each."""
    modules = _modules(root)
    unranked = sorted({_layer(m) for m in modules} - set(RANK))
    assert not unranked, (f"top-level modules {unranked} have no layer: add them to RANK in "
                          f"{Path(__file__).name} (and to the order in its docstring)")
    found = []
    for importer, scope, target, line in import_edges(root):
        low, high = _layer(importer), _layer(target)
        if RANK[high] <= RANK[low] or (importer, scope, target) in ALLOWED:
            continue
        where = f"{importer}:{line}" + (f" (in {scope})" if scope else "")
        found.append(((importer, target), f"{where} imports {target}: layer {low!r} "
                                          f"({RANK[low]}) -> {high!r} ({RANK[high]})"))
    return found


def test_the_walk_sees_every_kind_of_import():
    edges = import_edges()
    pairs = {(a, t) for a, _, t, _ in edges}
    assert len({a for a, *_ in edges}) > 30  # most modules import something of the package
    assert ("conceptebm.infer.chain", "conceptebm.infer.samplers") in pairs  # from-import
    # the lazy alias, an import inside a function, is seen (and allowed by name)
    assert ("conceptebm.infer", "__getattr__", "conceptebm.scenes") in \
        {(a, s, t) for a, s, t, _ in edges}
    # `from conceptebm import pretrained` inside a function resolves to the module
    assert any(t == "conceptebm.pretrained" and s for _, s, t, _ in edges)


def test_type_checking_imports_are_not_edges_but_others_are():
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from conceptebm.train import TrainConfig\n"
              "else:\n    import conceptebm.cli\n"
              "def f():\n    importlib.import_module('conceptebm.scenes')\n")
    visitor = _Imports("conceptebm.energies.x", False, _modules())
    visitor.visit(ast.parse(source))
    assert visitor.found == [("", "conceptebm.cli", 5), ("f", "conceptebm.scenes", 7)]
    # a scene name taken from the engine's lazy aliases is an import of the scenes
    visitor = _Imports("conceptebm.datasets.x", False, _modules())
    visitor.visit(ast.parse("from conceptebm.infer import infer_concept, mala"))
    assert visitor.found == [("", "conceptebm.scenes", 1), ("", "conceptebm.infer", 1)]


def test_relative_imports_resolve():
    node = ast.parse("from ..energies import base").body[0]
    assert _resolve("conceptebm.infer.chain", False, node) == "conceptebm.energies"
    assert _resolve("conceptebm.infer", True, ast.parse("from . import chain").body[0]) == \
        "conceptebm.infer"


def test_an_upward_import_is_caught(tmp_path):
    # A miniature package: energies imports train at run time (upward), infer's lazy alias
    # imports scenes inside __getattr__ (allowed by name), train imports energies (down).
    pkg = tmp_path / PACKAGE
    files = {
        "__init__.py": "",
        "energies/__init__.py": "",
        "energies/base.py": "def f():\n    from conceptebm.train import loop\n",
        "infer/__init__.py": "def __getattr__(name):\n    import conceptebm.scenes\n",
        "scenes/__init__.py": "",
        "train/__init__.py": "from ..energies import base\n",
        "train/loop.py": "",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    found = upward_edges(pkg)
    assert [pair for pair, _ in found] == [("conceptebm.energies.base", "conceptebm.train.loop")]
    assert "conceptebm.energies.base:2 (in f) imports conceptebm.train.loop" in found[0][1]
    (pkg / "extras.py").write_text("")
    with pytest.raises(AssertionError, match=r"\['extras'\] have no layer"):
        upward_edges(pkg)


def test_no_new_upward_import():
    found = upward_edges()
    new = [message for pair, message in found if pair not in KNOWN_VIOLATIONS]
    assert not new, ("imports that point up the layers (concepts < energies < infer < "
                     "checkpoints < plotting < datasets < evaluate/pretrained < train < "
                     "scenes/compose < cli); move the shared piece down or pass it in:\n  " +
                     "\n  ".join(new))
    stale = sorted(KNOWN_VIOLATIONS - {pair for pair, _ in found})
    if stale:
        warnings.warn(f"KNOWN_VIOLATIONS entries no longer present, remove them: {stale}",
                      stacklevel=1)


def test_the_engine_imports_nothing_above_it():
    # The rule of the engine, spelled out (issue 11): no known violation may excuse it.
    banned = ("checkpoints", "plotting", "datasets", "scenes", "train", "evaluate", "compose",
              "pretrained", "cli")
    bad = [f"{a}:{line} imports {t}" for a, s, t, line in import_edges()
           if a.startswith("conceptebm.infer") and t.split(".")[1:2] and
           t.split(".")[1] in banned and (a, s, t) not in ALLOWED]
    assert not bad, "the engine (conceptebm.infer) must not import:\n  " + "\n  ".join(bad)


def test_importing_the_engine_loads_nothing_above_it():
    # The static walk allows the lazy alias by name; this checks that it stays lazy.
    code = ("import sys, conceptebm.infer\n"
            "print(sorted({m.split('.')[1] for m in sys.modules\n"
            "              if m.startswith('conceptebm.') and m.count('.') >= 1}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    loaded = set(ast.literal_eval(out.strip()))
    above = {name for name, rank in RANK.items() if rank > RANK["infer"]}
    assert "infer" in loaded and not loaded & above, f"importing conceptebm.infer loaded {loaded}"


def _imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", "")) in ("import_module", "__import__") and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    return names


def test_the_package_never_imports_the_reproduction():
    # paper/ is not installed: an import of it from the package would fail in a user's wheel.
    bad = [f"{path.relative_to(ROOT.parent)} imports {name}"
           for path in sorted(ROOT.rglob("*.py")) for name in _imports_of(path)
           if name == "paper" or name.startswith("paper.")]
    assert not bad, "\n".join(bad)
    # the check sees a real import of the reproduction where one exists (its own tests)
    test = Path(__file__).parent / "paper" / "experiments" / "test_cross_product.py"
    assert "paper.experiments.cross_product" in _imports_of(test)


def test_the_wheel_holds_the_package_only():
    import re

    from setuptools import find_packages
    text = (ROOT.parent / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.packages.find]")[1].split("\n[")[0]
    lists = {k: re.findall(r'"([^"]+)"', v) for k, v in
             re.findall(r"^(include|exclude) = (\[.*\])$", section, re.M)}
    found = find_packages(str(ROOT.parent), include=lists["include"],
                          exclude=lists.get("exclude", ()))
    assert "conceptebm" in found and "conceptebm.infer" in found
    assert not [p for p in found if not p.startswith("conceptebm")], found


def test_no_private_name_is_imported_across_modules():
    # a name with a leading underscore belongs to its module: another module that needs it
    # means it is public (rename it) or the logic belongs in one place
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == PACKAGE:
                found += [f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {a.name} from "
                          f"{node.module}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                    not node.attr.startswith("__") and isinstance(node.value, ast.Name) and \
                    node.value.id in {"pretrained", "checkpoints", "infer", "scenes", "train",
                                      "evaluate", "datasets", "compose", "energies"}:
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} reads "
                             f"{node.value.id}.{node.attr}")
    assert not found, "\n".join(found)

"""The reported numbers are the committed JSONs' numbers, chosen apart from the test targets.

* every JSON in ``paper/results/`` names the command that wrote it (which writes that file)
  and its protocol: what was chosen on which data, with selection seeds disjoint from the
  test seeds;
* every table of ``paper/RESULTS.md`` follows a ``<!-- results: paper/results/X.json -->``
  line, every number in it equals a number of that JSON at the decimals shown, and the command
  printed with it is the JSON's command.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "paper" / "results"
MARK = re.compile(r"<!-- results: (\S+) -->")
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+)?(?![\w.])")


def _json_files() -> list[Path]:
    return sorted(RESULTS.glob("*.json"))


def _numbers(obj) -> list[float]:
    """Every number in a JSON value, recursively (booleans excluded)."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return []


def _cell_numbers(row: str) -> list[str]:
    """Numbers written in a table row's cells (the first cell, the row's name, excluded)."""
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    return [m for cell in cells[1:] for m in NUMBER.findall(cell.replace("−", "-"))]


def _matches(text: str, values: list[float]) -> bool:
    decimals = len(text.split(".")[1]) if "." in text else 0
    shown = float(text)
    tol = 0.5 * 10 ** -decimals + 1e-9
    # a percentage cell may show a fraction x 100
    return any(abs(v - shown) <= tol or abs(100 * v - shown) <= tol for v in values)


def tables(markdown: str) -> list[tuple[str, str | None, list[str]]]:
    """``(json path, command or None, table rows)`` for each marked table of ``markdown``."""
    out = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        m = MARK.search(line)
        if not m:
            continue
        command, rows, j = None, [], i + 1
        while j < len(lines) and not lines[j].startswith("|"):
            if lines[j].startswith("```") and command is None:
                k = j + 1
                block = []
                while k < len(lines) and not lines[k].startswith("```"):
                    block.append(lines[k])
                    k += 1
                command, j = " ".join(b.strip() for b in block).replace("\\ ", " "), k
            if MARK.search(lines[j]) and j != i:
                break
            j += 1
        while j < len(lines) and lines[j].startswith("|"):
            if not set(lines[j]) <= set("|-: "):
                rows.append(lines[j])
            j += 1
        out.append((m.group(1), command, rows[1:]))  # rows[0]: the header
    return out


def problems(markdown: str, root: Path = ROOT) -> list[str]:
    found = []
    for path, command, rows in tables(markdown):
        file = root / path
        if not file.is_file():
            found.append(f"{path}: no such JSON")
            continue
        data = json.loads(file.read_text())
        values = _numbers(data)
        if command is not None and " ".join(command.split()) != " ".join(
                data.get("command", "").split()):
            found.append(f"{path}: the printed command {command!r} is not the JSON's "
                         f"{data.get('command')!r}")
        if not rows:
            found.append(f"{path}: the marker is followed by no table")
        for row in rows:
            for text in _cell_numbers(row):
                if not _matches(text, values):
                    found.append(f"{path}: {text} in row {row.strip()[:60]!r} is in no JSON "
                                 "value")
    return found


def test_every_reported_table_is_its_json():
    text = (ROOT / "paper" / "RESULTS.md").read_text()
    assert not problems(text), "\n".join(problems(text))


def test_every_result_has_been_tied_to_a_table():
    text = (ROOT / "paper" / "RESULTS.md").read_text()
    shown = {path for path, _, _ in tables(text)}
    missing = [p.relative_to(ROOT).as_posix() for p in _json_files()
               if p.relative_to(ROOT).as_posix() not in shown]
    assert not missing, f"results no table reports: {missing}"


@pytest.mark.parametrize("path", _json_files(), ids=lambda p: p.name)
def test_a_result_names_its_command_and_a_protocol_that_keeps_test_apart(path):
    data = json.loads(path.read_text())
    command = data.get("command", "")
    assert "paper.benchmarks." in command or "benchmarks/" in command, command
    assert f"paper/results/{path.name}" in command, "the command must write this file"
    protocol = data.get("protocol")
    assert isinstance(protocol, dict) and protocol.get("selection"), \
        f"{path.name}: say what was chosen on which data (protocol.selection)"
    sel, test = set(protocol.get("selection_seeds", [])), set(protocol.get("test_seeds", []))
    assert test, f"{path.name}: name the test seeds (or split) read for the report"
    assert not sel & test, f"{path.name}: seeds {sorted(sel & test)} both select and test"


def test_the_checker_catches_a_wrong_number_and_a_wrong_command(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"command": "python -m paper.benchmarks.x",
                                                 "acc": 0.8123, "n": 500,
                                                 "rows": {"gan": 0.25}}))
    good = ("<!-- results: r.json -->\n```\npython -m paper.benchmarks.x\n```\n"
            "| model | acc | n |\n|---|---|---|\n| ebm 2 | 0.812 | 500 |\n| gan | 0.25 | |\n")
    assert problems(good, tmp_path) == []
    assert len(problems(good.replace("0.812", "0.815"), tmp_path)) == 1
    assert len(problems(good.replace("benchmarks.x\n", "benchmarks.y\n"), tmp_path)) == 1
    assert "no such JSON" in problems(good.replace("r.json", "s.json"), tmp_path)[0]

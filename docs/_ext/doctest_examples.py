"""A griffe extension for the API reference: our docstrings' doctest examples render as code.

The package's docstrings head their runnable examples ``Example:`` (the test suite runs every
one, ``tests/test_doctests.py``), and a few modules show a bare ``>>>`` block in a paragraph.
The Google-style parser treats only ``Examples:`` as an examples section (anything else would
be Markdown text, where ``x["a"][0]`` reads as a link reference). This rewrites, at load time
and without touching the sources, the heading ``Example:`` to ``Examples:`` and opens an
``Examples:`` section before a bare ``>>>`` block.
"""

from __future__ import annotations

import re

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$")


def rewrite(text: str) -> str:
    """The docstring ``text`` with its doctest examples in ``Examples:`` sections.

    >>> print(rewrite("Sum.\\n\\nExample:\\n    >>> 1 + 1\\n    2"))
    Sum.
    <BLANKLINE>
    Examples:
        >>> 1 + 1
        2
    >>> print(rewrite("Sum.\\n\\n>>> [1][0]\\n1"))
    Sum.
    <BLANKLINE>
    Examples:
        >>> [1][0]
        1
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HEADING.match(line)
        if m:
            out.append(f"{m.group(1)}Examples:")
            i += 1
            continue
        if line.startswith(">>>"):  # a bare block at the docstring's own indentation
            out.append("Examples:")
            while i < len(lines) and lines[i].strip():
                out.append("    " + lines[i])
                i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestExamples(griffe.Extension):
    """Rewrites every docstring's examples (see :func:`rewrite`) once the tree is loaded."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

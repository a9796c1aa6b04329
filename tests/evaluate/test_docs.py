"""The docstring examples of conceptebm.evaluate run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["conceptebm.evaluate", "conceptebm.evaluate.metrics", "conceptebm.evaluate.judge",
           "conceptebm.evaluate.checkpoint", "conceptebm.evaluate.augment",
           "conceptebm.evaluate.heldout"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"

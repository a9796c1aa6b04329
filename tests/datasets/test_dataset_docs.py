"""The docstring examples of the datasets package run as written."""

import doctest
import importlib

import pytest

MODULES = ["conceptebm.datasets", "conceptebm.datasets.dataset", "conceptebm.datasets.factories",
           "conceptebm.datasets.renderer", "conceptebm.datasets.scene"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

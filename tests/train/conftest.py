"""Fixtures of the training tests: the colored-squares stand-in of ``squares.py`` (a module of
its own, so tests import it by a name no other test folder uses)."""

import pytest
from squares import SquaresDataset, SquaresJudge


@pytest.fixture
def squares():
    return SquaresDataset()


@pytest.fixture
def squares_judge():
    return SquaresJudge()

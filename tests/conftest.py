import os

import pytest
import torch

# One thread per test process: the suite runs two processes on two cores.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CI", "1")  # notebooks and entry points run their smoke settings


@pytest.fixture
def gen():
    """A fresh, seeded generator: tests never touch the global RNG."""
    return torch.Generator().manual_seed(1234)

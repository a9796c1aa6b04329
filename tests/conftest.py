import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# One thread per test process: the suite runs two processes on two cores.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CI", "1")  # notebooks and entry points run their smoke settings


@pytest.fixture
def gen():
    """A fresh, seeded generator: tests never touch the global RNG."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def run_benchmark():
    """``run_benchmark(name, *args)``: ``benchmarks/<name>.py`` (else ``python -m
    paper.benchmarks.<name>``) in a subprocess from the
    repository root (as a user runs it); fails the test with its stderr unless it exits 0, and
    returns its stdout."""
    def run(name: str, *args, timeout: int = 300) -> str:
        # a library benchmark is a script; the paper's run as modules from the root
        script = ROOT / "benchmarks" / f"{name}.py"
        target = [str(script)] if script.is_file() else ["-m", f"paper.benchmarks.{name}"]
        proc = subprocess.run([sys.executable, *target, *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout
    return run

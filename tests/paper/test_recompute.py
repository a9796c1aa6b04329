"""Committed numbers recompute from committed checkpoints, in seconds: the reported tables are
what the code and the shipped weights give, not numbers typed in.

Each test redoes one entry of a ``paper/results/*.json`` the way its benchmark computed it (same
data seeds, same settings) and compares. On the CPU that wrote the JSON the numbers are equal to
the last digit; other CPUs sum in other orders, so the tolerance is a tenth of the entry's
standard error (``paper/PROTOCOL.md``, section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conceptebm.checkpoints import load_energy
from conceptebm.datasets import load_images
from conceptebm.datasets.foreign import write_foreign
from conceptebm.evaluate.heldout_map import heldout_map_metrics

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "paper" / "results"


def _result(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def test_the_user_data_ebm_test_error_recomputes(tmp_path):
    result = _result("user_data")
    seed = result["protocol"]["test_seeds"][0]
    test = load_images(write_foreign(tmp_path / "test", result["test"], seed=seed), infer=True)
    net = load_energy(ROOT / "paper" / "checkpoints" / "user_data" / "best.safetensors")
    mae = heldout_map_metrics(net, test.images, test.labels["position"])["position_mae"]
    assert mae.value == pytest.approx(result["ebm_mae"], abs=0.1 * result["ebm_mae_se"])
    assert mae.stderr == pytest.approx(result["ebm_mae_se"], rel=0.05)

"""The user-data and digits benchmarks run in their quick (smoke) modes and write their keys,
under the protocol: selection and test data disjoint, the test read by ``train --test`` too, the
one regressor with the EBM's augmentation and its own validation choice."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script, tmp_path, *extra):
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks." + script, "--quick",
                           "--threads", "1", "--out", str(tmp_path / "work"), "--json",
                           str(out), *extra], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _protocol(r):
    prot = r["protocol"]
    assert prot["selection"] and prot["test_seeds"] == [20261207]
    assert not set(prot["selection_seeds"]) & set(prot["test_seeds"])


def test_user_data_quick_writes_json(tmp_path):
    r = _run("user_data", tmp_path)
    for key in ("ebm_mae", "ebm_mae_noisy", "regressor_mae", "regressor_mae_noisy",
                "shipped_mae", "shipped_mae_noisy"):
        assert 0 <= r[key] < 5 and 0 <= r[key + "_se"] < 1, key
    assert (r["test"], r["validation"], r["train"]) == (12, 8, 32)
    assert r["train_command"].startswith("conceptebm train --data")
    assert "--test" in r["train_command"] and r["train_test_json"]["position_mae"]["value"] \
        == pytest.approx(r["ebm_mae"], abs=0.2)  # train --test read the same images
    assert r["augment_noise"] == 0.0 and r["regressor_updates"] == 30  # smoke: no noise
    assert r["budget_updates_ratio"] == pytest.approx(30 / r["ebm_iterations"])
    _protocol(r)
    work = tmp_path / "work"  # the test images are rendered apart from the training ones
    data, test = ({line.split(",", 1)[1] for line in
                   (work / part / "labels.csv").read_text().splitlines()[1:]}
                  for part in ("data", "test"))
    assert len(test) == 12 and not data & test  # no test scene repeats a training one


def test_digits_quick_writes_json_and_figures(tmp_path):
    pytest.importorskip("sklearn")
    r = _run("digits", tmp_path)
    assert r["logreg_accuracy"] > 0.9  # the baseline is real even in smoke mode
    for key in ("map_accuracy", "generation_accuracy", "cnn_accuracy", "or_split_3", "or_split_8"):
        assert 0 <= r[key] <= 1 and 0 <= r[key + "_se"] <= 0.5, key
    assert (r["test"], r["validation"], r["train"]) == (449, 270, 1078)
    assert r["fid"] >= 0 and r["fid_floor"] >= 0 and r["fid_n"] == 449
    assert r["denoise_steps_chosen"] in (0, 5) and "fid_val_denoise_5" in r
    assert r["train_test_json"]["digit_acc"]["value"] == pytest.approx(r["map_accuracy"])
    _protocol(r)
    assert (tmp_path / "work" / "digits_classes.png").is_file()
    assert (tmp_path / "work" / "digits_or.png").is_file()


def test_the_one_regressor_uses_augmentation_and_validation(tmp_path):
    import torch

    from conceptebm.concepts import Concept
    from paper.baselines.regressor import fit_regressor

    level = Concept.continuous("level", 1, 0.0, 1.0)
    x = torch.rand(64, 1, 1, 1).expand(64, 3, 8, 8)
    y = x[:, 0, 0, :1]
    plain = fit_regressor(x, y, level, iterations=40, width=4, seed=0)
    noisy = fit_regressor(x, y, level, iterations=40, width=4, seed=0, augment_noise=0.3)
    assert not torch.equal(plain.head.weight, noisy.head.weight)  # the noise reached training
    picked = fit_regressor(x, y, level, iterations=40, width=4, seed=0,
                           val=(x[:8], y[:8]), eval_every=10)
    assert picked.record["selected_on"] == "validation"
    assert picked.record["best_iteration"] in (10, 20, 30, 40)
    timed = fit_regressor(x, y, level, iterations=None, time_limit_s=0.2, clock="cpu",
                          width=4, seed=0)
    assert timed.record["cpu_seconds"] >= 0.2 and timed.record["iterations"] > 1
    with pytest.raises(ValueError, match="budget"):
        fit_regressor(x, y, level, iterations=None, width=4)

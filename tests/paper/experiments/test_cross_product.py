"""The cross-product protocol (paper.experiments.cross_product) and its benchmark."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conceptebm.datasets import scene_concepts
from conceptebm.datasets.factories import cross_product_region
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.evaluate import load_judges
from paper.experiments.cross_product import (
    composed_energy,
    held_out_targets,
    quick_config,
    real_twin,
    run_cross_product,
)

ROOT = Path(__file__).resolve().parents[3]
FRACTIONS = ("0.01", "0.1", "1.0")


def test_composed_energy_is_the_sum_of_the_two(gen):
    sc = scene_concepts()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pos, size = ConvEnergyNet(sc["position"], width=4), ConvEnergyNet(sc["size"], width=4)
    x = torch.rand(3, 3, 32, 32, generator=gen)  # (3, 3, 32, 32)
    p = torch.tensor([[0.3, -0.2], [-0.7, 0.1], [0.0, 0.9]])  # (3, 2)
    s = torch.tensor([[0.3], [0.41], [0.26]])  # (3, 1)
    e = composed_energy(pos, size, p, s)(x)  # (3,)
    assert e.shape == (3,)
    torch.testing.assert_close(e, pos(x, p) + size(x, s))
    assert not torch.allclose(e, pos(x, p))  # the size term is not zero


def test_held_out_targets_lie_outside_the_region(tmp_path):
    cfg = quick_config(str(tmp_path))
    _, labels = held_out_targets(cfg, 0.1)
    a = cross_product_region(0.1)
    assert not (labels["position"] >= a).all(1).any()  # never inside the top-right square
    assert (labels["size"] < 0.45).all()
    _, full = held_out_targets(cfg, 1.0)  # fraction 1 has no held-out split: the 1 % targets
    _, one = held_out_targets(cfg, 0.01)
    assert torch.equal(full["position"], one["position"])
    _, val = held_out_targets(cfg, 0.01, "validation")  # other targets, same region
    assert not torch.equal(val["position"], one["position"])
    assert not (val["position"] >= cross_product_region(0.01)).all(1).any()
    assert cfg.validation_seed != cfg.test_seed == 20261207
    with pytest.raises(ValueError, match="must differ"):
        dataclasses.replace(cfg, val_seed=5, test_seed=5)


def test_the_realism_floor_renders_the_same_targets_again(tmp_path):
    cfg = quick_config(str(tmp_path))
    real, labels = held_out_targets(cfg, 0.1)
    twin = real_twin(cfg, 0.1, labels)
    assert twin.shape == real.shape and not torch.equal(twin, real)  # other lights
    read = load_judges().predict(twin)
    assert (read["position"] - labels["position"]).norm(dim=1).max() < 0.2


def test_quick_benchmark_writes_the_keys_and_reuses_trainings(tmp_path):
    out, runs, figs = tmp_path / "cp.json", tmp_path / "runs", tmp_path / "figs"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.cross_product",
                           "--quick", "--json", str(out), "--out-dir", str(runs),
                           "--figures", str(figs), "--equal-decoders", "0.01"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    for model in ("ebm", "baseline", "real", "position_only"):
        for f in FRACTIONS:
            for metric in ("pos_err", "size_err"):
                for key in (f"{model}.{f}.{metric}", f"{model}.{f}.{metric}_se"):
                    assert math.isfinite(res[key]) and res[key] >= 0, key
            assert res[f"{model}.{f}.fid"] >= 0 and res[f"{model}.{f}.fid_floor"] >= 0
    assert res["choice.denoise_steps"] in (0, 2)
    assert all(f"val.ebm.{f}.fid" in res and f"val.ebm_denoise2.{f}.fid" in res
               for f in FRACTIONS)
    p = res["protocol"]
    assert set(p["selection_seeds"]).isdisjoint(p["test_seeds"]) and p["test_seeds"] == [
        20261207]
    assert res["budget_ratio.decoder_over_ebm"] > 0
    # the decoder given the EBMs' CPU time (its size EBM's plus a third of the position EBM's)
    equal = json.loads((runs / "decoder_equal_0.01" / "done.json").read_text())
    budget = res["minutes.size_ebm.0.01"] + res["minutes.position_ebm"] / 3
    assert abs(equal["budget_cpu_minutes"] - budget) < 1e-9
    assert equal["cpu_minutes"] >= budget and equal["best_iteration"] is not None
    assert math.isfinite(res["baseline_equal.0.01.pos_err"])
    assert "baseline_equal.0.1.pos_err" not in res
    assert res["minutes.position_ebm"] > 0
    assert all(res[f"minutes.{m}.{f}"] > 0 for m in ("size_ebm", "baseline") for f in FRACTIONS)
    assert (figs / "cross_product_errors.png").stat().st_size > 0
    assert (figs / "cross_product_samples.png").stat().st_size > 0
    assert not (runs / "position" / "last.safetensors").exists()  # pruned once done
    # a second run reuses every finished training and judges the same models the same way
    lines = []
    again = run_cross_product(quick_config(str(runs)), log=lines.append)
    assert not [ln for ln in lines if "training" in ln], lines
    for key in ("ebm.0.1.size_err", "baseline.0.01.pos_err"):
        assert again["results"][key] == res[key]


def test_the_committed_decoder_rows_recompute_from_the_committed_checkpoints():
    """paper/results/cross_product.json's decoder rows, from paper/checkpoints (seconds)."""
    from paper.baselines.decoder import decoder_labels, load_decoder
    from paper.experiments.cross_product import CrossProductConfig, _judge

    res = json.loads((ROOT / "paper" / "results" / "cross_product.json").read_text())
    cfg = CrossProductConfig(n_test=res["config"]["n_test"],
                             test_seed=res["protocol"]["test_seeds"][0],
                             val_seed=res["protocol"]["selection_seeds"][0])
    judge = load_judges()
    for f in ("0.01", "0.1"):
        dec = load_decoder(ROOT / "paper" / "checkpoints" / "cross_product" / f"decoder_{f}" /
                           "decoder.safetensors")
        _, labels = held_out_targets(cfg, float(f), "test")
        with torch.no_grad():
            x = dec(decoder_labels(labels, ("position", "size")),
                    generator=torch.Generator().manual_seed(cfg.test_seed))
        got = _judge(judge, x, labels, scene_concepts())
        for metric in ("pos_err", "size_err", "pos_acc"):
            assert abs(got[metric] - res[f"baseline.{f}.{metric}"]) < 1e-4, (f, metric)

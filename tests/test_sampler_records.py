"""Sampler settings travel in checkpoints: the loop records them, loaders build models with them."""

import json

import pytest
import torch

from conceptebm.checkpoints import CheckpointError, load_energy, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.infer.settings import DEFAULT, SamplerSettings
from conceptebm.train import smoke_config, train
from conceptebm.train.sampling import eval_settings, training_settings


def test_every_checkpoint_of_a_run_records_its_test_time_settings(tmp_path):
    cfg = smoke_config(concept="position", out_dir=str(tmp_path / "run"),
                       step_size=50.0, noise_scale=0.01, eval_steps=7, sampler_steps=2,
                       snapshot_every=3, iterations=3, eval_samples=4)
    train(cfg, progress=False)
    want = eval_settings(cfg)
    assert want == SamplerSettings(num_steps=7, step_size=50.0, noise_scale=0.01)
    assert training_settings(cfg).num_steps == 2
    out = tmp_path / "run"
    paths = [out / "last.safetensors", out / "best.safetensors",
             *sorted((out / "snapshots").glob("*.safetensors"))]
    assert len(paths) >= 3
    for path in paths:
        assert load_energy(path).sampler == want, path
    assert SamplerSettings.from_dict(json.loads((out / "best.json").read_text())["sampler"]) == want


def _net():
    return ConvEnergyNet(Concept.continuous("size", low=0.3, high=0.7), image_size=16, width=4)


def test_loader_reads_old_records_and_refuses_bad_ones(tmp_path):
    net = _net()
    weights = {"model": net.state_dict()}
    # no "sampler" entry: the default with the step size, noise and init it was trained with
    save_checkpoint(tmp_path / "old.safetensors", weights,
                    {"net": net.config, "train": {"step_size": 1.0, "init": "uniform"}})
    assert load_energy(tmp_path / "old.safetensors").sampler == DEFAULT.replace(
        step_size=1.0, init="uniform")
    # no record at all: nothing recommended
    save_checkpoint(tmp_path / "bare.safetensors", weights, {"net": net.config})
    assert load_energy(tmp_path / "bare.safetensors").sampler is None
    save_checkpoint(tmp_path / "bad.safetensors", weights,
                    {"net": net.config, "sampler": {"num_steps": 40, "step_size": -1}})
    with pytest.raises(CheckpointError, match="bad.safetensors.*step_size"):
        load_energy(tmp_path / "bad.safetensors")


def test_settings_are_fixed_at_construction():
    s = DEFAULT.replace(num_steps=3)
    net = ConvEnergyNet(Concept.continuous("size", low=0.3, high=0.7), image_size=16, width=4,
                        sampler=s)
    assert net.sampler is s and _net().sampler is None
    with pytest.raises(AttributeError):
        net.sampler = DEFAULT
    with pytest.raises(TypeError, match="sampler must be a conceptebm.infer.SamplerSettings"):
        ConvEnergyNet(Concept.continuous("size", low=0.3, high=0.7), image_size=16, width=4,
                      sampler={"num_steps": 3})
    # a copy (as the EMA weights are made) keeps them
    import copy

    assert copy.deepcopy(net).sampler == s
    assert torch.equal(copy.deepcopy(net).c_scale, net.c_scale)

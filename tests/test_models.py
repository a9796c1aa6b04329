"""conceptebm.load: one front door for a shipped name, a checkpoint file and a run folder."""

import pytest
import torch

import conceptebm
from conceptebm import pretrained
from conceptebm.checkpoints import CheckpointError, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.infer import DEFAULT_MAP, MAPSettings
from conceptebm.models import ModelNotFoundError, resolve
from conceptebm.scenes import infer_concept


def _tiny(tmp_path, name="best.safetensors", record=None):
    net = ConvEnergyNet(Concept.continuous("position", 2), image_size=16, width=4, embed_dim=8)
    path = tmp_path / name
    save_checkpoint(path, {"model": net.state_dict()}, {"net": net.config, **(record or {})})
    return net, path


def test_a_shipped_name_carries_its_record_and_settings():
    model = conceptebm.load("position")
    assert model.record == pretrained.info("position")
    assert model.sampler.step_size == model.record["sampler"]["step_size"]
    assert model.map_settings == DEFAULT_MAP  # shipped records store no "map": the defaults
    assert not model.training
    with pytest.raises(TypeError):
        model.record["command"] = "x"  # read-only


def test_a_file_and_its_run_folder_load_the_same_model(tmp_path):
    net, path = _tiny(tmp_path, record={"command": "conceptebm train ...",
                                        "map": {"grid": 9, "steps": 5}})
    by_file, by_folder = conceptebm.load(path), conceptebm.load(tmp_path)
    for a, b in zip(by_file.state_dict().values(), by_folder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert by_folder.record["command"] == "conceptebm train ..."
    assert by_folder.map_settings == MAPSettings(grid=9, steps=5)
    assert resolve(tmp_path) == path
    # without best.safetensors a run folder stands for its last checkpoint
    path.rename(tmp_path / "last.safetensors")
    assert resolve(tmp_path) == tmp_path / "last.safetensors"


class _Bowl(ConditionalEnergy):
    """E(x | c) = |c - (0.33, -0.41)|^2, whatever the image: its minimum is off every grid."""

    def energy(self, x, c):
        return (c - torch.tensor([0.33, -0.41])).square().sum(-1)


def test_infer_concept_uses_the_models_map_settings_unless_told_otherwise():
    model = _Bowl(Concept.continuous("position", 2)).attach_record(
        {}, map_settings=MAPSettings(grid=9, steps=0))
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    own = infer_concept(model, images)  # a 9x9 grid (step 0.25), no refinement
    assert torch.allclose(own.value, torch.tensor([[0.25, -0.5]] * 2))
    refined = infer_concept(model, images, steps=200, lr=0.05)  # arguments override the record
    assert torch.allclose(refined.value, torch.tensor([[0.33, -0.41]] * 2), atol=1e-3)
    plain = infer_concept(model.attach_record({}), images)  # no settings: 17x17 grid + 60 steps
    assert not torch.allclose(plain.value, own.value)


def test_what_cannot_be_loaded_says_why(tmp_path):
    with pytest.raises(ModelNotFoundError, match="shipped models: position"):
        conceptebm.load("positon")
    with pytest.raises(ModelNotFoundError, match="not found"):
        conceptebm.load(tmp_path / "missing.safetensors")
    with pytest.raises(ModelNotFoundError, match="holds no best.safetensors"):
        conceptebm.load(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no shipped model reads the concept"):
        conceptebm.load(concept="mood")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        conceptebm.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="is a 'color' model, not a 'position' one"):
        conceptebm.load("color", concept="position")
    _, bad = _tiny(tmp_path, "bad.safetensors", record={"map": {"grid": -3}})
    with pytest.raises(CheckpointError, match="bad 'map' record"):
        conceptebm.load(bad)


def test_map_settings_validate_and_round_trip():
    m = MAPSettings(grid=41, steps=100, optimizer="lbfgs", lr=0.1, restarts=3)
    assert MAPSettings.from_dict(m.to_dict()) == m
    assert m.replace(steps=None, grid=17) == MAPSettings(grid=17, steps=100, optimizer="lbfgs",
                                                         lr=0.1, restarts=3)
    for bad in ({"steps": 1.5}, {"restarts": 0}, {"optimizer": "sgd"}, {"lr": float("nan")},
                {"chunk_size": True}):
        with pytest.raises(ValueError):
            MAPSettings(**bad)
    with pytest.raises(ValueError, match="unknown MAP setting"):
        MAPSettings.from_dict({"grids": 3})

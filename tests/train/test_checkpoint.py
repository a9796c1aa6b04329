import json

import pytest
import torch

import conceptebm.checkpoints as ck
from conceptebm.checkpoints import (
    CheckpointError,
    export_weights,
    load_checkpoint,
    load_energy,
    save_checkpoint,
)
from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet

POS = Concept.continuous("position", dim=2)


def net(width=4):
    torch.manual_seed(0)
    return ConvEnergyNet(POS, image_size=16, width=width, embed_dim=8)


def test_round_trip_groups_meta_and_json_twin(tmp_path):
    n = net()
    path = tmp_path / "a.safetensors"
    extra = {"x": torch.arange(6, dtype=torch.uint8).reshape(2, 3)}
    save_checkpoint(path, {"model": n.state_dict(), "buffer": extra},
                    {"net": n.config, "iteration": 7})
    c = load_checkpoint(path)
    assert c.meta["iteration"] == 7 and c.meta["net"] == n.config
    assert torch.equal(c.group("buffer")["x"], extra["x"])
    assert json.loads((tmp_path / "a.json").read_text()) == c.meta
    with pytest.raises(CheckpointError, match="no 'optim' tensors"):
        c.group("optim")
    x, pos = torch.rand(3, 3, 16, 16), torch.zeros(3, 2)
    assert torch.equal(load_energy(path)(x, pos), n(x, pos))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert path.stat().st_mode & 0o044  # readable by others, like any file we write


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"
    save_checkpoint(path, {"model": net().state_dict()}, {"net": net().config, "iteration": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": net().state_dict()}, {"net": net().config,
                                                              "iteration": 2})
    assert load_checkpoint(path).meta["iteration"] == 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_missing_corrupt_foreign_and_incompatible(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.safetensors")
    path = tmp_path / "a.safetensors"
    save_checkpoint(path, {"model": net().state_dict()}, {"net": net().config})
    blob = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(blob[: len(blob) // 2])  # truncated by a crash of another tool
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a conceptebm checkpoint"):
        load_checkpoint(foreign)
    wide = tmp_path / "wide.safetensors"  # weights of another width under this config
    save_checkpoint(wide, {"model": net(width=8).state_dict()}, {"net": net().config})
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_energy(wide)
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_checkpoint(tmp_path / "a.pt", {}, {})


def test_export_keeps_weights_and_config_drops_training_state(tmp_path):
    n = net()
    src = tmp_path / "last.safetensors"
    save_checkpoint(src, {"model": n.state_dict(), "optim": {"0.step": torch.zeros(())},
                          "buffer": {"x": torch.zeros(4, 3, 16, 16, dtype=torch.uint8)}},
                    {"net": n.config, "train": {"lr": 1.0}, "iteration": 9})
    dest = export_weights(src, tmp_path / "ship.safetensors", command="conceptebm train ...")
    c = load_checkpoint(dest)
    assert set(c.groups) == {"model"}
    assert c.meta["command"] == "conceptebm train ..." and c.meta["iteration"] == 9
    assert dest.stat().st_size < src.stat().st_size
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(load_energy(dest)(x, torch.zeros(2, 2)), n(x, torch.zeros(2, 2)))


def test_the_old_train_checkpoint_module_warns_and_re_exports_the_one_writer():
    import importlib
    import sys

    sys.modules.pop("conceptebm.train.checkpoint", None)
    with pytest.warns(DeprecationWarning, match=r"removed in conceptebm 0\.3; import from "
                                                r"conceptebm\.checkpoints"):
        train_ck = importlib.import_module("conceptebm.train.checkpoint")
    for name in train_ck.__all__:
        assert getattr(train_ck, name) is getattr(ck, name), name


def test_judge_checkpoints_are_written_by_the_atomic_writer(tmp_path, monkeypatch):
    from conceptebm.evaluate import checkpoint as judge_ck
    from conceptebm.evaluate import load_judges

    written = []
    real = ck.atomic_write_bytes
    monkeypatch.setattr(judge_ck, "atomic_write_bytes",
                        lambda path, data: (written.append(path.suffix), real(path, data)))
    stem = judge_ck.save_judge(load_judges(), tmp_path / "j")
    assert written == [".safetensors", ".json"]
    assert judge_ck.load_judge(stem).config == load_judges().config
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())

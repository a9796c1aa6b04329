"""conceptebm models: every shipped model listed; models show SPEC prints the card written from
the model's record, for a shipped name and for a checkpoint of the user's; bad specs refused."""

import pytest

import conceptebm.checkpoints as checkpoints
import conceptebm.models as models
from conceptebm import pretrained
from conceptebm.checkpoints import read_record, save_checkpoint
from conceptebm.cli import main
from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet


def test_models_lists_every_shipped_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in pretrained.available():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


@pytest.fixture
def weight_loads(monkeypatch):
    """Every call of the weight loaders (safetensors' load_file, the model loader), counted."""
    calls = []

    def spy(name, real):
        def wrapper(*a, **k):
            calls.append(name)
            return real(*a, **k)
        return wrapper

    monkeypatch.setattr(checkpoints, "load_file", spy("load_file", checkpoints.load_file))
    monkeypatch.setattr(models, "load", spy("load", models.load))
    return calls


def test_listing_reads_headers_and_loads_no_weights(capsys, weight_loads):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert weight_loads == []  # no tensor read, no model built
    for name in pretrained.available():  # each line's concept is its record's
        concept = pretrained.load(name).concept.name
        assert any(line.split()[:2] == [name, concept] for line in lines), name
    # the spies see the loaders: showing a card loads its model
    weight_loads.clear()
    assert main(["models", "show", "position"]) == 0
    assert weight_loads == ["load", "load_file"]


def test_read_record_is_the_checkpoints_record_without_its_tensors(tmp_path, weight_loads):
    path = pretrained.checkpoint_path("color")
    assert read_record(path) == checkpoints.load_checkpoint(path).meta
    assert weight_loads == ["load_file"]  # load_checkpoint's, not read_record's
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(checkpoints.CheckpointError, match="corrupt or unreadable"):
        read_record(bad)


def test_a_shipped_card_shows_its_record(capsys):
    assert main(["models", "show", "position_late"]) == 0
    card = capsys.readouterr().out
    record = pretrained.info("position_late")
    assert card.startswith("# position_late\n")
    assert record["command"] in card and "## Known limits" in card
    clean = record["metrics"]["single_mae.clean"]
    assert f"| single_mae.clean | {clean:.4g} ± " in card  # value and its standard error


def test_a_users_checkpoint_gets_a_card_without_invented_limits(tmp_path, capsys):
    net = ConvEnergyNet(Concept.categorical("kind", ["cat", "dog"]), image_size=16, width=4,
                        embed_dim=8)
    save_checkpoint(tmp_path / "best.safetensors", {"model": net.state_dict()},
                    {"net": net.config, "command": "conceptebm train --data pets/",
                     "metrics": {"kind.acc": 0.9, "kind.acc_stderr": 0.03}})
    assert main(["models", "show", str(tmp_path)]) == 0
    card = capsys.readouterr().out
    assert "kind: categorical, 2 values (cat, dog)" in card
    assert "conceptebm train --data pets/" in card and "| kind.acc | 0.9 ± 0.03 |" in card
    assert "Known limits" not in card and "none recorded" in card


def test_an_unknown_model_is_one_line(capsys):
    assert main(["models", "show", "positon_late"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "positon_late" in err[0]

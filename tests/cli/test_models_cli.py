"""conceptebm models: every shipped model listed; models show SPEC prints the card written from
the model's record, for a shipped name and for a checkpoint of the user's; bad specs refused."""

from conceptebm import pretrained
from conceptebm.checkpoints import save_checkpoint
from conceptebm.cli import main
from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet


def test_models_lists_every_shipped_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in pretrained.available():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


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

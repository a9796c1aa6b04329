"""A checkpoint whose record does not describe a valid concept or model is refused with the
reason, as one ``error:`` line of ``conceptebm infer --model`` (no KeyError traceback)."""

import copy

import pytest
from PIL import Image

from conceptebm.checkpoints import save_checkpoint
from conceptebm.cli import main
from conceptebm.datasets import scene_concepts
from conceptebm.energies.nets import ConvEnergyNet


def _drop(key):
    return lambda net: net["concept"].pop(key)


@pytest.mark.parametrize("concept, edit, reason", [
    ("color", _drop("kind"), "has no kind ('continuous' or 'categorical')"),
    ("color", _drop("dim"), "has no dim"),
    ("color", _drop("values"), "has no category names"),
    ("size", _drop("low"), "has no range (low)"),
    ("size", lambda net: net["concept"].update(low=0.5, high=0.2), "need low < high"),
    ("color", lambda net: net.pop("concept"), "no 'concept' entry"),
    ("color", lambda net: net.update(width=8), "does not match the weights"),
])
def test_invalid_checkpoint_records_are_refused_with_the_reason(tmp_path, capsys, concept,
                                                                edit, reason):
    net = ConvEnergyNet(scene_concepts()[concept], width=4, embed_dim=8)
    config = copy.deepcopy(net.config)
    edit(config)
    path = tmp_path / "bad.safetensors"
    save_checkpoint(path, {"model": net.state_dict()}, {"net": config})
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (120, 120, 120)).save(image)
    assert main(["infer", str(image), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and reason in err, err
    assert "Traceback" not in err and err.count("\n") == 1

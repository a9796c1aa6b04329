"""MAP settings chosen on validation images (conceptebm.evaluate.map_grid): the plateau rule,
the record a checkpoint keeps, and the choice a ``train --data`` run makes on its held-out
split."""

import json
from types import SimpleNamespace

import pytest
import torch

import conceptebm
from conceptebm.checkpoints import load_checkpoint, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy, LateEnergyNet
from conceptebm.evaluate.map_grid import (
    PLATEAU_TOL,
    choose_map_settings,
    map_errors,
    map_plateau,
    select_run_map_settings,
    store_map_settings,
)
from conceptebm.infer import MAPSettings


class NarrowWell(ConditionalEnergy):
    """E(x | c): a well of half-width ``w`` at c = x[:, :2] and a wide decoy at (-0.9, -0.9);
    a start grid coarser than the well misses it and Adam ends in the decoy."""

    def __init__(self, w: float = 0.06):
        super().__init__(Concept.continuous("position", 2))
        self.w = w

    def energy(self, x, c):
        near = -2 * torch.exp(-((c - x[:, :2]) ** 2).sum(-1) / self.w ** 2)
        return near - 0.5 * torch.exp(-((c + 0.9) ** 2).sum(-1) / 0.5 ** 2)


def _points(n=12, seed=0):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.3


def test_a_coarse_grid_misses_the_well_and_the_choice_is_the_smallest_that_finds_it():
    x = _points()
    errors = map_errors(NarrowWell(), x, x, grids=(5, 33, 65), steps=(0, 40), event_dim=1)
    assert set(errors) == {(g, s) for g in (5, 33, 65) for s in (0, 40)}
    assert float(errors[(5, 40)].mean()) > 0.3  # the decoy: about 1.0 away
    assert float(errors[(33, 40)].mean()) < 0.01  # grid spacing 0.06: inside the well
    rows = {(r["grid"], r["steps"]): r for r in map_plateau(errors)}
    assert rows[(65, 40)]["excess"] == 0 and rows[(65, 40)]["on_plateau"]
    assert not rows[(5, 40)]["on_plateau"] and rows[(33, 40)]["on_plateau"]
    assert choose_map_settings({"a": errors}) == (33, 40)


def test_every_source_must_be_on_the_plateau():
    x = _points()
    wide = map_errors(NarrowWell(0.3), x, x, grids=(5, 33), steps=(40,), event_dim=1)
    narrow = map_errors(NarrowWell(0.06), x, x, grids=(5, 33), steps=(40,), event_dim=1)
    assert choose_map_settings({"wide": wide}) == (5, 40)
    assert choose_map_settings({"wide": wide, "narrow": narrow}) == (33, 40)
    # the rule's tolerance, in concept units
    assert choose_map_settings({"wide": wide, "narrow": narrow}, tol=10.0) == (5, 40)
    assert PLATEAU_TOL == pytest.approx(0.002)
    with pytest.raises(ValueError, match="same grids"):
        choose_map_settings({"a": wide, "b": {(5, 40): wide[(5, 40)]}})


def _late_checkpoint(path, record=None):
    torch.manual_seed(0)
    net = LateEnergyNet(Concept.continuous("position", 2), image_size=16, width=4, layers=1,
                        features=4, hidden=8)
    save_checkpoint(path, {"model": net.state_dict()}, {"net": net.config, **(record or {})})


def test_stored_settings_are_loaded_and_other_record_entries_kept(tmp_path):
    path = tmp_path / "m.safetensors"
    _late_checkpoint(path, {"posterior_temperature": 2.5})
    store_map_settings(path, MAPSettings(grid=33, steps=30), {"grid": 33, "steps": 30})
    model = conceptebm.load(str(path))
    assert model.map_settings == MAPSettings(grid=33, steps=30)
    assert model.record["posterior_temperature"] == 2.5
    twin = json.loads(path.with_suffix(".json").read_text())
    assert twin["map"]["grid"] == 33 and twin["map_selection"]["steps"] == 30


class Held(SimpleNamespace):
    """A held-out split as train_on_folder has it: images, labels, a length."""

    def __init__(self, images, labels):
        super().__init__(images=images, labels=labels)

    def __len__(self):
        return len(self.images)


def test_a_run_chooses_its_grid_on_its_held_out_split(tmp_path):
    _late_checkpoint(tmp_path / "best.safetensors")
    gen = torch.Generator().manual_seed(1)
    held = Held(torch.rand(6, 3, 16, 16, generator=gen),
                {"position": torch.rand(6, 2, generator=gen) * 2 - 1})
    said = []
    record = select_run_map_settings(tmp_path, held, grids=(9, 17), steps=(0, 10),
                                     say=said.append)
    assert record["sources"]["held_out"]["n"] == 6 and record["checkpoint"] == "best.safetensors"
    stored = load_checkpoint(tmp_path / "best.safetensors").meta
    assert stored["map"]["grid"] == record["grid"] in (9, 17)
    assert stored["map"]["steps"] == record["steps"] in (0, 10)
    assert conceptebm.load(str(tmp_path)).map_settings.grid == record["grid"]
    assert "held-out" in said[0]
    assert select_run_map_settings(tmp_path / "none", held, say=said.append) is None


def test_the_calibrate_command_prints_the_choice_and_refuses_what_has_no_grid(capsys):
    from conceptebm.cli import main

    assert main(["calibrate", "position_late", "--map-grid", "-n", "10", "--grids", "9", "17",
                 "--quiet"]) == 0
    line = json.loads(capsys.readouterr().out)
    sel = line["map_selection"]
    assert line["model"] == "position_late" and line["map"]["grid"] == sel["grid"] in (9, 17)
    assert set(sel["sources"]) == {"scenes", "camera_light"}
    assert {r["grid"] for r in sel["sources"]["scenes"]["rows"]} == {9, 17}
    assert "--grids 9 17" in sel["command"] and sel["seed"] == 20_261_130
    for argv, needle in ((["color", "--map-grid"], "categorical"),
                         (["position_late", "--map-grid", "--posterior-temperature"], "one at")):
        assert main(["calibrate", *argv, "-n", "10"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err

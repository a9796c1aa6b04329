"""Posterior temperatures (conceptebm.scenes.temperature): the fit recovers a simulated
temperature, the record stores it (safetensors header and JSON twin alike), the loaded model
and ``conceptebm infer --posterior`` use it by default, and coverage reports its error."""

import json
import math

import pytest
import torch
from PIL import Image

import conceptebm
from conceptebm import pretrained
from conceptebm.checkpoints import load_checkpoint, save_checkpoint
from conceptebm.cli import main
from conceptebm.concepts import Concept
from conceptebm.datasets import make_dataset
from conceptebm.energies import ConditionalEnergy
from conceptebm.scenes import posterior_temperature
from conceptebm.scenes.temperature import (
    coverage,
    fit_posterior_temperature,
    store_posterior_temperature,
)


class Reading(ConditionalEnergy):
    """Energy of a reading of sd ``s``: with data of sd ``s * sqrt(T)`` the calibrated
    posterior is exp(-E / T)."""

    def __init__(self, s=0.05):
        super().__init__(Concept.continuous("position", dim=2))
        self.s = s

    def energy(self, x, c):
        return ((x - c) ** 2).sum(-1) / (2 * self.s ** 2)


def _readings(t_true, n=600, views=1, seed=0, s=0.05):
    g = torch.Generator().manual_seed(seed)
    truth = torch.rand(n, 2, generator=g, dtype=torch.float64) * 1.2 - 0.6
    noise = torch.randn(n, views, 2, generator=g, dtype=torch.float64) * s * math.sqrt(t_true)
    return truth[:, None] + noise, truth  # (n, V, 2), (n, 2)


@pytest.mark.parametrize("t_true,views", [(4.0, 1), (0.25, 1), (2.0, 3)])
def test_fit_recovers_the_simulated_temperature(t_true, views):
    x, truth = _readings(t_true, views=views)
    fit = fit_posterior_temperature(Reading(), x, truth, points=64, check_range=False,
                                    event_dim=1)
    # coverage of 600 x 2 coordinates has an se of ~0.01 at 0.9: T moves by ~10% with it
    assert abs(math.log(fit["temperature"] / t_true)) < 0.2, fit
    assert abs(fit["coverage_fit"] - 0.9) < 0.01
    # on fresh readings the fitted T covers at its level, within the standard error
    x2, truth2 = _readings(t_true, views=views, seed=1)
    cov = coverage(Reading(), x2, truth2, fit["temperature"], points=64, check_range=False,
                   event_dim=1)
    assert abs(cov["coverage"] - 0.9) < 4 * cov["se"] + 0.01, cov
    assert 0 < cov["se"] < 0.03 and cov["width"] > 0


@pytest.fixture
def late_copy(tmp_path):
    ckpt = load_checkpoint(pretrained.checkpoint_path("position_late"))
    path = tmp_path / "late.safetensors"
    save_checkpoint(path, ckpt.groups, {k: v for k, v in ckpt.meta.items() if k != "format"})
    return path


def test_stored_temperature_is_in_both_copies_of_the_record_and_used(late_copy):
    cal = {"temperature": 0.37, "by_views": {"1": 0.37, "4": 0.9}, "level": 0.9}
    store_posterior_temperature(late_copy, cal)
    header = load_checkpoint(late_copy).meta
    twin = json.loads(late_copy.with_suffix(".json").read_text())
    assert {k: v for k, v in header.items() if k != "format"} == \
        {k: v for k, v in twin.items() if k != "format"}
    model = conceptebm.load(str(late_copy))
    assert model.record["posterior_temperature"] == 0.37
    assert posterior_temperature(model) == 0.37
    assert posterior_temperature(model, views=1) == 0.37
    assert posterior_temperature(model, views=5) == 0.9  # the nearest fitted count
    assert posterior_temperature(conceptebm.load("position")) == pytest.approx(
        pretrained.info("position").get("posterior_temperature", 1.0))


def test_infer_uses_the_records_temperature_unless_told(late_copy, tmp_path, capsys):
    store_posterior_temperature(late_copy, {"temperature": 0.37})
    images, _ = make_dataset("position", seed=20261207).batch(torch.arange(1))
    arr = (images[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    p = str(tmp_path / "a.png")
    Image.fromarray(arr).save(p)
    fast = ["--samples", "20", "--warmup", "20", "--chains", "2", "--json"]
    assert main(["infer", p, "--model", str(late_copy), "--posterior", *fast]) == 0
    assert json.loads(capsys.readouterr().out)[0]["posterior"]["temperature"] == 0.37
    assert main(["infer", p, "--model", str(late_copy), "--posterior", *fast,
                 "--temperature", "2"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["posterior"]["temperature"] == 2.0


def test_regrid_temperature_equals_a_grid_made_at_that_temperature():
    from conceptebm.scenes import grid_posterior
    from conceptebm.scenes.multiview import regrid_temperature

    x, _ = _readings(2.0, n=5)
    cold = grid_posterior(Reading(), x, 32, temperature=1.0, check_range=False, event_dim=1)
    hot = grid_posterior(Reading(), x, 32, temperature=3.0, check_range=False, event_dim=1)
    again = regrid_temperature(cold, 3.0)
    torch.testing.assert_close(again.interval, hot.interval)
    torch.testing.assert_close(again.probs, hot.probs)


def test_over_dispersed_starts_flag_chains_in_separate_basins():
    from conceptebm.scenes import multiview_posterior

    class TwoBasins(ConditionalEnergy):
        """Two equal wells at x = -0.5 and +0.5 (y = 0), far apart at T = 1."""

        def __init__(self):
            super().__init__(Concept.continuous("position", dim=2))

        def energy(self, x, c):
            d = torch.stack([((c - x) ** 2).sum(-1), ((c + x) ** 2).sum(-1)])
            return d.min(0).values / (2 * 0.03 ** 2)

    x = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    near = multiview_posterior(TwoBasins(), x, num_samples=200, warmup_steps=200, seed=0,
                               check_range=False, event_dim=1, chains=4)
    far = multiview_posterior(TwoBasins(), x, num_samples=200, warmup_steps=200, seed=0,
                              check_range=False, event_dim=1, chains=8, starts="grid")
    # around the MAP: one basin, mixing well; over-dispersed: both basins, R-hat flags x
    assert near.draws[..., 0].sign().unique().numel() == 1
    assert far.draws[:, -1, 0].sign().unique().numel() == 2
    assert any(w.startswith("position x: R-hat") for w in far.warnings), far.warnings


def test_nested_view_fits_equal_the_direct_fits_on_the_same_views():
    from conceptebm.scenes.temperature import nested_view_fits, scene_sets

    model = conceptebm.load("position_multiview")
    sets, truth = scene_sets("multiview", 6, 4, seed=5, image_size=model.image_size)
    nested = nested_view_fits(model, sets, truth, (1, 2, 4), points=8)
    for v in (1, 2, 4):
        direct = fit_posterior_temperature(model, sets[:, :v], truth, points=8)
        assert nested[str(v)]["temperature"] == pytest.approx(direct["temperature"], rel=1e-6)
        assert nested[str(v)]["coverage_fit"] == pytest.approx(direct["coverage_fit"])
        assert nested[str(v)]["n"] == 6 and nested[str(v)]["views"] == v


def test_half_split_fits_recover_the_temperature_and_cover_the_other_half():
    # readings of sd 0.1: each half of 600 readings (300 x 2 coordinates: coverage se ~0.017)
    # fits T = 2 within ~25 %, and the T fitted on one half covers the other half at 0.9
    # within 4 se of a difference of two such coverages
    s = 0.1
    x, truth = _readings(2.0, n=600, seed=3, s=s)
    fit = fit_posterior_temperature(Reading(s), x, truth, points=32, check_range=False,
                                    event_dim=1)
    halves = fit["half_split"]
    assert halves["sets"] == [300, 300]
    for t, c in zip(halves["temperature"], halves["coverage"], strict=True):
        assert abs(math.log(t / 2.0)) < 0.35, halves
        assert abs(c - 0.9) < 4 * math.sqrt(2 * 0.09 / 600) + 0.01, halves
    # halves read at T = 1 and T = 4: their fits differ about 4-fold
    x_cold, truth_cold = _readings(1.0, n=300, seed=5, s=s)
    x_hot, truth_hot = _readings(4.0, n=300, seed=4, s=s)
    mixed = fit_posterior_temperature(Reading(s), torch.cat([x_cold, x_hot]),
                                      torch.cat([truth_cold, truth_hot]), points=32,
                                      check_range=False, event_dim=1)
    t1, t2 = mixed["half_split"]["temperature"]
    assert 2.5 < t2 / t1 < 6, mixed["half_split"]


def test_refitting_one_count_of_views_keeps_the_records_other_counts(late_copy):
    from conceptebm.scenes.temperature import merge_view_fits

    old = {"temperature": 0.6, "views": 1, "by_views": {"1": 0.6, "2": 0.7, "8": 1.0},
           "fits": {"1": {"n": 200}, "2": {"n": 200}, "8": {"n": 200}}, "seed": 7, "n": 200,
           "command": "fit all"}
    store_posterior_temperature(late_copy, old)
    new = {"temperature": 0.5, "views": 1, "by_views": {"1": 0.5}, "fits": {"1": {"n": 600}},
           "seed": 7, "n": 600, "command": "fit one"}
    stored = store_posterior_temperature(late_copy, new)
    record = conceptebm.load(str(late_copy)).record
    assert record["posterior_calibration"] == stored
    assert stored["by_views"] == {"1": 0.5, "2": 0.7, "8": 1.0}
    assert record["posterior_temperature"] == 0.5
    assert stored["fits"]["1"]["n"] == 600 and stored["fits"]["8"]["n"] == 200
    assert stored["fits"]["8"]["command"] == "fit all" and stored["commands"] == ["fit all",
                                                                                 "fit one"]
    model = conceptebm.load(str(late_copy))
    assert posterior_temperature(model, views=1) == 0.5
    assert posterior_temperature(model, views=2) == 0.7
    # a fit at every count replaces the record; one without by_views is stored as it is
    assert merge_view_fits(old, {**old, "by_views": {"1": 0.4, "2": 0.4, "8": 0.4}})[
        "by_views"] == {"1": 0.4, "2": 0.4, "8": 0.4}
    assert merge_view_fits(None, new) == new

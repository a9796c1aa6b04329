"""Generation and inference quality of a concept EBM: the engine's sampler, the judges' scores."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.evaluate.calibration import checkpoint_calibration, energy_calibration
from conceptebm.evaluate.heldout_map import heldout_map_metrics
from conceptebm.evaluate.quality import (
    DEFAULT_SAMPLER,
    evaluation_grid,
    generate,
    generation_quality,
    inference_quality,
    map_settings_for,
    sampler_settings,
    selection_score,
)
from conceptebm.infer import DEFAULT_MAP, MAPSettings, initial_samples, langevin
from conceptebm.infer.settings import DEFAULT, MAP_GRID

POS = Concept.continuous("position", dim=2)
COLOR = Concept.categorical("color", ["red", "green", "blue"])


class CentreJudge:
    """Reads the position of the brightest pixel and the dominant channel."""

    concepts = {"position": POS, "color": COLOR}

    def predict(self, images):
        n, _, h, w = images.shape
        flat = images.sum(1).flatten(1).argmax(1)  # (n,)
        row, col = flat // w, flat % w
        pos = torch.stack([col / (w - 1) * 2 - 1, 1 - row / (h - 1) * 2], 1)  # (n, 2)
        return {"position": pos, "color": images.mean((2, 3)).argmax(1)}


def _net(concept, seed=0):
    torch.manual_seed(seed)
    return ConvEnergyNet(concept, image_size=8, width=4, embed_dim=4).eval()


def test_generate_is_the_engines_langevin_from_fresh_noise():
    net = _net(POS)
    c = torch.tensor([[0.5, -0.5], [0.0, 0.2]])
    x = generate(net, c, {"num_steps": 3}, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    x0 = initial_samples((2, 3, 8, 8), init="smooth", bounds=(0.0, 1.0), generator=g)
    ref = langevin(net.given(c), x0, num_steps=3, step_size=100.0, noise_scale=0.005,
                   bounds=(0.0, 1.0), generator=g)
    assert torch.equal(x, ref)


def test_sampler_settings_accepts_dicts_and_settings():
    assert sampler_settings(None) == DEFAULT
    assert sampler_settings(DEFAULT_SAMPLER) == DEFAULT
    assert sampler_settings({"num_steps": 7}).num_steps == 7
    with pytest.raises(ValueError, match="unknown sampler setting"):
        sampler_settings({"steps": 7})


def test_generation_quality_scores_by_the_judges_declarations():
    net = _net(POS)
    targets = torch.tensor([[0.5, -0.5], [0.0, 0.2], [-0.3, 0.9]])
    m = generation_quality(net, CentreJudge(), targets, sampler={"num_steps": 2},
                           generator=torch.Generator().manual_seed(0), chunk=2)
    assert list(m) == ["object_rate", "position_acc", "position_acc_0.15", "position_mae"]
    # seeded: the same generator gives the same scores; all targets are scored (n = 3)
    m1, images = generation_quality(net, CentreJudge(), targets, sampler={"num_steps": 2},
                                    generator=torch.Generator().manual_seed(0), chunk=2,
                                    return_images=True)
    assert m1 == m and images.shape == (3, 3, 8, 8)
    # scored by another declaration of the concept: its tolerances
    one = generation_quality(net, CentreJudge(), targets, sampler={"num_steps": 2},
                             generator=torch.Generator().manual_seed(0), chunk=2,
                             concept=Concept.continuous("position", dim=2, tolerances=(9.0,)))
    assert list(one) == ["object_rate", "position_acc", "position_mae"]
    assert one["position_acc"].value == 1.0 and one["position_mae"] == m["position_mae"]
    with pytest.raises(ValueError, match="not the net's concept"):
        generation_quality(net, CentreJudge(), targets, concept=COLOR)
    with pytest.raises(ValueError, match="judge reads"):
        generation_quality(_net(Concept.continuous("size")), CentreJudge(), torch.zeros(3, 1))


def test_inference_quality_by_kind():
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cat = inference_quality(_net(COLOR), images, torch.tensor([0, 1, 2, 0]))
    assert list(cat) == ["color_acc"]
    coarse = MAPSettings(grid=3, steps=2)
    cont = inference_quality(_net(POS), images, torch.zeros(4, 2), map_settings=coarse)
    assert list(cont) == ["position_acc", "position_acc_0.15", "position_mae"]
    # scoring against another declaration of the same concept uses its tolerances
    strict = Concept.continuous("position", dim=2, tolerances=(0.01,))
    one = inference_quality(_net(POS), images, torch.zeros(4, 2), map_settings=coarse,
                            concept=strict)
    assert list(one) == ["position_acc", "position_mae"]
    assert one["position_mae"] == cont["position_mae"]
    with pytest.raises(ValueError, match="not the net's concept"):
        inference_quality(_net(POS), images, torch.zeros(4, 2), concept=COLOR)


class _Bowl(ConditionalEnergy):
    """E(x | c) = |c - (0.33, -0.41)|^2, whatever the image: its minimum is off every grid."""

    def energy(self, x, c):
        return (c - torch.tensor([0.33, -0.41])).square().sum(-1)


def test_evaluations_run_the_models_own_map_settings_unless_told():
    model = _Bowl(POS).attach_record({}, map_settings=MAPSettings(grid=9, steps=0))
    images = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    on_grid = torch.tensor([[0.25, -0.5]] * 12)  # the 9-point grid's nearest point
    own = inference_quality(model, images, on_grid)  # a 9x9 grid, no refinement
    assert own["position_mae"].value < 1e-6
    assert heldout_map_metrics(model, images, on_grid)["position_mae"] == own["position_mae"]
    refined = MAPSettings(grid=9, steps=200)  # Adam walks off the grid to the minimum
    told = inference_quality(model, images, on_grid, map_settings=refined)
    assert told["position_mae"].value > 0.05
    assert heldout_map_metrics(model, images, on_grid, map_settings=refined) == told
    cal = energy_calibration(model, images)
    assert (cal["grid"], cal["steps"]) == (9, 0) and cal["quantiles"]["0.5"] > 0.01
    assert energy_calibration(model, images, map_settings=refined)["quantiles"]["0.5"] < 1e-4
    cheap = checkpoint_calibration(model, images)  # the loop's own: grid 9, 30 steps
    assert (cheap["grid"], cheap["steps"]) == (9, 30)


def test_map_settings_default_is_the_evaluation_recipe():
    net = _net(POS)  # built in code: no record, so no settings of its own
    assert map_settings_for(net) == DEFAULT_MAP
    assert map_settings_for(net, {"grid": 5}, steps=None) == MAPSettings(grid=5)
    with pytest.raises(TypeError, match="map_settings must be"):
        map_settings_for(net, 5)
    # an unset grid scores on MAP_GRID points for every concept (the recipe the evaluations
    # always used; infer_concept's own default for a 1-d concept is finer)
    assert evaluation_grid(DEFAULT_MAP, POS) == MAP_GRID
    assert evaluation_grid(DEFAULT_MAP, Concept.continuous("size", dim=1)) == MAP_GRID
    assert evaluation_grid(MAPSettings(grid=500), Concept.continuous("size", dim=1)) == 101
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    recipe = MAPSettings(grid=MAP_GRID, steps=60, chunk_size=4096)
    assert inference_quality(net, images, torch.zeros(3, 2)) == inference_quality(
        net, images, torch.zeros(3, 2), map_settings=recipe)


def test_old_map_keywords_warn_and_give_the_same_numbers():
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    new = inference_quality(_net(POS), images, torch.zeros(4, 2),
                            map_settings=MAPSettings(grid=3, steps=2, chunk_size=7))
    with pytest.warns(DeprecationWarning, match=r"conceptebm\.evaluate\.inference_quality\("
                      r"grid=\.\.\., steps=\.\.\., chunk=\.\.\.\) is deprecated and will be "
                      r"removed in conceptebm 0\.3; pass map_settings="):
        old = inference_quality(_net(POS), images, torch.zeros(4, 2), grid=3, steps=2, chunk=7)
    assert old == new


def test_selection_score_higher_is_better():
    from conceptebm.evaluate.metrics import Metric

    assert selection_score({"color_acc": Metric(0.7, 0.1)}, COLOR) == 0.7
    assert selection_score({"position_mae": Metric(0.1, 0.01)}, POS) == pytest.approx(0.95)

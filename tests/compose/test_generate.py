import math

import pytest
import torch

from conceptebm.compose.calibrate import composition_scales
from conceptebm.compose.generate import BranchChoice, choose_branches
from conceptebm.energies import Gaussian, Or


def _two(dtype=torch.float64):
    return (Gaussian(torch.tensor([-2.0, 0.0], dtype=dtype), 0.3),
            Gaussian(torch.tensor([2.0, 0.0], dtype=dtype), 0.3))


def test_branch_choice_follows_its_index():
    a, b = _two()
    idx = torch.tensor([0, 1, 1, 0])
    x = torch.randn(4, 2, dtype=torch.float64)
    e = BranchChoice([a, b], idx)(x)
    torch.testing.assert_close(e, torch.where(idx == 0, a(x), b(x)))


def test_top_level_or_becomes_an_even_mixture(gen):
    a, b = _two()
    chosen = choose_branches(a | b, 20000, gen)
    frac = chosen.index.double().mean().item()
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / 20000)


def test_log_partitions_weight_the_mixture(gen):
    # mixture weights exp(-log Z_i) normalised: log Z = (0, log 3) -> weights (3/4, 1/4)
    a, b = _two()
    chosen = choose_branches(Or(a, b, log_partitions=[0.0, math.log(3.0)]), 20000, gen)
    frac_b = chosen.index.double().mean().item()
    assert abs(frac_b - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 20000)


def test_non_disjunctions_are_left_alone(gen):
    a, b = _two()
    e = a & b
    assert choose_branches(e, 10, gen) is e


def test_per_chain_log_partitions_shift_each_chain():
    a, b = _two()
    lp = torch.tensor([[0.0, 1.0, -1.0], [0.5, 0.0, 2.0]], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    e = Or(a, b, temperature=0.5, log_partitions=lp)(x)
    hand = -0.5 * torch.logsumexp(torch.stack([-a(x) / 0.5 - lp[0], -b(x) / 0.5 - lp[1]]), 0)
    torch.testing.assert_close(e, hand)
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(2, batch\)"):
        Or(a, b, log_partitions=torch.zeros(3, 2))


def test_composition_scales_power():
    assert composition_scales({"a": 4.0, "b": 9.0}, 0.5) == {"a": 2.0, "b": 3.0}
    assert composition_scales({"a": 4.0}, 0.0) == {"a": 1.0}
    with pytest.raises(ValueError, match=">= 0"):
        composition_scales({"a": 4.0}, -1.0)


def test_models_trained_with_another_step_size_are_rescaled_for_the_shared_step():
    from conceptebm.compose.generate import StepMatched, _match_step_sizes
    from conceptebm.concepts import Concept
    from conceptebm.energies import ConditionalEnergy

    class Square(ConditionalEnergy):
        def energy(self, x, c):
            return ((x - c) ** 2).sum(-1)

    from conceptebm.infer.settings import DEFAULT

    own = DEFAULT.replace(step_size=1.0, num_steps=50)
    a, b = (Square(Concept.continuous(n, dim=2), sampler=DEFAULT) for n in ("a", "b"))
    d = Square(Concept.continuous("d", dim=2), sampler=own)
    out = _match_step_sizes({"a": a, "b": b, "d": d})
    assert out["a"] is a and out["b"] is b and isinstance(out["d"], StepMatched)
    x, c = torch.randn(4, 2), torch.randn(4, 2)
    # the shared step 100 on 0.01 E moves x as step 1 on E: the model's own sampler
    assert torch.allclose(out["d"](x, c), 0.01 * d(x, c))
    # its settings come from the base's, through the type: only the step changes
    assert out["d"].sampler == own.replace(step_size=100.0) and d.sampler == own
    assert out["d"].concept == d.concept
    same = {"a": a, "b": b}
    assert _match_step_sizes(same) == same
    # a model without recorded settings has no known step: it is left alone, and cannot be
    # step-matched explicitly
    free = Square(Concept.continuous("f", dim=2))
    assert _match_step_sizes({"a": a, "d": d, "f": free})["f"] is free
    with pytest.raises(ValueError, match="no sampler settings"):
        StepMatched(free, 100.0)


def test_generate_runs_the_settings_it_is_given():
    from conceptebm.compose.generate import generate_images
    from conceptebm.energies import Energy
    from conceptebm.infer import initial_samples, langevin
    from conceptebm.infer.settings import DEFAULT

    class Pull(Energy):
        def energy(self, x):
            return ((x - 0.7) ** 2).flatten(1).sum(1)  # (chains,)

    s = DEFAULT.replace(num_steps=3, step_size=0.1, noise_scale=0.01, init="uniform")
    x = generate_images(Pull(), 4, s, (3, 8, 8), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    x0 = initial_samples((4, 3, 8, 8), init="uniform", bounds=(0.0, 1.0), generator=g)
    assert torch.equal(x, langevin(Pull(), x0, num_steps=3, step_size=0.1, noise_scale=0.01,
                                   bounds=(0.0, 1.0), generator=g))


def test_a_concept_asked_for_twice_is_served_by_its_multi_instance_model():
    from conceptebm.compose.defaults import MULTI_INSTANCE, STEPS
    from conceptebm.compose.expr import parse
    from conceptebm.compose.generate import composition_settings, load_concepts, serving_models

    two = parse("position=(0.5,0.5) & position=(-0.5,-0.5)")
    serve = serving_models(two)
    assert serve == {"position": MULTI_INSTANCE["position"]}
    cm = load_concepts(["position"], serve=serve, calibration_images=8)
    plain = load_concepts(["position"], calibration_images=8)
    w_multi = next(iter(cm.models["position"].state_dict().values()))
    w_plain = next(iter(plain.models["position"].state_dict().values()))
    assert not torch.equal(w_multi, w_plain)  # another model, still keyed by its concept
    # one concept at several values samples with the model's own settings, anything else
    # with the composition default; an explicit step count wins
    own = cm.models["position"].sampler.num_steps
    assert own != STEPS
    assert composition_settings(cm, two).num_steps == own
    assert composition_settings(cm, parse("position=(0.5,0.5)")).num_steps == STEPS
    assert composition_settings(cm, two, steps=7, step_size=3.0).num_steps == 7
    assert composition_settings(cm, two, step_size=3.0).step_size == 3.0
    mixed = parse("position=(0.5,0.5) & position=(-0.5,0) & color=red")
    assert serving_models(mixed)["position"] == MULTI_INSTANCE["position"]
    assert serving_models(mixed)["color"] == "color"


def test_the_same_value_repeated_is_one_object():
    # the implication row repeats Pos in every conjunct: one object, served by "position"
    from conceptebm.compose.generate import serving_models
    from conceptebm.compose.table import draw_targets, extra_rows

    rows = {r.key: r for r in extra_rows(8)}
    t = draw_targets(4, 8, torch.Generator().manual_seed(0))
    assert serving_models(rows["implication"].tree(t))["position"] == "position"
    assert serving_models(rows["two_objects"].tree(t))["position"] == "position_cd"


def test_classifier_temperatures_are_fitted_only_when_asked_for():
    from conceptebm.compose.generate import load_concepts

    plain = load_concepts(["position", "color"], calibration_images=64)
    assert plain.temperatures == {}
    cm = load_concepts(["position", "color"], calibration_images=64, temperatures=True)
    # categorical concepts, and continuous ones with a tolerance (over NotNear's grid)
    assert set(cm.temperatures) == {"color", "position"}
    for name in ("color", "position"):
        assert 0 < cm.temperatures[name] < cm.scales[name]  # T below the energy gap
    # or only the named ones (what an expression negates)
    only = load_concepts(["position", "color"], calibration_images=64, temperatures={"color"})
    assert only.temperatures == {"color": cm.temperatures["color"]}

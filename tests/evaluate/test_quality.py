"""Generation and inference quality of a concept EBM: the engine's sampler, the judges' scores."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.evaluate.quality import (
    DEFAULT_SAMPLER,
    generate,
    generation_quality,
    inference_quality,
    sampler_settings,
    selection_score,
)
from conceptebm.infer import initial_samples, langevin
from conceptebm.infer.settings import DEFAULT

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
    cont = inference_quality(_net(POS), images, torch.zeros(4, 2), grid=3, steps=2)
    assert list(cont) == ["position_acc", "position_acc_0.15", "position_mae"]
    # scoring against another declaration of the same concept uses its tolerances
    strict = Concept.continuous("position", dim=2, tolerances=(0.01,))
    one = inference_quality(_net(POS), images, torch.zeros(4, 2), grid=3, steps=2,
                            concept=strict)
    assert list(one) == ["position_acc", "position_mae"]
    assert one["position_mae"] == cont["position_mae"]
    with pytest.raises(ValueError, match="not the net's concept"):
        inference_quality(_net(POS), images, torch.zeros(4, 2), concept=COLOR)


def test_selection_score_higher_is_better():
    from conceptebm.evaluate.metrics import Metric

    assert selection_score({"color_acc": Metric(0.7, 0.1)}, COLOR) == 0.7
    assert selection_score({"position_mae": Metric(0.1, 0.01)}, POS) == pytest.approx(0.95)

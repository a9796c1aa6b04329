"""SamplerSettings: validation, mapping of langevin keywords, JSON round trip."""

import json
import math

import pytest
import torch

from conceptebm.infer import langevin
from conceptebm.infer.settings import DEFAULT, IMAGE_BOUNDS, SamplerSettings


def test_default_is_the_cd_recipe():
    assert (DEFAULT.num_steps, DEFAULT.step_size, DEFAULT.noise_scale, DEFAULT.init,
            DEFAULT.bounds) == (40, 100.0, 0.005, "smooth", (0.0, 1.0))
    assert DEFAULT.bounds == IMAGE_BOUNDS


@pytest.mark.parametrize("kw, name", [
    ({"num_steps": -1}, "num_steps"), ({"num_steps": 2.5}, "num_steps"),
    ({"num_steps": True}, "num_steps"), ({"step_size": 0.0}, "step_size"),
    ({"step_size": math.nan}, "step_size"), ({"noise_scale": -0.1}, "noise_scale"),
    ({"noise_scale": None}, "noise_scale"), ({"init": "gaussian"}, "init"),
    ({"bounds": (1.0, 0.0)}, "bounds"), ({"bounds": 3}, "bounds")])
def test_bad_values_raise_naming_the_field(kw, name):
    with pytest.raises(ValueError, match=name):
        SamplerSettings(**kw)


def test_frozen_and_hashable():
    with pytest.raises(AttributeError):
        DEFAULT.num_steps = 3  # type: ignore[misc]
    assert hash(DEFAULT) == hash(SamplerSettings()) and DEFAULT == SamplerSettings()


def test_replace_keeps_fields_for_none_and_rejects_unknown_names():
    s = DEFAULT.replace(num_steps=7, step_size=None)
    assert s.num_steps == 7 and s.step_size == DEFAULT.step_size and DEFAULT.num_steps == 40
    with pytest.raises(TypeError, match="steps"):
        DEFAULT.replace(steps=3)


def test_json_round_trip_and_old_records_without_bounds():
    s = SamplerSettings(num_steps=100, step_size=1.0, noise_scale=0.0, init="uniform",
                        bounds=(-1, 1))
    assert SamplerSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    old = {"init": "smooth", "noise_scale": 0.005, "num_steps": 100, "step_size": 1.0}
    assert SamplerSettings.from_dict(old) == DEFAULT.replace(num_steps=100, step_size=1.0)
    with pytest.raises(ValueError, match="steps"):
        SamplerSettings.from_dict({"steps": 3})


def test_mapping_of_langevin_keywords_gives_the_same_chain_as_explicit_keywords():
    s = DEFAULT.replace(num_steps=4, step_size=0.1, noise_scale=0.05)

    def energy(x):
        return ((x - 0.3) ** 2).flatten(1).sum(1)  # (chains,)

    assert dict(s) == s.kwargs() and set(s) == {"num_steps", "step_size", "noise_scale",
                                                "init", "bounds", "denoise_steps"}
    a = langevin(energy, (3, 3, 4, 4), generator=torch.Generator().manual_seed(0), **s)
    b = langevin(energy, (3, 3, 4, 4), num_steps=4, step_size=0.1, noise_scale=0.05,
                 init="smooth", bounds=(0.0, 1.0), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_denoise_steps_end_the_chain_without_noise():
    # On a Gaussian, noise-free steps contract every chain toward the mode: the spread of the
    # samples falls from the stationary ~1 to (1 - step/2)^K after K steps of eq. (3)'s drift.
    from conceptebm.energies import Gaussian
    g = Gaussian(torch.zeros(2), 1.0)
    kw = dict(num_steps=300, step_size=0.1, init="gaussian")
    plain = langevin(g, (4000, 2), generator=torch.Generator().manual_seed(0), **kw)
    dn = langevin(g, (4000, 2), generator=torch.Generator().manual_seed(0), denoise_steps=20,
                  **kw)
    expected = plain.std().item() * (1 - 0.1 / 2) ** 20
    assert abs(dn.std().item() - expected) < 0.02
    s = DEFAULT.replace(denoise_steps=3)
    assert SamplerSettings.from_dict(s.to_dict()) == s and s.kwargs()["denoise_steps"] == 3
    with pytest.raises(ValueError, match="denoise_steps must be an integer >= 0"):
        SamplerSettings(denoise_steps=-1)
    with pytest.raises(ValueError, match="denoise_steps"):
        langevin(g, (4, 2), denoise_steps=1.5)


def test_langevin_samples_a_model_with_its_own_settings_unless_told_otherwise():
    from conceptebm.concepts import Concept
    from conceptebm.energies import ConditionalEnergy
    from conceptebm.infer import settings_of
    from conceptebm.infer.chain import ENGINE_DEFAULTS

    class Pull(ConditionalEnergy):  # E(x | c) = |x - c|^2 summed over pixels
        def energy(self, x, c):
            return (x - c[:, :1, None, None]).square().flatten(1).sum(1)

    own = SamplerSettings(num_steps=3, step_size=0.05, noise_scale=0.0, init="uniform")
    model = Pull(Concept.continuous("level", 1, 0.0, 1.0), sampler=own)
    energy = model.given(0.25)
    assert settings_of(energy) == own and settings_of(lambda x: x.sum(1)) is None
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 2, 2, generator=g)
    # noise 0 and 3 steps of size 0.05 on |x - c|^2: x <- x - 0.05 * 2 (x - c), thrice
    expected = 0.25 + (x0 - 0.25) * (1 - 0.1) ** 3
    assert torch.allclose(langevin(energy, x0), expected, atol=1e-6)
    # a setting given wins; the rest stay the model's
    assert torch.allclose(langevin(energy, x0, num_steps=1), 0.25 + (x0 - 0.25) * 0.9,
                          atol=1e-6)
    # an energy with no model inside gets the engine's defaults
    assert ENGINE_DEFAULTS["step_size"] == 0.01 and ENGINE_DEFAULTS["noise_scale"] is None
    steep = Pull(Concept.continuous("other", 1, 0.0, 1.0), sampler=own.replace(step_size=1.0))
    both = energy & steep.given(0.5)
    with pytest.raises(ValueError, match="different Langevin step sizes"):
        langevin(both, x0)
    assert langevin(both, x0, step_size=0.01).shape == x0.shape  # a given step settles it

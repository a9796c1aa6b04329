"""The split protocol (features once per image, a head per concept value) and LateEnergyNet."""

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.energies.late import LateEnergyNet
from conceptebm.energies.nets import ConvEnergyNet, JointConcept, build_energy_net
from conceptebm.infer import concept_energy, concept_grid, energy_map, map_estimate

POS = Concept.continuous("position", dim=2)
COLOR = Concept.categorical("color", ["red", "green", "blue"])
SIZE = Concept.continuous("size", low=0.3, high=0.7)


def _values(concept, n, gen):
    if concept.is_categorical:
        return concept.encode(torch.randint(0, concept.dim, (n,), generator=gen))
    u = torch.rand(n, concept.dim, generator=gen)
    return concept.low + (concept.high - concept.low) * u  # (n, dim)


class FullPass(ConditionalEnergy):
    """The same energy with the split hidden: the engine falls back to a full pass per value."""

    def __init__(self, net):
        super().__init__(net.concept)
        self.net, self.trunk_images = net, 0

    def energy(self, x, c):
        self.trunk_images += x.shape[0]
        return self.net(x, c)


class CountingLate(LateEnergyNet):
    """LateEnergyNet that counts the images its trunk has seen."""

    trunk_images = 0

    def features(self, x):
        self.trunk_images += x.shape[0]
        return super().features(x)


@pytest.mark.parametrize("concept", [POS, COLOR, SIZE])
def test_split_equals_full_pass_values_and_grads(concept, gen):
    net = LateEnergyNet(concept, image_size=16, width=4, features=6, hidden=8)
    x = torch.rand(3, 3, 16, 16, generator=gen)
    c = torch.stack([_values(concept, 3, gen) for _ in range(4)], dim=1)  # (3, R=4, dim)
    c.requires_grad_(True)
    with torch.no_grad():
        f = net.features(x)  # once per image; no graph into the trunk
    split = net.energy_from_features(f, c)  # (3, 4)
    (g_split,) = torch.autograd.grad(split.sum(), c)
    full = net(x.repeat_interleave(4, 0), c.reshape(12, -1)).reshape(3, 4)
    (g_full,) = torch.autograd.grad(full.sum(), c)
    torch.testing.assert_close(split, full)
    torch.testing.assert_close(g_split, g_full)
    if not concept.is_categorical:  # the energy depends on c (a constant head would pass)
        assert g_split.abs().sum() > 0
    # (N, dim) -> (N,) form
    torch.testing.assert_close(net.energy_from_features(f, c[:, 0]), split[:, 0])


def test_default_split_of_an_early_net_is_its_full_pass(gen):
    net = ConvEnergyNet(POS, image_size=16, width=4, embed_dim=8)
    x = torch.rand(2, 3, 16, 16, generator=gen)
    c = _values(POS, 6, gen).reshape(2, 3, 2)  # (2, 3, 2)
    assert net.features(x) is x
    e = net.energy_from_features(x, c)  # (2, 3)
    torch.testing.assert_close(e, net(x.repeat_interleave(3, 0), c.reshape(6, 2)).reshape(2, 3))
    with pytest.raises(ValueError, match=r"c must have shape \(N, 2\) or \(N, R, 2\)"):
        net.energy_from_features(x, c[None])


@pytest.mark.parametrize("views", [False, True])
def test_energy_map_same_through_either_path_trunk_once(views, gen):
    late = CountingLate(POS, image_size=16, width=4, features=6, hidden=8)
    full = FullPass(late)
    x = torch.rand(2, *((2,) if views else ()), 3, 16, 16, generator=gen)
    grid = concept_grid(POS, 5)  # (25, 2)
    m_split = energy_map(late, x, grid, views=views, chunk_size=64)
    trunk_split, late.trunk_images = late.trunk_images, 0
    m_full = energy_map(full, x, grid, views=views, chunk_size=64)
    torch.testing.assert_close(m_split, m_full)
    images = x.shape[0] * (x.shape[1] if views else 1)
    assert trunk_split == images  # one trunk pass per image
    assert late.trunk_images == full.trunk_images == images * 25  # the fallback: per value


@pytest.mark.parametrize("views", [False, True])
def test_map_estimate_same_through_either_path_trunk_once(views, gen):
    late = CountingLate(POS, image_size=16, width=4, features=6, hidden=8)
    x = torch.rand(3, *((2,) if views else ()), 3, 16, 16, generator=gen)
    kw = {"grid": 5, "steps": 15}
    a = map_estimate(concept_energy(late, x, views=views), **kw)
    trunk, late.trunk_images = late.trunk_images, 0
    full = FullPass(late)
    b = map_estimate(concept_energy(full, x, views=views), **kw)
    torch.testing.assert_close(a.c, b.c)
    torch.testing.assert_close(a.energy, b.energy)
    images = 3 * (2 if views else 1)
    assert trunk == images  # grid and Adam steps read the features computed once
    assert full.trunk_images > 25 * images  # the fallback runs the net per value and step


def test_config_rebuilds_and_checkpoint_loads(tmp_path, gen):
    from conceptebm.checkpoints import load_energy, save_checkpoint

    net = LateEnergyNet([POS, COLOR], image_size=16, width=4, features=6, hidden=8)
    assert net.readout == "pooled" and net.concept.dim == 5
    x = torch.rand(2, 3, 16, 16, generator=gen)
    c = JointConcept.of([POS, COLOR]).encode({"position": (0.5, 0.0), "color": "blue"})
    c = c.expand(2, -1)
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config == net.config and torch.equal(twin(x, c), net(x, c))
    spatial = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8)
    path = tmp_path / "late.safetensors"
    save_checkpoint(path, {"model": spatial.state_dict()}, {"net": spatial.config})
    loaded = load_energy(path)
    p = _values(POS, 2, gen)
    assert isinstance(loaded, LateEnergyNet)
    torch.testing.assert_close(loaded(x, p), spatial(x, p))


def test_bad_options_raise_clearly():
    with pytest.raises(ValueError, match="readout='spatial' reads a map at a 2-D position"):
        LateEnergyNet(COLOR, readout="spatial")
    with pytest.raises(ValueError, match="readout must be one of"):
        LateEnergyNet(POS, readout="pool")
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        LateEnergyNet(POS, width=0)
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8)
    with pytest.raises(ValueError, match="built for images of shape"):
        net(torch.rand(1, 3, 32, 32), torch.zeros(1, 2))


def test_start_readout_fits_the_projection_or_leaves_it(gen):
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8)
    v = torch.rand(80, 2, generator=gen) * 1.6 - 0.8  # (80, 2)
    x = torch.full((80, 3, 16, 16), 0.5)
    for i, (a, b) in enumerate(((v + 1) * 6).round().long().tolist()):  # x right, y UP
        x[i, :, 13 - b:16 - b, a + 1:a + 4] = 1.0  # rows 13-b..15-b: label y grows upward
    assert net.start_readout(x, v)
    w, b = net.where.weight.detach(), net.where.bias.detach()
    assert w[0, 0] > 0.6 and w[1, 1] < -0.6 and w[0, 1].abs() < 0.1, w  # y is flipped
    before = net.state_dict()["where.weight"].clone()
    noise = torch.rand(80, 3, 16, 16, generator=gen)
    assert not net.start_readout(noise, v)  # centroids unrelated to v: left as it was
    assert torch.equal(net.where.weight.detach(), before)
    pooled = LateEnergyNet(COLOR, image_size=16, width=4, features=6, hidden=8)
    assert not pooled.start_readout(x, COLOR.encode(torch.zeros(80, dtype=torch.long)))


def test_multiview_pyro_model_runs_the_trunk_once_and_matches_the_full_pass(gen):
    """NUTS on a concept posterior evaluates the potential hundreds of times: the multi-view
    Pyro model (eq. 11) reads features computed once, with the same potential as the full pass."""
    import pyro
    from pyro import poutine

    from conceptebm.scenes import multiview_model

    late = CountingLate(POS, image_size=16, width=4, features=6, hidden=8)
    views = torch.rand(3, 3, 16, 16, generator=gen)
    model_split = multiview_model(late, views, check_range=False)
    assert late.trunk_images == 3  # the features, once, when the model is built
    values = _values(POS, 5, gen)

    def log_probs(m):
        return [poutine.trace(poutine.condition(m, data={"position": c})).get_trace()
                .log_prob_sum() for c in values]

    split = log_probs(model_split)
    assert late.trunk_images == 3  # five potential evaluations, no new trunk pass
    full = log_probs(multiview_model(FullPass(late), views, check_range=False))
    torch.testing.assert_close(torch.stack(split), torch.stack(full))
    assert late.trunk_images == 3 + 5 * 3  # the full pass runs the trunk at every evaluation
    pyro.clear_param_store()


def test_context_head_reads_the_pooled_map_and_round_trips(gen):
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8, context=True)
    assert net.config["context"] is True and net.head[0].in_features == 2 * 6 + 2
    assert "context" not in LateEnergyNet(POS, image_size=16, width=4, features=6).config
    x = torch.rand(2, 3, 16, 16, generator=gen)
    f = net.features(x)
    c = _values(POS, 2, gen)
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    torch.testing.assert_close(twin(x, c), net.energy_from_features(f, c))
    # the pooled map enters: a change far from where c is read moves the energy at c
    moved = f.clone()
    moved[:, :, 0, 0] += 5.0
    assert not torch.allclose(net.energy_from_features(moved, c), net.energy_from_features(f, c))
    with pytest.raises(ValueError, match="drop context"):
        LateEnergyNet(COLOR, context=True)


def test_train_config_builds_the_context_head_for_a_late_net_only():
    from conceptebm.train import make_config

    net = make_config(net="late", late_context=True, width=4).build_net(POS)
    assert net.context and net.config["context"] is True
    with pytest.raises(ValueError, match="late_context is an option of the late net"):
        make_config(late_context=True)


def test_start_readout_sees_objects_under_a_light_that_changes_per_image(gen):
    # the ground's brightness varies from image to image (as a random light makes it): the
    # per-pixel median image then differs from most ground pixels, each image's own median not
    v = torch.rand(80, 2, generator=gen) * 1.6 - 0.8
    ground = 0.3 + 0.4 * torch.rand(80, 1, 1, 1, generator=gen)  # (80, 1, 1, 1)
    x = ground.expand(80, 3, 16, 16).clone()
    for i, (a, b) in enumerate(((v + 1) * 6).round().long().tolist()):
        x[i, 0, 13 - b:16 - b, a + 1:a + 4] = 1.0  # a red square: y grows upward
        x[i, 1:, 13 - b:16 - b, a + 1:a + 4] = 0.0
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8)
    # the ground swamps the fit (the earlier rule: a fit must explain 0.8)
    assert not net.start_readout(x, v, background="dataset", min_r2=0.8, trim=0.0)
    assert net.start_readout(x, v)  # background="image"
    w = net.where.weight.detach()
    assert w[0, 0] > 0.6 and w[1, 1] < -0.6, w
    # a dark blob (a shadow, a clutter object) at a random place in half the images: the fit
    # still holds the signs and most of the scale
    for i, (a, b) in enumerate(torch.randint(0, 12, (80, 2), generator=gen).tolist()):
        if i % 2:
            x[i, :, b:b + 4, a:a + 4] = 0.05
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8)
    assert net.start_readout(x, v)
    w = net.where.weight.detach()
    assert w[0, 0] > 0.4 and w[1, 1] < -0.4 and w[0, 1].abs() < 0.15, w
    with pytest.raises(ValueError, match="background must be"):
        net.start_readout(x, v, background="sky")

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet, JointConcept, build_energy_net

POS = Concept.continuous("position", dim=2)
COLOR = Concept.categorical("color", ["red", "green", "blue"])
SIZE = Concept.continuous("size", low=0.3, high=0.7)


@pytest.mark.parametrize("concept", [POS, COLOR, SIZE])
def test_energy_shape_and_rebuild_exact(concept, gen):
    net = ConvEnergyNet(concept, image_size=16, width=4, embed_dim=8)
    x = torch.rand(5, 3, 16, 16, generator=gen)
    c = concept.encode(torch.randint(0, 3, (5,)) if concept.is_categorical else
                       concept.low + (concept.high - concept.low) * torch.rand(5, concept.dim))
    e = net(x, c)
    assert e.shape == (5,) and torch.isfinite(e).all()
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config == net.config
    assert torch.equal(twin(x, c), e)


def test_label_changes_energy_at_init(gen):
    # FiLM starts at zero, but label maps enter the first conv: labels matter from the start
    net = ConvEnergyNet(POS, image_size=16, width=4, embed_dim=8)
    x = torch.rand(1, 3, 16, 16, generator=gen).expand(2, -1, -1, -1)
    e = net(x, torch.tensor([[0.5, 0.5], [-0.5, -0.5]]))
    assert (e[0] - e[1]).abs() > 1e-6


def test_64px_and_spectral_norm(gen):
    net = ConvEnergyNet(COLOR, image_size=64, width=4, spectral_norm=True)
    e = net(torch.rand(2, 3, 64, 64, generator=gen), COLOR.encode(torch.tensor([0, 2])))
    assert e.shape == (2,) and torch.isfinite(e).all()
    assert build_energy_net(net.config).config["spectral_norm"] is True


def test_default_size_is_cpu_scale():
    n = ConvEnergyNet(POS).num_parameters()
    assert 50_000 < n < 500_000


def test_joint_concept_conditions_on_several():
    joint = JointConcept.of([POS, COLOR])
    c = joint.encode({"position": (0.5, 0.0), "color": "blue"})
    assert c.tolist() == [0.5, 0.0, 0.0, 0.0, 1.0]
    net = ConvEnergyNet([POS, COLOR], image_size=16, width=4)
    assert net.concept.dim == 5
    e = net.given({"position": (0.5, 0.0), "color": "blue"})(torch.rand(3, 3, 16, 16))
    assert e.shape == (3,)
    assert build_energy_net(net.config).concept == net.concept
    assert repr(net.given({"position": (0.5, 0.0), "color": "blue"})) == \
        "position+color(0.5,0;'blue')"


def test_bad_input_raises_clearly():
    net = ConvEnergyNet(POS, image_size=16, width=4)
    with pytest.raises(ValueError, match="image_size=32"):
        net(torch.rand(2, 3, 32, 32), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="power of two"):
        ConvEnergyNet(POS, image_size=24)
    with pytest.raises(ValueError, match="width"):
        ConvEnergyNet(POS, width=0)
    with pytest.raises(ValueError, match="unknown energy net type"):
        build_energy_net({"type": "Nope", "concept": POS.to_dict()})
    with pytest.raises(ValueError, match="position values must lie"):
        JointConcept.of([POS, COLOR]).encode({"position": (2.0, 0.0), "color": "red"})


def test_center_input_feeds_2x_minus_1_and_round_trips():
    concept = Concept.categorical("shape", ("sphere", "cube", "cylinder"))
    torch.manual_seed(0)
    centred = ConvEnergyNet(concept, width=4, center_input=True)
    plain = ConvEnergyNet(concept, width=4)
    plain.load_state_dict(centred.state_dict())  # same weights, only the input map differs
    x = torch.rand(3, 3, 32, 32)
    c = concept.encode(["cube", "sphere", "cylinder"])
    assert torch.allclose(centred(x, c), plain(2 * x - 1, c), atol=1e-6)
    assert not torch.allclose(centred(x, c), plain(x, c), atol=1e-4)
    rebuilt = build_energy_net(centred.config)
    assert rebuilt.center_input and "center_input" not in plain.config  # old configs unchanged
    assert not build_energy_net(plain.config).center_input


def test_pooled_head_averages_the_last_map_over_space_and_round_trips(gen):
    net = ConvEnergyNet(SIZE, image_size=32, width=4, embed_dim=8, head="pool")
    assert net.head.in_features == 16  # 4w channels, no weight per place (4x4 of them)
    x = torch.rand(3, 3, 32, 32, generator=gen)
    c = SIZE.encode(torch.full((3, 1), 0.5))
    maps = {}
    net.stages[-1].register_forward_hook(lambda m, i, o: maps.__setitem__("h", o))
    e = net(x, c)
    torch.testing.assert_close(e, net.head(maps["h"].mean(dim=(2, 3))).squeeze(1))
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config["head"] == "pool" and torch.equal(twin(x, c), e)
    assert "head" not in ConvEnergyNet(SIZE, width=4).config  # old configs unchanged
    with pytest.raises(ValueError, match="head must be"):
        ConvEnergyNet(SIZE, width=4, head="max")
    from conceptebm.train import smoke_config

    assert smoke_config(concept="size", head="pool").net_config()["head"] == "pool"
    with pytest.raises(ValueError, match="head"):
        smoke_config(concept="size", head="max")


def test_hue_invariant_net_sees_every_hue_alike_and_round_trips(gen):
    net = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True,
                        hue_invariant=True)
    plain = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True)
    x = torch.rand(3, 3, 16, 16, generator=gen, requires_grad=True)
    c = COLOR.encode(torch.tensor([0, 1, 2]))
    e = net(x, c)
    # permuting the channels changes every pixel's hue but neither its max nor its min
    for perm in ([1, 2, 0], [2, 0, 1], [0, 2, 1]):
        torch.testing.assert_close(net(x[:, perm], c), e)
        assert not torch.allclose(plain(x[:, perm], c), plain(x, c))
    # the gradient reaches each pixel's largest and smallest channel only
    (g,) = torch.autograd.grad(e.sum(), x)
    middle = x.detach().argsort(dim=1)[:, 1:2]  # (B, 1, H, W): neither max nor min
    assert g.gather(1, middle).abs().max() == 0 and g.abs().sum() > 0
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config["hue_invariant"] is True and torch.equal(twin(x, c), e)
    assert "hue_invariant" not in plain.config  # old configs unchanged
    with pytest.raises(ValueError, match="hue_invariant needs RGB"):
        ConvEnergyNet(COLOR, channels=1, width=4, hue_invariant=True)
    from conceptebm.train import smoke_config

    assert smoke_config(concept="shape", hue_invariant=True).net_config()["hue_invariant"]


def test_hue_agreement_sees_speckles_but_not_which_colour(gen):
    import itertools

    net = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True,
                        hue_invariant=True, hue_agreement=True)
    blind = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True,
                          hue_invariant=True)
    x = torch.rand(3, 3, 16, 16, generator=gen)
    c = COLOR.encode(torch.tensor([0, 1, 2]))
    e = net(x, c)
    for perm in itertools.permutations(range(3)):  # every recolouring by channel permutation
        torch.testing.assert_close(net(x[:, list(perm)], c), e)
    # one red object against red and green speckles: the same value and chroma everywhere
    red, green = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.9, 0.1])
    uniform = red[:, None, None].expand(3, 16, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)) % 2 == 0  # (16, 16)
    speckled = torch.where(checker, red[:, None, None], green[:, None, None])
    both = torch.stack([uniform, speckled])
    c2 = COLOR.encode(torch.tensor([0, 0]))
    assert torch.allclose(blind(both, c2)[0], blind(both, c2)[1])  # blind to speckles
    assert not torch.allclose(net(both, c2)[0], net(both, c2)[1])
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config["hue_agreement"] is True and torch.equal(twin(x, c), e)
    with pytest.raises(ValueError, match="extends hue_invariant"):
        ConvEnergyNet(COLOR, width=4, hue_agreement=True)
    from conceptebm.train import smoke_config

    with pytest.raises(ValueError, match="hue_agreement"):
        smoke_config(concept="shape", hue_agreement=True)
    assert smoke_config(concept="shape", hue_invariant=True,
                        hue_agreement=True).net_config()["hue_agreement"]


def test_pixel_prior_is_unconditional_and_blind_to_arrangement(gen):
    net = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True,
                        hue_invariant=True, pixel_prior=True)
    bare = ConvEnergyNet(COLOR, image_size=16, width=4, embed_dim=8, center_input=True,
                         hue_invariant=True)
    missing = bare.load_state_dict(net.state_dict(), strict=False).unexpected_keys
    assert missing and all(k.startswith("pixel_prior.") for k in missing)
    x = torch.rand(4, 3, 16, 16, generator=gen, requires_grad=True)
    c = COLOR.encode(torch.tensor([0, 1, 2, 0]))
    prior = net(x, c) - bare(x, c)  # (4,): what the prior adds
    assert prior.abs().min() > 0
    # the same for every concept value: unconditional, so the concept ranking is the trunk's
    torch.testing.assert_close(net(x, c.roll(1, 0)) - bare(x, c.roll(1, 0)), prior)
    # the same for any arrangement of the same pixels: it cannot encode a shape
    shuffled = x.flatten(2)[:, :, torch.randperm(256, generator=gen)].reshape(x.shape)
    torch.testing.assert_close(net(shuffled, c) - bare(shuffled, c), prior)
    # but it reads hue, which the invariant trunk cannot
    assert not torch.allclose(net(x[:, [1, 2, 0]], c), net(x, c))
    twin = build_energy_net(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config["pixel_prior"] is True and torch.equal(twin(x, c), net(x, c))
    assert "pixel_prior" not in bare.config
    from conceptebm.train import smoke_config

    assert smoke_config(concept="shape", pixel_prior=True).net_config()["pixel_prior"]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_pooled_layout_halves_like_the_strided_one_and_round_trips(size, gen):
    pooled = ConvEnergyNet(COLOR, image_size=size, width=4, downsample="pool")
    strided = ConvEnergyNet(COLOR, image_size=size, width=4)
    # same levels: the flattened head sees the same feature map size, with 3x3 instead of 4x4
    # kernels in the downsampling convs
    assert pooled.head.in_features == strided.head.in_features
    assert pooled.num_parameters() < strided.num_parameters()
    x = torch.rand(2, 3, size, size, generator=gen, requires_grad=True)
    e = pooled(x, COLOR.encode(torch.tensor([0, 1])))
    (g,) = torch.autograd.grad(e.sum(), x)
    assert e.shape == (2,) and torch.isfinite(g).all()
    twin = build_energy_net(pooled.config)
    twin.load_state_dict(pooled.state_dict())
    assert torch.equal(twin(x, COLOR.encode(torch.tensor([0, 1]))), e)
    assert pooled.config["downsample"] == "pool" and "downsample" not in strided.config


def test_pooled_stem_averages_the_full_resolution_conv(gen):
    net = ConvEnergyNet(COLOR, image_size=16, width=4, downsample="pool", coord_conv=False,
                        label_maps=False)
    x = torch.rand(2, 3, 16, 16, generator=gen)
    emb = net.embed(net.normalise(COLOR.encode(torch.tensor([0, 2]))))
    full = net.stem.conv(x)  # (2, 4, 16, 16): a 3x3 conv at full resolution
    expected = net.stem.act(net.stem.film(torch.nn.functional.avg_pool2d(full, 2), emb))
    assert torch.allclose(net.stem(x, emb), expected, atol=1e-6)


def test_unknown_downsample_is_refused():
    with pytest.raises(ValueError, match="downsample must be 'stride' or 'pool'"):
        ConvEnergyNet(POS, downsample="maxpool")


@pytest.mark.parametrize("objective", ["cd", "contrastive"])
def test_the_one_loop_trains_a_late_net(tmp_path, objective):
    from squares import SquaresDataset

    from conceptebm.checkpoints import load_energy
    from conceptebm.energies.late import LateEnergyNet
    from conceptebm.train import smoke_config, train

    cfg = smoke_config(concept="position", image_size=16, net="late", objective=objective,
                       iterations=3, eval_every=0, out_dir=str(tmp_path / "run"))
    result = train(cfg, dataset=SquaresDataset(32), progress=False)
    assert isinstance(result.net, LateEnergyNet) and result.net.config["width"] == cfg.width
    twin = load_energy(tmp_path / "run" / "last.safetensors", weights="model")
    x, c = torch.rand(2, 3, 16, 16), torch.zeros(2, 2)
    assert isinstance(twin, LateEnergyNet)
    torch.testing.assert_close(twin(x, c), result.net.eval()(x, c))
    with pytest.raises(ValueError, match="net"):
        smoke_config(net="unet")
    # the conv net's options are refused for a late net, not silently ignored
    for option in ({"hue_invariant": True}, {"head": "pool"}, {"downsample": "pool"},
                   {"pixel_prior": True}, {"hue_invariant": True, "hue_agreement": True}):
        with pytest.raises(ValueError, match="must be 'conv' with the conv net's options"):
            smoke_config(concept="position", net="late", **option)

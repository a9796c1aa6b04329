import json

import pytest
import torch
from squares import SquaresDataset

from conceptebm.checkpoints import save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.energies import And, StepMatched
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.train import conditioned_energy, smoke_config, train


def test_new_concept_trains_inside_composition_and_frozen_ebm_gets_no_gradient(tmp_path):
    torch.manual_seed(3)
    old = ConvEnergyNet(SquaresDataset.concepts["position"], image_size=16, width=4,
                        embed_dim=8)
    path = tmp_path / "position.safetensors"
    save_checkpoint(path, {"model": old.state_dict()}, {"net": old.config})
    before = {k: v.clone() for k, v in old.state_dict().items()}

    calls = {"frozen": 0}
    import conceptebm.train.continual as continual

    real_load = continual.load

    def counting_load(*a, **k):  # count forward calls of the frozen EBM during training
        e = real_load(*a, **k)
        e.register_forward_hook(lambda *_: calls.__setitem__("frozen", calls["frozen"] + 1))
        holder["frozen"] = e
        return e

    holder = {}
    continual.load = counting_load
    try:
        cfg = smoke_config(concept="color", image_size=16, frozen=[str(path)], eval_every=0,
                           iterations=3, out_dir=str(tmp_path / "run"))
        result = train(cfg, dataset=SquaresDataset(32), progress=False)
    finally:
        continual.load = real_load
    frozen = holder["frozen"]
    # the sampler summed the frozen EBM: K steps x iterations forward calls at least
    assert calls["frozen"] >= cfg.sampler_steps * cfg.iterations
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, before[k]), k  # unchanged
    with torch.random.fork_rng():  # the loop seeds the new net's init with config.seed
        torch.manual_seed(cfg.seed)
        init = ConvEnergyNet(result.net.concept, **cfg.net_config())
    changed = [not torch.equal(a, b) for a, b in
               zip(init.parameters(), result.net.parameters(), strict=True)]
    assert any(changed)  # while the new EBM learned


def test_conditioned_energy_sums_frozen_terms():
    pos = ConvEnergyNet(Concept.continuous("position", dim=2), image_size=16, width=4)
    col = ConvEnergyNet(Concept.categorical("color", ["r", "g"]), image_size=16, width=4)
    c = torch.tensor([[1.0, 0.0, 0.5, -0.5]])  # color one-hot, then position
    e = conditioned_energy(col, c, frozen=[pos])
    assert isinstance(e, And)
    x = torch.rand(1, 3, 16, 16)
    expected = col(x, c[:, :2]) + pos(x, c[:, 2:])
    torch.testing.assert_close(e(x), expected)


OLD = ConvEnergyNet(SquaresDataset.concepts["position"], image_size=16, width=4,
                    embed_dim=8).eval()  # a tiny earlier EBM, saved by the tests below


def _position_ebm_saved(path, step_size):
    """:data:`OLD` saved as if trained with Langevin step ``step_size``."""
    save_checkpoint(path, {"model": OLD.state_dict()},
                    {"net": OLD.config, "sampler": {"step_size": step_size}})
    return OLD


def _frozen_in_the_chain(tmp_path, monkeypatch, name, **overrides):
    """Train a color EBM one iteration (chain step 100) and return the frozen energies the
    sampler was handed."""
    import conceptebm.train.loop as loop

    seen, real = [], loop.sample_images

    def spy(*a, frozen=(), **k):
        seen.append(list(frozen))
        return real(*a, frozen=frozen, **k)

    monkeypatch.setattr(loop, "sample_images", spy)
    cfg = smoke_config(concept="color", image_size=16, eval_every=0, iterations=1,
                       step_size=100.0, out_dir=str(tmp_path / name), **overrides)
    train(cfg, dataset=SquaresDataset(32), progress=False)
    return seen[0]


def test_a_frozen_ebm_trained_with_another_step_enters_the_chain_step_matched(tmp_path,
                                                                               monkeypatch):
    # A frozen EBM recorded with step 1 in a chain of step 100 must be scaled by 1/100 (else
    # the chain moves it 100x too far); one recorded with the chain's own step is left alone.
    steep, same = tmp_path / "steep.safetensors", tmp_path / "same.safetensors"
    _position_ebm_saved(steep, 1.0)
    _position_ebm_saved(same, 100.0)
    (matched,) = _frozen_in_the_chain(tmp_path, monkeypatch, "steep", frozen=[str(steep)])
    (plain,) = _frozen_in_the_chain(tmp_path, monkeypatch, "same", frozen=[str(same)])
    assert isinstance(matched, StepMatched) and matched.factor == 0.01
    assert not isinstance(plain, StepMatched)
    x, c = torch.rand(2, 3, 16, 16), torch.zeros(2, 2)
    torch.testing.assert_close(matched(x, c), 0.01 * plain(x, c))
    assert all(not p.requires_grad for p in matched.parameters())


def test_frozen_weights_scale_each_frozen_ebm_in_the_chain_after_step_matching(tmp_path,
                                                                                monkeypatch):
    steep = tmp_path / "steep.safetensors"
    old = _position_ebm_saved(steep, 1.0)
    (weighted,) = _frozen_in_the_chain(tmp_path, monkeypatch, "run", frozen=[str(steep)],
                                       frozen_weights=[3.0])
    x, c = torch.rand(2, 3, 16, 16), torch.zeros(2, 2)
    # 3 x (1 / 100): the weight multiplies the step-matched energy
    torch.testing.assert_close(weighted(x, c), 0.03 * old(x, c))
    assert all(not p.requires_grad for p in weighted.parameters())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["frozen_weights"] == [3.0]


@pytest.mark.parametrize("weights, match", [([1.0, 2.0], "one weight per frozen EBM"),
                                            ([0.0], "finite numbers > 0"),
                                            ([float("nan")], "finite numbers > 0")])
def test_frozen_weights_are_checked(weights, match):
    with pytest.raises(ValueError, match=match):
        smoke_config(concept="color", frozen=["position"], frozen_weights=weights)

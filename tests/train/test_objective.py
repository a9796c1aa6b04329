"""The objective as loss terms: the composite equals its terms computed by hand."""

import pytest
import torch
import torch.nn.functional as F

from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.train import TrainConfig, make_config
from conceptebm.train.loss import near_values, wrong_concept_values
from conceptebm.train.objective import (
    CDObjective,
    CDTerm,
    ContrastiveObjective,
    L2Term,
    LossTerm,
    Objective,
    Sum,
    make_objective,
)

POS = Concept.continuous("position", dim=2)
COLOR = Concept.categorical("color", ["red", "green", "blue"])


def tiny(concept):
    torch.manual_seed(0)
    return ConvEnergyNet(concept, image_size=16, width=4, embed_dim=8)


def _batch(gen, b=6, m=3):
    x_pos = torch.rand(b, 3, 16, 16, generator=gen)
    x_neg = torch.rand(b, 3, 16, 16, generator=gen)
    c_pos = torch.rand(b, 2, generator=gen) * 2 - 1
    c_neg = torch.rand(b, 2, generator=gen) * 2 - 1
    c_wrong = torch.rand(b, m, 2, generator=gen) * 2 - 1
    return x_pos, c_pos, x_neg, c_neg, c_wrong


def test_cd_objective_equals_its_terms_by_hand(gen):
    net = tiny(POS)
    obj = CDObjective(net, l2=0.3, contrastive_weight=2.0, contrastive_temperature=0.5,
                      image_contrastive_weight=1.5, image_negatives=2, kl_weight=0.7,
                      step_size=10.0)
    assert [t.name for t in obj.loss.terms] == ["cd", "l2", "contrastive",
                                                "image_contrastive", "kl"]
    x_pos, c_pos, x_neg, c_neg, c_wrong = _batch(gen)
    loss, stats = obj(x_pos, c_pos, x_neg, c_neg, c_wrong)
    b, m = c_wrong.shape[:2]
    e_pos, e_neg = net(x_pos, c_pos), net(x_neg, c_neg)
    cd = e_pos.mean() - e_neg.mean()
    l2 = e_pos.pow(2).mean() + e_neg.pow(2).mean()
    e_wrong = net(x_pos.repeat_interleave(m, 0), c_wrong.reshape(-1, 2)).reshape(b, m)
    ce = F.cross_entropy(-torch.cat([e_pos[:, None], e_wrong], 1) / 0.5,
                         torch.zeros(b, dtype=torch.long))
    e_other = torch.stack([net(x_pos.roll(s, 0), c_pos) for s in (1, 2)], 1)  # (B, 2)
    # random continuous labels: every other image is a valid negative here
    ce_img = F.cross_entropy(-torch.cat([e_pos[:, None], e_other], 1) / 0.5,
                             torch.zeros(b, dtype=torch.long))
    kl = obj.loss.terms[4].kl(net, x_neg.clone(), c_neg)
    by_hand = cd + 0.3 * l2 + 2.0 * 0.5 * ce + 1.5 * 0.5 * ce_img + 0.7 * kl
    torch.testing.assert_close(loss, by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats["contrastive"], ce.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats["image_contrastive"], ce_img.detach(), rtol=1e-5, atol=1e-6)
    # and the gradients agree: the composite is exactly the weighted sum of its parts
    g = torch.autograd.grad(loss, list(net.parameters()))
    g_hand = torch.autograd.grad(by_hand, list(net.parameters()))
    for a, h in zip(g, g_hand, strict=True):
        torch.testing.assert_close(a, h, rtol=1e-4, atol=1e-7)


def test_one_pass_scores_each_shared_block_once(gen):
    net = tiny(POS)
    calls = []
    net.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    obj = CDObjective(net, contrastive_weight=1.0, image_contrastive_weight=1.0,
                      image_negatives=2)
    x_pos, c_pos, x_neg, c_neg, c_wrong = _batch(gen, b=6, m=3)
    obj(x_pos, c_pos, x_neg, c_neg, c_wrong)
    assert calls == [6 + 6 + 6 * 3 + 6 * 2]  # pos once (shared by three terms), neg, wrong, other


def test_contrastive_objective_is_ce_plus_pooled_l2(gen):
    net = tiny(POS)
    obj = ContrastiveObjective(net, l2=0.01, weight=1.0, temperature=1.0)
    x_pos, c_pos, _, _, c_wrong = _batch(gen)
    loss, stats = obj(x_pos, c_pos, c_wrong=c_wrong)  # no negatives images needed
    b, m = c_wrong.shape[:2]
    e = net(torch.cat([x_pos, x_pos.repeat_interleave(m, 0)]),
            torch.cat([c_pos, c_wrong.reshape(-1, 2)]))  # the old recipe's one batch
    ce = F.cross_entropy(-torch.cat([e[:b, None], e[b:].reshape(b, m)], 1),
                         torch.zeros(b, dtype=torch.long))
    torch.testing.assert_close(loss, ce + 0.01 * e.pow(2).mean(), rtol=1e-5, atol=1e-6)
    assert {"e_pos", "e_wrong", "contrastive", "contrastive_acc", "loss"} == set(stats)
    with pytest.raises(ValueError, match="c_wrong"):
        obj(x_pos, c_pos)


def test_sum_is_a_term_and_nests(gen):
    net = tiny(POS)
    x_pos, c_pos, x_neg, c_neg, _ = _batch(gen)
    flat = Objective(net, Sum([CDTerm(), L2Term(0.2)]))
    nested = Objective(net, Sum([Sum([CDTerm()]), L2Term(0.2)]))
    assert isinstance(flat.loss, LossTerm)
    torch.testing.assert_close(flat(x_pos, c_pos, x_neg, c_neg)[0],
                               nested(x_pos, c_pos, x_neg, c_neg)[0])
    with pytest.raises(ValueError, match="blocks"):
        Objective(net, Sum([L2Term(0.1)]))(x_pos, c_pos, x_neg, c_neg)
    with pytest.raises(ValueError, match="x_neg"):
        Objective(net, Sum([CDTerm()]))(x_pos, c_pos)


def test_make_objective_follows_the_config():
    net = tiny(POS)
    assert isinstance(make_objective(TrainConfig(), net), CDObjective)
    obj = make_objective(make_config(objective="contrastive"), net)
    assert isinstance(obj, ContrastiveObjective)
    assert [t.name for t in obj.loss.terms] == ["contrastive", "l2"]
    with pytest.raises(ValueError, match="contrastive_weight"):
        TrainConfig(objective="contrastive")  # weight 0 would train nothing
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="banana")


def test_near_negatives_lie_near_the_true_value_inside_the_range(gen):
    c = torch.tensor([[0.0, 0.0], [0.98, -0.99], [-1.0, 1.0]])  # centre and corners
    v = near_values(POS, c, 50, 0.1, generator=gen)  # (3, 50, 2)
    gap = (v - c[:, None]).abs().amax(-1) / 2.0  # L-inf distance as a fraction of the range
    assert v.shape == (3, 50, 2)
    assert (v >= -1).all() and (v <= 1).all()
    assert (gap <= 0.1 + 1e-6).all() and (gap[0] >= 0.02 - 1e-6).all()
    wrong = wrong_concept_values(POS, c, 4, near=3, near_scale=0.1, generator=gen)
    assert wrong.shape == (3, 7, 2)
    assert ((wrong[:, 4:] - c[:, None]).abs().amax(-1) <= 0.2 + 1e-6).all()
    # categorical concepts keep "all other categories"
    assert wrong_concept_values(COLOR, COLOR.encode(torch.tensor([0, 2])), 4, near=3).shape \
        == (2, 2, 3)
    with pytest.raises(ValueError, match="scale"):
        near_values(POS, c, 2, 0.0)


def test_late_net_scores_the_candidates_through_one_trunk_pass_with_the_full_pass_loss(gen):
    from conceptebm.energies.late import LateEnergyNet
    from conceptebm.train.objective import splits

    torch.manual_seed(0)
    net = LateEnergyNet(POS, image_size=16, width=4, features=8)
    assert splits(net) and not splits(tiny(POS))
    trunk_rows = []
    net.stem.register_forward_hook(lambda mod, args, out: trunk_rows.append(args[0].shape[0]))
    x_pos, c_pos, x_neg, c_neg, c_wrong = _batch(gen, b=6, m=3)
    b, m = c_wrong.shape[:2]
    for obj, args, full in [
        (ContrastiveObjective(net, l2=0.01), (x_pos, c_pos, None, None, c_wrong),
         lambda: net(torch.cat([x_pos, x_pos.repeat_interleave(m, 0)]),
                     torch.cat([c_pos, c_wrong.reshape(-1, 2)]))),
        (CDObjective(net, contrastive_weight=1.0), (x_pos, c_pos, x_neg, c_neg, c_wrong),
         lambda: net(torch.cat([x_pos, x_neg, x_pos.repeat_interleave(m, 0)]),
                     torch.cat([c_pos, c_neg, c_wrong.reshape(-1, 2)]))),
    ]:
        trunk_rows.clear()
        loss, _ = obj(*args)
        assert trunk_rows == [b if args[2] is None else 2 * b]  # the trunk once per image
        grads = torch.autograd.grad(loss, list(net.parameters()))
        # the same loss from the full pass over every (image, value) row, by hand
        e = full()
        e_pos, e_wrong = e[:b], e[-b * m:].reshape(b, m)
        t = 1.0 if args[2] is None else 0.01  # each objective's default temperature
        ce = F.cross_entropy(-torch.cat([e_pos[:, None], e_wrong], 1) / t,
                             torch.zeros(b, dtype=torch.long))
        if args[2] is None:
            by_hand = ce + 0.01 * e.pow(2).mean()
        else:
            e_neg = e[b:2 * b]
            by_hand = (e_pos.mean() - e_neg.mean() + 0.1 * (e_pos.pow(2).mean()
                       + e_neg.pow(2).mean()) + 0.01 * ce)
        torch.testing.assert_close(loss, by_hand, rtol=1e-5, atol=1e-6)
        for g, h in zip(grads, torch.autograd.grad(by_hand, list(net.parameters())), strict=True):
            torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)

import pytest
import torch
import torch.nn.functional as F

from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.train.loss import (
    cd_loss,
    concept_contrastive_loss,
    image_contrastive_loss,
    same_value,
    wrong_concept_values,
)
from conceptebm.train.objective import CDObjective, KLTerm

POS = Concept.continuous("position", dim=2)
COLOR = Concept.categorical("color", ["red", "green", "blue"])


def tiny(concept):
    torch.manual_seed(0)
    return ConvEnergyNet(concept, image_size=16, width=4, embed_dim=8)


def test_cd_loss_value():
    e_pos, e_neg = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    loss, cd = cd_loss(e_pos, e_neg, l2=0.5)
    assert cd.item() == pytest.approx(2.0 - (-1.0))
    assert loss.item() == pytest.approx(3.0 + 0.5 * ((1 + 9) / 2 + (0 + 4) / 2))


def test_cd_gradient_is_grad_epos_minus_grad_eneg(gen):
    net = tiny(POS)
    obj = CDObjective(net, l2=0.0)
    x_pos, x_neg = torch.rand(4, 3, 16, 16, generator=gen), torch.rand(4, 3, 16, 16, generator=gen)
    c = torch.rand(4, 2, generator=gen) * 2 - 1
    x_neg.requires_grad_(True)
    loss, _ = obj(x_pos, c, x_neg, c)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    assert x_neg.grad is None  # negatives are detached: no gradient through the sampler
    gp = torch.autograd.grad(net(x_pos, c).mean(), list(net.parameters()))
    gn = torch.autograd.grad(net(x_neg.detach(), c).mean(), list(net.parameters()))
    for g, a, b in zip(grads, gp, gn, strict=True):
        torch.testing.assert_close(g, a - b)


def test_one_sgd_step_lowers_data_energy_relative_to_negatives(gen):
    net = tiny(POS)
    obj = CDObjective(net, l2=0.0)
    x_pos, x_neg = torch.rand(8, 3, 16, 16, generator=gen), torch.rand(8, 3, 16, 16, generator=gen)
    c = torch.zeros(8, 2)
    _, before = obj(x_pos, c, x_neg, c)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    loss, _ = obj(x_pos, c, x_neg, c)
    loss.backward()
    opt.step()
    _, after = obj(x_pos, c, x_neg, c)
    assert after["cd"] < before["cd"]


def test_contrastive_categorical_is_exact_classification(gen):
    net = tiny(COLOR)
    obj = CDObjective(net, l2=0.0, contrastive_weight=1.0, contrastive_temperature=0.5)
    x = torch.rand(5, 3, 16, 16, generator=gen)
    idx = torch.tensor([0, 1, 2, 1, 0])
    c = COLOR.encode(idx)
    wrong = wrong_concept_values(COLOR, c, 7)
    assert wrong.shape == (5, 2, 3)
    assert not (wrong.argmax(-1) == idx[:, None]).any()  # only the other classes
    loss, stats = obj(x, c, x, c, wrong)
    # the same cross-entropy, written as a softmax over all three classes
    logits = -torch.stack([net(x, COLOR.encode(torch.full((5,), k))) for k in range(3)], 1)
    ce = F.cross_entropy(logits / 0.5, idx)
    torch.testing.assert_close(stats["contrastive"], ce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, stats["cd"] + 0.5 * ce, rtol=1e-5, atol=1e-6)


def test_contrastive_continuous_values_in_range_and_loss_shape(gen):
    c = torch.rand(6, 2, generator=gen) * 2 - 1
    wrong = wrong_concept_values(POS, c, 4, generator=gen)
    assert wrong.shape == (6, 4, 2) and wrong.abs().max() <= 1
    loss, acc = concept_contrastive_loss(torch.zeros(6), torch.ones(6, 4))
    assert acc == 1.0
    assert loss.item() == pytest.approx(-torch.log_softmax(torch.tensor([0.0, -1, -1, -1, -1]),
                                                           0)[0].item())


def test_kl_term_gradient_flows_only_through_the_sampler_step(gen):
    net = tiny(POS)
    x = torch.rand(4, 3, 16, 16, generator=gen)
    c = torch.zeros(4, 2)
    params = list(net.parameters())
    kl = KLTerm(1.0, step_size=50.0).kl(net, x.clone(), c)
    g = torch.autograd.grad(kl, params, allow_unused=True)
    assert any(gi is not None and gi.abs().sum() > 0 for gi in g)
    # with a zero-length step the sample no longer depends on the parameters: no gradient
    kl0 = KLTerm(1.0, step_size=1e-30).kl(net, x.clone(), c)
    g0 = torch.autograd.grad(kl0, params, allow_unused=True)
    assert all(gi is None or gi.abs().max() < 1e-12 for gi in g0)
    with pytest.raises(ValueError, match="c_wrong"):
        CDObjective(net, contrastive_weight=1.0)(x, c, x, c)


def test_image_contrastive_loss_masks_same_value_images():
    e_true = torch.tensor([0.0, 0.0, 0.0])
    e_other = torch.tensor([[1.0, 2.0], [1.0, -5.0], [-5.0, -5.0]])
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    loss, acc = image_contrastive_loss(e_true, e_other, valid, temperature=1.0)
    # row 0: both negatives; row 1: the masked -5 must not count; row 2: nothing to contrast
    rows = [torch.log(1 + torch.exp(torch.tensor(-1.0)) + torch.exp(torch.tensor(-2.0))),
            torch.log(1 + torch.exp(torch.tensor(-1.0))), torch.tensor(0.0)]
    assert loss.item() == pytest.approx(torch.stack(rows).mean().item(), rel=1e-6)
    assert acc.item() == 1.0  # masked lower energies do not count as mistakes
    half, _ = image_contrastive_loss(e_true, e_other, valid, temperature=2.0)
    assert half.item() != pytest.approx(loss.item())


def test_same_value_categorical_continuous_and_joint():
    a = COLOR.encode(torch.tensor([0, 1, 2]))
    b = COLOR.encode(torch.tensor([0, 2, 2]))
    assert same_value(COLOR, a, b).tolist() == [True, False, True]
    # position range is 2 wide: 0.1 of it is 0.2, on the larger coordinate gap
    p = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.15, -0.1], [0.0, 0.25], [0.5, 0.5]])
    assert same_value(POS, p, q).tolist() == [True, False, True]
    from conceptebm.energies.nets import JointConcept
    joint = JointConcept.of([POS, COLOR])
    j1 = torch.cat([p, a], 1)
    j2 = torch.cat([p, b], 1)
    assert same_value(joint, j1, j2).tolist() == [True, False, True]
    # broadcasting: (B, 1, L) against (B, M, L)
    assert same_value(COLOR, a[:, None], torch.stack([a, b], 1)).shape == (3, 2)


def test_image_contrastive_term_ranks_other_batch_images_under_each_label(gen):
    net = tiny(COLOR)
    obj = CDObjective(net, l2=0.0, image_contrastive_weight=2.0, image_negatives=3,
                      contrastive_temperature=0.5)
    x = torch.rand(5, 3, 16, 16, generator=gen)
    idx = torch.tensor([0, 1, 2, 1, 0])
    c = COLOR.encode(idx)
    loss, stats = obj(x, c, x, c)
    # by hand: E(x_{i-s} | c_i) for s = 1..3, negatives only where the class differs
    e_true = net(x, c)
    e_other = torch.stack([net(x.roll(s, 0), c) for s in (1, 2, 3)], 1)  # (5, 3)
    valid = idx[:, None] != torch.stack([idx.roll(s, 0) for s in (1, 2, 3)], 1)
    logits = (-torch.cat([e_true[:, None], e_other], 1) / 0.5).masked_fill(
        ~torch.cat([torch.ones(5, 1, dtype=torch.bool), valid], 1), float("-inf"))
    ce = F.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(stats["image_contrastive"], ce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, stats["cd"] + 2.0 * 0.5 * ce, rtol=1e-5, atol=1e-6)
    # the term has a parameter gradient, and one Adam step on it alone lowers it
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    term = CDObjective(net, l2=0.0, image_contrastive_weight=1.0, image_negatives=3,
                       contrastive_temperature=0.5)
    before = term(x, c, x, c)[1]["image_contrastive"]
    for _ in range(5):
        opt.zero_grad()
        (term(x, c, x, c)[0]).backward()
        opt.step()
    assert term(x, c, x, c)[1]["image_contrastive"] < before

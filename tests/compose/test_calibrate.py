import pytest
import torch

from conceptebm.compose.calibrate import energy_gap, random_other_values, reference_scale
from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy


class Quadratic(ConditionalEnergy):
    """E(x|c) = k |x - c|^2 with x a (B, dim) 'image' that equals its concept value."""

    def __init__(self, concept, k):
        super().__init__(concept)
        self.k = k

    def energy(self, x, c):
        return self.k * ((x - c) ** 2).sum(1)


def test_gap_of_a_quadratic_concept_matches_closed_form(gen):
    # x = c exactly, c' uniform on [-1,1]: E(x|c') - E(x|c) = k |c - c'|^2 with
    # E|c - c'|^2 = 2 * Var(U[-1,1]) = 2/3 for independent uniforms (x itself uniform).
    concept = Concept.continuous("p", 1)
    c = torch.rand(20000, 1, generator=gen, dtype=torch.float64) * 2 - 1
    gap = energy_gap(Quadratic(concept, 3.0), c, c, negatives=1, generator=gen)
    # sd of 3|c-c'|^2 is about 3 * 0.63; se = 1.9 / sqrt(20000) = 0.013
    assert gap == pytest.approx(3.0 * 2 / 3, abs=0.06)


def test_gap_of_categorical_concept_and_other_values_differ(gen):
    concept = Concept.categorical("color", ["r", "g", "b", "y"])
    idx = torch.randint(0, 4, (500,), generator=gen)
    onehot = concept.encode(idx).double()
    other = random_other_values(concept, onehot, gen)
    assert (other.argmax(1) != idx).all() and torch.allclose(other.sum(1), torch.ones(500).double())
    # |onehot - other onehot|^2 = 2 exactly
    assert energy_gap(Quadratic(concept, 1.5), onehot, idx, generator=gen) == pytest.approx(3.0)


def test_categorical_gap_is_measured_against_the_values_the_data_holds(gen):
    # a model never shown "y" puts it far away (k_y = 50): drawing it would inflate the gap
    concept = Concept.categorical("shape", ["r", "g", "b", "y"])

    class Unseen(Quadratic):
        def energy(self, x, c):
            return super().energy(x, c) + 50.0 * c[:, 3]

    idx = torch.randint(0, 3, (600,), generator=gen)  # the data holds r, g and b only
    onehot = concept.encode(idx).double()
    # |onehot - other|^2 = 2 for any other value: the gap is exactly 2k when "y" is not drawn
    assert energy_gap(Unseen(concept, 1.5), onehot, idx, generator=gen) == pytest.approx(3.0)
    other = random_other_values(concept, onehot, gen, values=torch.tensor([0, 1, 2]))
    assert set(other.argmax(1).tolist()) == {0, 1, 2} and (other.argmax(1) != idx).all()
    with pytest.raises(ValueError, match="every row's own"):
        random_other_values(concept, onehot, gen, values=torch.tensor([0, 1]))
    # every value present: the draw is the unrestricted one (same generator, same values)
    all4 = torch.randint(0, 4, (50,), generator=gen)
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    oh = concept.encode(all4)
    assert torch.equal(random_other_values(concept, oh, g1),
                       random_other_values(concept, oh, g2, values=torch.arange(4)))


def test_a_model_that_prefers_wrong_values_cannot_be_calibrated(gen):
    concept = Concept.continuous("p", 1)
    c = torch.rand(100, 1, generator=gen) * 2 - 1
    with pytest.raises(ValueError, match="cannot be calibrated"):
        energy_gap(Quadratic(concept, -1.0), c, c, generator=gen)


def test_reference_scale_is_geometric_mean():
    assert reference_scale({"a": 4.0, "b": 1.0, "c": 9.0}, ["a", "c"]) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="positive"):
        reference_scale({"a": 0.0}, ["a"])


class Match(ConditionalEnergy):
    """E(x|c) = -x . one_hot(c): x holds minus the energy of every value."""

    def energy(self, x, c):
        return -(x * c).sum(-1)


COLORS = Concept.categorical("color", ["red", "green", "blue", "cyan"])


@pytest.mark.parametrize("t", [0.002, 0.5, 3.0])
def test_fit_temperature_recovers_the_softmax_labels_were_drawn_from(t, gen):
    from conceptebm.compose.calibrate import fit_classifier_temperature as fit_temperature

    logits = torch.randn(20000, 4, generator=gen, dtype=torch.float64) * 2
    y = torch.multinomial(logits.softmax(1), 1, generator=gen)[:, 0]
    # E(x|v) = -t * logit_v, so softmax(-E / T) is the labels' law at T = t; the MLE of 1/T
    # from 20,000 draws has a relative error of about 1 %
    assert fit_temperature(Match(COLORS), t * logits, y) == pytest.approx(t, rel=0.05)
    with pytest.raises(ValueError, match="better than chance"):  # energies that ignore x
        fit_temperature(Match(COLORS), torch.zeros(100, 4, dtype=torch.float64),
                        torch.randint(0, 4, (100,), generator=gen))


def test_not_any_is_minus_t_log_of_the_probability_that_none_of_the_values_holds(gen):
    from conceptebm.energies import Not, NotAny

    x = torch.randn(64, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    t = 0.7
    p = torch.softmax(x / t, dim=1)  # -E / T = x / T
    e = NotAny(Match(COLORS), ["red", "blue"], temperature=t)(x)
    torch.testing.assert_close(e, -t * torch.log(p[:, 1] + p[:, 3]))
    assert (e >= 0).all()  # bounded below, unlike Not
    (g,) = torch.autograd.grad(e.sum(), x)
    assert torch.isfinite(g).all()
    # leaving the data: an x ever less green drives Not(green) down without bound, NotAny to 0
    far = torch.tensor([[0.0, -50.0, 0.0, 0.0]], dtype=torch.float64)
    assert Not(Match(COLORS).given("green"), alpha=1.0)(far) < -49
    assert 0 <= NotAny(Match(COLORS), ["green"], temperature=t)(far) < 1e-12
    # per chain: a (batch, K) mask; excluding every value but one is that value's
    # classifier energy -T log p(v | x)
    mask = torch.ones(64, 4, dtype=torch.bool)
    keep = torch.randint(0, 4, (64,), generator=gen)
    mask[torch.arange(64), keep] = False
    e = NotAny(Match(COLORS), mask, temperature=t)(x)
    torch.testing.assert_close(e, -t * torch.log(p.gather(1, keep[:, None]).squeeze(1)))
    assert not NotAny(Match(COLORS), ["red"], temperature=t).is_grounded
    for bad, match in ((["red", "green", "blue", "cyan"], "not all"), ([], "at least one"),
                       (torch.ones(3, 2, dtype=torch.bool), r"\(batch, 4\)")):
        with pytest.raises(ValueError, match=match):
            NotAny(Match(COLORS), bad, temperature=t)
    with pytest.raises(ValueError, match="temperature"):
        NotAny(Match(COLORS), ["red"], temperature=0.0)
    with pytest.raises(ValueError, match="categorical"):
        NotAny(Quadratic(Concept.continuous("p", 1), 1.0), [0], temperature=1.0)


def test_fit_temperature_of_a_continuous_concept_is_the_likelihood_optimum_on_its_grid(gen):
    from conceptebm.compose.calibrate import fit_classifier_temperature as fit_temperature
    from conceptebm.energies.ops import candidate_grid

    concept = Concept.continuous("position", 2)
    c = torch.rand(2000, 2, generator=gen, dtype=torch.float64) * 2 - 1
    x = c + 0.1 * torch.randn(2000, 2, generator=gen, dtype=torch.float64)  # noisy readings
    model = Quadratic(concept, 2.0)
    t = fit_temperature(model, x, c, grid=9)
    # the optimum of the grid classifier's negative log-likelihood, each label its nearest
    # grid point: a little hotter or colder is worse
    codes = candidate_grid(concept, 9).double()
    y = torch.cdist(c, codes).argmin(1)
    e = 2.0 * torch.cdist(x, codes) ** 2

    def nll(temp):
        return float(torch.nn.functional.cross_entropy(-e / temp, y))

    assert nll(t) < nll(1.05 * t) and nll(t) < nll(t / 1.05)
    assert candidate_grid(concept, 9).shape == (81, 2)
    assert candidate_grid(Concept.continuous("s", 1, 0.2, 0.4), 3).flatten().tolist() == \
        pytest.approx([0.2, 0.3, 0.4])


def test_closed_world_negation_is_the_disjunction_of_the_values_left(gen):
    from conceptebm.energies import NotAny, Or

    x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    t = 0.3
    closed = NotAny(Match(COLORS), ["red", "blue"], temperature=t, closed_world=True)
    left = Or(Match(COLORS).given("green"), Match(COLORS).given("cyan"), temperature=t)
    torch.testing.assert_close(closed(x), left(x))
    assert closed.is_grounded and "closed world" in repr(closed)
    # = the open-world energy plus the concept's marginal energy -T logsumexp(-E / T)
    open_ = NotAny(Match(COLORS), ["red", "blue"], temperature=t)(x)
    torch.testing.assert_close(closed(x), open_ - t * torch.logsumexp(x / t, 1))
    # one value left: that value's energy
    one = NotAny(Match(COLORS), ["red", "blue", "cyan"], t, closed_world=True)(x)
    torch.testing.assert_close(one, Match(COLORS).given("green")(x))


def test_not_near_excludes_the_grid_points_within_the_radius(gen):
    from conceptebm.energies import NotNear
    from conceptebm.energies.ops import candidate_grid

    concept = Concept.continuous("position", 2)  # tolerance 0.4 on [-1, 1]^2
    model = Quadratic(concept, 5.0)
    codes = candidate_grid(concept, 9).double()
    x = torch.rand(16, 2, generator=gen, dtype=torch.float64) * 2 - 1
    t = 0.2
    e = 5.0 * torch.cdist(x, codes) ** 2  # (16, 81)
    away = torch.cdist(torch.tensor([[0.5, 0.5], [-1.0, 0.0]]).double(), codes) > 0.4
    away = away.all(0)  # far from both values
    near = NotNear(model, [(0.5, 0.5), (-1.0, 0.0)], temperature=t)
    assert near.radius == 0.4 and int((~near.mask).sum()) == int(away.sum())
    logp = torch.log_softmax(-e / t, 1)
    torch.testing.assert_close(near(x), -t * torch.logsumexp(logp[:, away], 1))
    closed = NotNear(model, [(0.5, 0.5), (-1.0, 0.0)], t, closed_world=True)
    torch.testing.assert_close(closed(x), -t * torch.logsumexp(-e[:, away] / t, 1))
    assert not near.is_grounded and closed.is_grounded
    # an x at the value costs more than one far from it; per chain values give per chain masks
    at = NotNear(model, [torch.tensor([[0.5, 0.5], [-0.5, -0.5]])], t, radius=0.3)
    xs = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    ea = at(xs)
    assert ea[0] > 0.3 and ea[1] < 1e-6 and at.mask.shape == (2, 81)
    for bad, match in (([], "non-empty"), ([(0.0, 0.0)], "not all")):
        with pytest.raises(ValueError, match=match):
            NotNear(model, bad, t, radius=5.0 if bad else None)
    with pytest.raises(ValueError, match="continuous"):
        NotNear(Match(COLORS), [(0.0, 0.0)], t)
    with pytest.raises(ValueError, match="give a radius"):
        NotNear(Quadratic(Concept.continuous("s", 1), 1.0), [0.0], t)


def test_not_near_reads_a_late_net_once_per_image(gen):
    from conceptebm.energies import LateEnergyNet, NotNear

    concept = Concept.continuous("position", 2)
    net = LateEnergyNet(concept, image_size=16, width=4, features=8).double()
    x = torch.rand(3, 3, 16, 16, generator=gen, dtype=torch.float64)
    near = NotNear(net, [(0.0, 0.0)], temperature=0.5, grid=5)
    calls = []
    net.register_forward_pre_hook(lambda *a: calls.append(1))  # full passes, one per value
    e_late = near.candidate_energies(x)
    assert not calls  # trunk once, head per value
    loop = torch.stack([net(x, c.expand(3, -1)) for c in near.codes.to(x)], 1)
    torch.testing.assert_close(e_late, loop)

"""map_estimate / concept_energy / map_categorical against analytic minima."""

import math

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.infer import (
    ConceptProblem,
    concept_energy,
    concept_grid,
    map_categorical,
    map_estimate,
)
from conceptebm.infer.optimize import ConceptEnergy

F64 = torch.float64
BOX = ([-1.0, -1.0], [1.0, 1.0])


class SquaredDistance(ConditionalEnergy):
    """E(x|c) = |x - c|^2 / (2 s^2): the MAP of c given x (inside the box) is x itself."""

    def __init__(self, concept, s=0.2):
        super().__init__(concept)
        self.s = s

    def energy(self, x, c):
        return ((x - c) ** 2).sum(-1) / (2 * self.s**2)


POS = Concept.continuous("position", dim=2)


def _bimodal(minor, major, width=0.1, depth_gap=1.0):
    """c (B, R, d) -> (B, R): two wells per observation; ``major`` is deeper by ``depth_gap``."""

    def energy(c):
        d1 = ((c - minor[:, None]) ** 2).sum(-1) / (2 * width**2)
        d2 = ((c - major[:, None]) ** 2).sum(-1) / (2 * width**2) - depth_gap
        return -torch.logsumexp(torch.stack([-d1, -d2]), 0)

    return energy


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_gaussian_minimum_inside_and_on_the_boundary(optimizer):
    # second target lies outside the box in its first coordinate: the MAP is on the face.
    target = torch.tensor([[0.3, -0.5], [1.4, 0.2], [-0.75, 0.9]], dtype=F64)
    f = lambda c: ((c - target[:, None]) ** 2).sum(-1)  # (B, R, 2) -> (B, R)
    r = map_estimate(f, bounds=BOX, grid=9, batch_size=3, optimizer=optimizer, steps=200)
    expect = target.clamp(-1, 1)
    assert r.c.shape == (3, 2) and r.energy.shape == (3,)
    assert torch.allclose(r.c.to(F64), expect, atol=1e-4)
    assert r.c[1, 0].item() == 1.0  # exactly on the face, not 0.9999
    torch.testing.assert_close(r.energy, f(r.c[:, None].to(F64))[:, 0])


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_no_pull_toward_the_centre_near_the_boundary(optimizer):
    # An object at 0.93 of [-1, 1]: a reparameterised *density* would bias this to ~0.91
    # (the Jacobian of the logit transform pulls it inward); optimising the energy itself does not.
    x = torch.tensor([[0.93, -0.97]], dtype=F64)
    r = map_estimate(concept_energy(SquaredDistance(POS, s=0.05), x), grid=11,
                     optimizer=optimizer, steps=300)
    torch.testing.assert_close(r.c, x, atol=2e-4, rtol=0)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_grid_finds_the_global_minimum_where_a_local_start_would_not(optimizer):
    minor = torch.tensor([[-0.6, 0.5], [0.4, 0.4]], dtype=F64)
    major = torch.tensor([[0.5, -0.3], [-0.5, -0.6]], dtype=F64)
    f = _bimodal(minor, major)
    near_minor = minor + 0.1
    local = map_estimate(f, bounds=BOX, init=near_minor, optimizer=optimizer, steps=200)
    torch.testing.assert_close(local.c, minor, atol=1e-3, rtol=0)  # stuck in the minor well
    r = map_estimate(f, bounds=BOX, grid=15, init=near_minor, optimizer=optimizer, steps=200)
    torch.testing.assert_close(r.c, major, atol=1e-3, rtol=0)
    assert (r.energy < local.energy - 0.9).all()  # the wells differ by 1 nat
    assert r.candidates.shape == (2, 2, 2) and r.starts.shape == (2, 2, 2)


@pytest.mark.parametrize(("optimizer", "atol"), [("adam", 1e-12), ("lbfgs", 1e-5)])
def test_batch_equals_one_at_a_time(optimizer, atol):
    # Adam is elementwise, so batching is exact; LBFGS shares its line search across the
    # batch, so the batched answer agrees to the optimiser's tolerance.
    gen = torch.Generator().manual_seed(0)
    minor = torch.rand(6, 2, generator=gen, dtype=F64) * 1.6 - 0.8
    major = torch.rand(6, 2, generator=gen, dtype=F64) * 1.6 - 0.8
    batched = map_estimate(_bimodal(minor, major, width=0.3), bounds=BOX, grid=7, restarts=2,
                           optimizer=optimizer, steps=150, batch_size=6)
    for i in range(6):
        one = map_estimate(_bimodal(minor[i:i + 1], major[i:i + 1], width=0.3), bounds=BOX,
                           grid=7, restarts=2, optimizer=optimizer, steps=150, batch_size=1)
        torch.testing.assert_close(batched.c[i:i + 1], one.c, atol=atol, rtol=0)


def test_grid_starts_are_the_best_grid_points_and_never_get_worse():
    x = torch.tensor([[0.3, -0.2], [-0.9, 0.8]], dtype=F64)
    e = concept_energy(SquaredDistance(POS), x)
    grid = concept_grid(POS, 5, dtype=F64)
    r = map_estimate(e, grid=grid, restarts=3, init=torch.zeros(2, dtype=F64), steps=5)
    ge = e(grid.expand(2, -1, -1))  # (B, G)
    best3 = ge.topk(3, largest=False).values
    torch.testing.assert_close(e(r.starts[:, :3]), best3)
    torch.testing.assert_close(r.starts[:, 3], torch.zeros(2, 2, dtype=F64))  # the init
    assert (r.candidate_energy <= e(r.starts) + 1e-12).all()
    pure = map_estimate(e, grid=grid, steps=0)  # steps=0 is a pure grid search
    torch.testing.assert_close(pure.energy, ge.min(1).values)


def test_random_starts_follow_the_generator():
    f = _bimodal(torch.tensor([[-0.5, 0.5]], dtype=F64), torch.tensor([[0.5, -0.5]], dtype=F64))
    a, b, c = (map_estimate(f, bounds=BOX, batch_size=1, restarts=8, steps=0,
                            generator=torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    assert torch.equal(a.starts, b.starts) and a.starts.shape == (1, 8, 2)
    assert not torch.equal(a.starts, c.starts)
    assert ((a.starts >= -1) & (a.starts <= 1)).all()


def test_concept_energy_flattens_correctly_and_sums_views():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 4, 2, generator=gen, dtype=F64)  # (B, V, 2)
    c = torch.rand(3, 5, 2, generator=gen, dtype=F64)  # (B, R, 2)
    cond = SquaredDistance(POS)
    multi = concept_energy(cond, x, views=True)(c)
    single = concept_energy(cond, x[:, 0])(c)
    assert multi.shape == (3, 5) and single.shape == (3, 5)
    for b in range(3):
        for r in range(5):
            assert single[b, r].item() == pytest.approx(cond(x[b, :1], c[b, r][None]).item())
            direct = sum(cond(x[b, v][None], c[b, r][None]).item() for v in range(4))
            assert multi[b, r].item() == pytest.approx(direct)
    # and the multi-view MAP of a sum of quadratics is the mean of the views (eq. 11)
    r = map_estimate(concept_energy(cond, x * 1.6 - 0.8, views=True), grid=9,
                     optimizer="lbfgs")
    torch.testing.assert_close(r.c, (x * 1.6 - 0.8).mean(1), atol=1e-6, rtol=0)


def test_map_categorical_enumerates():
    color = Concept.categorical("color", ["red", "green", "blue"])
    e = SquaredDistance(color)
    x = torch.eye(3, dtype=F64)[[2, 0, 1]]
    r = map_categorical(e, x, event_dim=1)
    assert r.index.tolist() == [2, 0, 1] and r.names == ["blue", "red", "green"]
    assert r.energies.shape == (3, 3)
    red = torch.eye(3, dtype=F64)[[0, 0, 0]]
    # views (B, V=3, 3): the energies add, so the majority of views wins
    assert map_categorical(e, torch.stack([x, x, red], 1), event_dim=1,
                           views=True).index.tolist() == [2, 0, 1]
    assert map_categorical(e, torch.stack([x, red, red], 1), event_dim=1,
                           views=True).index.tolist() == [0, 0, 0]
    assert map_categorical(e, x[0], event_dim=1).index.tolist() == [2]  # one observation
    with pytest.raises(ValueError, match="categorical concept"):
        map_categorical(SquaredDistance(POS), x[:, :2], event_dim=1)


def test_concept_problem_carries_what_map_estimate_needs():
    x = torch.tensor([[0.5, -0.25], [-0.5, 0.75]], dtype=F64)
    p = concept_energy(SquaredDistance(POS), x)
    assert isinstance(p, ConceptProblem) and isinstance(p.energy, ConceptEnergy)
    assert (p.batch_size, p.dim, p.bounds, p.dtype) == (2, 2, POS, F64)
    # the same problem as a plain callable with batch_size and bounds given by hand
    by_hand = map_estimate(p.energy, bounds=POS, batch_size=2, init=torch.zeros(2, dtype=F64),
                           grid=5)
    mine = map_estimate(p, grid=5, init=torch.zeros(2, dtype=F64))
    assert torch.equal(by_hand.c, mine.c) and torch.equal(by_hand.candidates, mine.candidates)
    torch.testing.assert_close(mine.c, x, atol=1e-4, rtol=0)
    # an explicit problem over a plain function, with its own box and dtype
    q = ConceptProblem(lambda c: ((c - 0.3) ** 2).sum(-1), batch_size=3, dim=1,
                       bounds=(0.0, 1.0), dtype=F64)
    r = map_estimate(q, grid=11)
    assert r.c.dtype == F64 and r.c.shape == (3, 1)
    torch.testing.assert_close(r.c, torch.full((3, 1), 0.3, dtype=F64))
    with pytest.raises(ValueError, match="batch_size=4 disagrees with the problem's 3"):
        map_estimate(q, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1.*got 0"):
        ConceptProblem(lambda c: c.sum(-1), batch_size=0)
    with pytest.raises(TypeError, match="energy must be callable"):
        ConceptProblem(3.0, batch_size=1)
    with pytest.raises(TypeError, match="energy_of_c must be a ConceptProblem or a callable"):
        map_estimate("not a function", bounds=BOX, batch_size=1)


def test_bad_input_is_rejected_clearly():
    f = lambda c: (c**2).sum(-1)
    ok = {"bounds": BOX, "batch_size": 2}
    with pytest.raises(ValueError, match="low < high in every coordinate"):
        map_estimate(f, bounds=([-1, 1], [1, 1]), batch_size=2)
    with pytest.raises(ValueError, match="init must lie inside bounds"):
        map_estimate(f, bounds=BOX, init=torch.tensor([[0.0, 1.5], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"init must have shape \(2,\), \(2, 2\)"):
        map_estimate(f, bounds=BOX, init=torch.zeros(3, 2), batch_size=2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        map_estimate(f, optimizer="sgd", **ok)
    with pytest.raises(ValueError, match="restarts=50 exceeds the 25 grid points"):
        map_estimate(f, grid=5, restarts=50, **ok)
    with pytest.raises(ValueError, match="cannot tell the number of observations"):
        map_estimate(f, bounds=BOX, grid=5)
    with pytest.raises(ValueError, match="bounds are required"):
        map_estimate(f, batch_size=2, grid=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="scalar bounds do not say the concept's dimension"):
        map_estimate(f, bounds=(-1.0, 1.0), batch_size=2)
    for kw, match in [({"steps": -1}, "steps must be"), ({"lr": 0.0}, "lr must be > 0"),
                      ({"restarts": 0}, "restarts must be"), ({"chunk_size": 0}, "chunk_size")]:
        with pytest.raises(ValueError, match=match):
            map_estimate(f, **ok, **kw)
    with pytest.raises(ValueError, match=r"returned shape \(2, 1, 1\).*reduce the last dim"):
        map_estimate(lambda c: c[..., :1] ** 2, **ok)
    with pytest.raises(ValueError, match=r"2 low and 2 high values for a concept of dim 3"):
        map_estimate(f, grid=torch.zeros(4, 3), **ok)
    with pytest.raises(ValueError, match="grid points must lie inside the bounds"):
        map_estimate(f, grid=torch.full((4, 2), 2.0), **ok)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_nan_energy_raises_naming_the_observation(optimizer):
    def f(c):  # NaN in the right half-plane for observation 1 only
        e = (c**2).sum(-1)
        bad = (c[..., 0] > 0.5) & (torch.arange(2)[:, None] == 1)
        return torch.where(bad, torch.full_like(e, math.nan), e)

    with pytest.raises(FloatingPointError, match=r"NaN on the grid for observations \[1\]"):
        map_estimate(f, bounds=BOX, grid=5, batch_size=2, optimizer=optimizer)
    init = torch.tensor([[0.9, 0.0], [0.9, 0.0]])
    with pytest.raises(FloatingPointError, match=r"NaN during .* for observations \[1\]"):
        map_estimate(f, bounds=BOX, init=init, optimizer=optimizer)


class Weighted(SquaredDistance):
    """SquaredDistance with a trainable scale: MAP must not write its parameter gradients."""

    def __init__(self):
        super().__init__(POS)
        self.w = torch.nn.Parameter(torch.tensor(1.0, dtype=F64))

    def energy(self, x, c):
        return self.w * super().energy(x, c)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_map_leaves_network_gradients_alone_and_works_under_no_grad(optimizer):
    net = Weighted()
    x = torch.tensor([[0.2, -0.3]], dtype=F64)
    with torch.no_grad():  # e.g. called from an evaluation loop
        r = map_estimate(concept_energy(net, x), grid=5, optimizer=optimizer, steps=50)
    torch.testing.assert_close(r.c, x, atol=1e-4, rtol=0)
    assert net.w.grad is None


def test_written_out_adam_matches_torch_adam_with_cosine_schedule_bit_for_bit():
    # MAP refinement spells Adam + CosineAnnealingLR out (torch's optimizer costs an import of
    # torch._dynamo per process); the arithmetic must be torch's exactly.
    from conceptebm.infer.optimize import _AdamCosine

    gen = torch.Generator().manual_seed(3)
    start = torch.randn(4, 5, 2, generator=gen)
    grads = [torch.randn(4, 5, 2, generator=gen) * 10 ** torch.randint(-3, 3, (), generator=gen)
             for _ in range(25)]
    ours, theirs = start.clone(), start.clone().requires_grad_(True)
    adam = _AdamCosine(ours, lr=0.02, t_max=25)
    opt = torch.optim.Adam([theirs], lr=0.02, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=25, eta_min=0.02 / 100)
    for g in grads:
        adam.step(g)
        theirs.grad = g.clone()
        opt.step()
        sched.step()
        assert adam.lr == opt.param_groups[0]["lr"]
    assert torch.equal(ours, theirs.detach())
    assert not torch.equal(ours, start)

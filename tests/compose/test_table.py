import torch

from conceptebm.compose.table import ROWS, count_objects, draw_targets, extra_rows, row_energy
from conceptebm.concepts import Concept
from conceptebm.datasets import PALETTE, make_dataset
from conceptebm.energies import ConditionalEnergy


class Target(ConditionalEnergy):
    """E(x|c) = |x[:, :dim] - c|^2 on vector 'images'."""

    def energy(self, x, c):
        return ((x[:, : self.concept.dim] - c) ** 2).sum(1)


MODELS = {
    "position": Target(Concept.continuous("position", 2)),
    "color": Target(Concept.categorical("color", list(PALETTE))),
    "shape": Target(Concept.categorical("shape", ["sphere", "cube", "cylinder"])),
    "size": Target(Concept.continuous("size", 1, 0.25, 0.45)),
}


def test_targets_respect_the_row_definitions(gen):
    t = draw_targets(2000, 8, gen)
    assert (t["pos1"] <= -0.4).all() and (t["pos2"] >= 0.4).all()
    assert (t["col1"] != t["col2"]).all()
    assert t["pos"].abs().max() <= 1 and 0.25 <= t["size"].min() and t["size"].max() <= 0.45


def test_every_row_builds_one_chain_per_target(gen):
    t = draw_targets(6, 8, gen)
    x = torch.randn(6, 8)
    for row in (*ROWS, *extra_rows(8)):
        e = row_energy(row, t, MODELS, alpha=0.1, temperature=0.5, scales=None)
        assert e(x).shape == (6,), row.key


def test_implication_negates_every_color_but_the_target(gen):
    t = draw_targets(5, 8, gen)
    row = next(r for r in extra_rows(8) if r.key == "implication")
    e = row_energy(row, t, MODELS, alpha=0.1, temperature=1.0, scales=None)
    onehot = torch.nn.functional.one_hot(t["col"], 8).float()
    x = torch.cat([t["pos"], torch.zeros(5, 6)], 1)
    # E = 7 |x-pos|^2 - 0.1 sum_{k != col} |x[:8] - e_k|^2 over the 7 other colors
    others = [torch.nn.functional.one_hot((t["col"] + k) % 8, 8).float() for k in range(1, 8)]
    hand = 7 * ((x[:, :2] - t["pos"]) ** 2).sum(1) - 0.1 * sum(
        ((x[:, :8] - o) ** 2).sum(1) for o in others)
    torch.testing.assert_close(e(x), hand)
    assert not any((o == onehot).all(1).any() for o in others)
    # the same statement with the position once: its energy enters once, the negations alike
    once = next(r for r in extra_rows(8) if r.key == "implication_once")
    e1 = row_energy(once, t, MODELS, alpha=0.1, temperature=1.0, scales=None)
    torch.testing.assert_close(e1(x), hand - 6 * ((x[:, :2] - t["pos"]) ** 2).sum(1))


def test_scores_of_perfect_and_wrong_predictions(gen):
    t = draw_targets(50, 8, gen)
    row = next(r for r in ROWS if r.key == "pos_and_color")
    perfect = row.scores({"position": t["pos"], "color": t["col"]}, t)
    assert perfect["pos_acc"].value == 1 and perfect["color_acc"].value == 1
    wrong = row.scores({"position": -t["pos"] + 2.0, "color": (t["col"] + 1) % 8}, t)
    assert wrong["color_acc"].value == 0 and wrong["pos_acc"].value < 0.1
    orow = next(r for r in ROWS if r.key == "pos1_or_pos2")
    half = torch.where(torch.arange(50)[:, None] % 2 == 0, t["pos1"], t["pos2"])
    s = orow.scores({"position": half, "color": t["col"]}, t)
    assert s["pos1_acc"].value == 0.5 and s["pos2_acc"].value == 0.5
    assert s["either_acc"].value == 1


def test_object_counter_on_real_two_object_renders():
    ds = make_dataset("two_objects", size=120, seed=5)
    x, labels = ds.batch(torch.arange(120))
    counts, cents = count_objects(x)
    # Objects touching on screen are split by color; same-color touching pairs can merge.
    assert (counts == 2).float().mean() >= 0.95
    one, _ = count_objects(make_dataset("position", size=60, seed=1).batch(range(60))[0])
    assert (one == 1).float().mean() >= 0.95


def test_an_image_without_an_object_fails_its_row(gen):
    t = draw_targets(4, 8, gen)
    present = torch.tensor([True, True, False, False])
    row = next(r for r in ROWS if r.key == "pos_and_color")
    s = row.scores({"position": t["pos"], "color": t["col"]}, t, present=present)
    assert s["pos_acc"].value == 0.5 and s["color_acc"].value == 0.5
    assert s["object_rate"].value == 0.5 and s["pos_err"].value == 0  # errors: as judged
    # a rate that should be low (the negated colour shown) counts a blank image as a failure
    neg = next(r for r in ROWS if r.key == "pos_and_not_color")
    s = neg.scores({"position": t["pos"], "color": (t["col"] + 1) % 8}, t, present=present)
    assert s["color_acc"].value == 0.5 and s["pos_acc"].value == 0.5
    blank = torch.full((4, 3, 32, 32), 0.5)  # grey: no saturated pixel, no object
    s = row.scores({"position": t["pos"], "color": t["col"]}, t, blank)
    assert s["object_rate"].value == 0 and s["pos_acc"].value == 0


def test_real_renders_show_the_targets_a_row_asked_for(gen):
    from conceptebm.compose.table import real_targets, render_targets
    from conceptebm.evaluate import load_judges

    t = draw_targets(24, 8, gen)
    row = next(r for r in ROWS if r.key == "or_of_ands")
    branch = torch.arange(24) % 2
    fixed = real_targets(row, t, branch)
    assert torch.equal(fixed["color"], torch.where(branch == 0, t["col1"], t["col2"]))
    x = render_targets(fixed, 24, seed=3)
    read = load_judges().predict(x)
    assert (read["color"] == fixed["color"]).float().mean() >= 0.9
    near = (read["position"] - fixed["position"]).norm(dim=1) < 0.4
    assert near.float().mean() >= 0.9

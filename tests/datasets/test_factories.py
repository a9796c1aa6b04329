"""Each factory's label distribution matches its definition (scene sampling only: no render).

Uniformity checks use Kolmogorov-Smirnov / chi-square tests at fixed seeds with p > 1e-3, and
means within 4.5 standard errors; they are deterministic and pass at these seeds with margin.
"""

import math

import pytest
import torch
from scipy import stats

from conceptebm.datasets import PALETTE, SHAPES, SIZE_RANGE, make_dataset
from conceptebm.datasets.factories import cross_product_region
from conceptebm.datasets.sampling import GAP

N = 4000
PURPLE, YELLOW = list(PALETTE).index("purple"), list(PALETTE).index("yellow")


def _labels(name, n=N, seed=0, **opts):
    return make_dataset(name, size=n, seed=seed, **opts).scenes_and_labels(range(n))


def _uniform_p(x, lo, hi):
    return stats.kstest(x.double().numpy(), stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue


def _categorical_p(x, k):
    counts = torch.bincount(x.flatten(), minlength=k).double().numpy()
    return stats.chisquare(counts).pvalue


@pytest.mark.parametrize("name", ["position", "color", "shape", "size", "general"])
def test_single_concept_sets_vary_everything(name):
    _, lab = _labels(name)
    pos = lab["position"]
    for axis in range(2):
        assert _uniform_p(pos[:, axis], -1, 1) > 1e-3
    assert abs(pos.mean()) < 4.5 * math.sqrt(1 / 3 / (2 * N))
    assert _uniform_p(lab["size"][:, 0], *SIZE_RANGE) > 1e-3
    assert _categorical_p(lab["color"], len(PALETTE)) > 1e-3
    assert _categorical_p(lab["shape"], len(SHAPES)) > 1e-3
    assert (lab["view"] == lab["view"][0]).all()  # the default camera throughout
    light = lab["light"]
    assert (light[:, 1] >= 45).all() and (light[:, 1] <= 70).all()


def test_single_concept_sets_differ_by_name_and_seed():
    a = _labels("position", 50)[1]["position"]
    assert not torch.equal(a, _labels("color", 50)[1]["position"])
    assert not torch.equal(a, _labels("position", 50, seed=1)[1]["position"])


def test_continual_stages():
    _, lab = _labels("continual_position", 500)
    assert (lab["color"] == PURPLE).all() and (lab["shape"] == SHAPES.index("cube")).all()
    _, lab = _labels("continual_shape", 500)
    assert (lab["color"] == PURPLE).all()
    assert _categorical_p(lab["shape"], 3) > 1e-3
    _, lab = _labels("continual_color", 2000)
    assert _categorical_p(lab["color"], len(PALETTE)) > 1e-3
    _, lab = _labels("continual_position", 20, color="red", shape="sphere")
    assert (lab["color"] == 0).all() and (lab["shape"] == 0).all()


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3])
def test_cross_product_splits(fraction):
    a = cross_product_region(fraction)
    assert (1 - a) ** 2 / 4 == pytest.approx(fraction)  # region area share
    large = SIZE_RANGE[1]
    _, tr = _labels("cross_product", fraction=fraction, split="train")
    inside = (tr["position"] >= a).all(-1)
    # positions uniform: the share inside the region is binomial(N, fraction)
    assert abs(inside.double().mean() - fraction) < 4.5 * math.sqrt(fraction * (1 - fraction) / N)
    assert (tr["size"][~inside] == large).all()
    if inside.sum() > 20:
        assert _uniform_p(tr["size"][inside, 0], SIZE_RANGE[0], large) > 1e-3
    assert (tr["shape"] == 0).all() and (tr["color"] == YELLOW).all()

    _, te = _labels("cross_product", fraction=fraction, split="test")
    assert not (te["position"] >= a).all(-1).any()  # only held-out positions
    assert (te["size"] < large).all()
    # uniform on the L-shaped complement: x below a with probability (a + 1) * 2 / area
    share_left = (a + 1) * 2 / (4 * (1 - fraction))
    left = (te["position"][:, 0] < a).double().mean()
    assert abs(left - share_left) < 4.5 * math.sqrt(share_left * (1 - share_left) / N)

    _, sz = _labels("cross_product", 500, fraction=fraction, split="size")
    assert (sz["position"] >= a).all()
    _, ps = _labels("cross_product", 500, fraction=fraction, split="position")
    assert (ps["size"] == large).all()
    with pytest.raises(ValueError, match="split"):
        make_dataset("cross_product", split="nope")
    with pytest.raises(ValueError, match="fraction"):
        make_dataset("cross_product", fraction=0)


def test_two_objects_never_overlap_and_differ_in_colour():
    _, lab = _labels("two_objects", 2000)
    pos, size = lab["position"], lab["size"][..., 0]  # (B, 2, 2), (B, 2)
    assert pos.shape == (2000, 2, 2) and lab["color"].shape == (2000, 2)
    gap = (pos[:, 0] - pos[:, 1]).abs().amax(-1) - size.sum(-1)
    assert (gap > GAP).all()
    assert (lab["color"][:, 0] != lab["color"][:, 1]).all()
    # each object's position is still spread over the whole square
    assert pos.amin() < -0.95 and pos.amax() > 0.95
    _, three = _labels("two_objects", 1000, n_objects=3)
    pos, size = three["position"], three["size"][..., 0]
    assert pos.shape == (1000, 3, 2)
    gap = (pos[:, :, None] - pos[:, None]).abs().amax(-1) - size[:, :, None] - size[:, None]
    assert (gap[:, ~torch.eye(3, dtype=torch.bool)] > GAP).all()


def test_clutter_is_grey_counted_and_apart():
    scene, lab = _labels("cluttered", 1000)
    active = scene.active[:, 1:]
    count = active.sum(1)
    assert count.min() >= 1 and count.max() <= 3
    rgb = scene.rgb[:, 1:]
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()  # grey
    pos, size = scene.position, scene.size
    cheb = (pos[:, :, None] - pos[:, None, :]).abs().amax(-1)
    gap = cheb - size[:, :, None] - size[:, None, :]
    both = scene.active[:, :, None] & scene.active[:, None, :] & ~torch.eye(4, dtype=torch.bool)
    assert (gap[both] > GAP).all()


def test_multiview_shares_position_only():
    ds = make_dataset("multiview", size=40, seed=0, n_views=4)
    images, labels = ds.views([0, 3])
    assert images.shape == (2, 4, 3, 32, 32)
    pos = labels["position"]
    assert (pos == pos[:, :1]).all() and not torch.equal(pos[0, 0], pos[1, 0])
    assert (labels["scene"] == torch.tensor([[0], [3]])).all()
    az = labels["view"][..., 0]
    assert (az.amax(1) - az.amin(1) > 30).all()  # views differ widely
    _, many = _labels("multiview", 2000)
    assert _uniform_p(many["view"][:, 0], -180, 180) > 1e-3
    with pytest.raises(IndexError, match="complete scenes"):
        ds.views([10])


def test_bad_options_name_the_fix():
    with pytest.raises(ValueError, match="unknown color 'pink'.*red"):
        make_dataset("position", colors=("pink",))
    with pytest.raises(ValueError, match="unknown shape"):
        make_dataset("continual_position", shape="cone")
    for n in (1, 4):
        with pytest.raises(ValueError, match="n_objects must be 2 or 3"):
            make_dataset("two_objects", n_objects=n)
    with pytest.raises(ValueError, match="clutter"):
        make_dataset("position", clutter=(3, 1))

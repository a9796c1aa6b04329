"""The nuisance-randomised position set: clutter counts, light ranges wider than any test."""

import torch
from scipy import stats

from conceptebm.datasets import make_dataset
from conceptebm.datasets.factories import ROBUST_LIGHT
from conceptebm.datasets.scene import DEFAULT_VIEW

N = 3000


def test_robust_set_randomises_clutter_and_light_not_the_camera():
    scene, lab = make_dataset("position_robust", size=N, seed=0).scenes_and_labels(range(N))
    count = scene.active[:, 1:].sum(1)
    assert count.min() == 0 and count.max() == 3  # 0-3 grey clutter objects, each count seen
    assert stats.chisquare(torch.bincount(count, minlength=4).double().numpy()).pvalue > 1e-3
    light = lab["light"].double()  # (N, 7): azimuth, elevation, intensity, ambient, rgb
    for j, (lo, hi) in enumerate(ROBUST_LIGHT):
        p = stats.kstest(light[:, j].numpy(), stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue
        assert p > 1e-3, (j, p)
    # wider than the test's unseen light (paper/benchmarks/inference.py: azimuth 100..170,
    # elevation 20..35, intensity 0.5..0.65, ambient 0.2..0.3)
    assert ((light[:, 0] > 100) & (light[:, 1] < 35)).any()
    assert torch.equal(lab["view"], torch.tensor([DEFAULT_VIEW]).expand(N, 4).to(lab["view"]))
    pos = lab["position"]
    assert pos.min() >= -1 and pos.max() <= 1 and pos.std(0).min() > 0.5

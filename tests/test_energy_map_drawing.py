"""A big energy map is drawn min-pooled (conceptebm.scenes.plots.plot_energy_map): the figure
holds at most MAX_DRAWN points a side and every basin's minimum stays on it."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from conceptebm.concepts import Concept  # noqa: E402
from conceptebm.scenes.plots import MAX_DRAWN, plot_energy_map  # noqa: E402


def test_a_big_map_is_drawn_min_pooled_and_keeps_its_basin():
    n = 2 * MAX_DRAWN + 1
    emap = torch.rand(n, n, generator=torch.Generator().manual_seed(0))
    emap[1234, 77] = -5.0  # one narrow basin, one point wide
    fig, ax = plt.subplots()
    im = plot_energy_map(ax, emap, Concept.continuous("position", 2), colorbar=False)
    drawn = im.get_array()
    assert max(drawn.shape) <= MAX_DRAWN and drawn.min() == -5.0
    # transposed for imshow: column 1234 // 3, row 77 // 3 (blocks of 3 x 3 points)
    assert drawn[77 // 3, 1234 // 3] == -5.0
    plt.close(fig)
    small = torch.rand(40, 40)
    fig, ax = plt.subplots()
    assert plot_energy_map(ax, small, Concept.continuous("position", 2)).get_array().shape \
        == (40, 40)
    plt.close(fig)

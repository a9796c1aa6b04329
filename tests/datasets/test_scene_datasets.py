"""Dataset interface: determinism per (seed, index), batch == stacked items, label shapes."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conceptebm.datasets import DATASETS, make_dataset


def test_item_is_pure_function_of_seed_and_index():
    a = make_dataset("position", size=50, seed=3)
    b = make_dataset("position", size=50, seed=3)
    img_a, lab_a = a[17]
    a.batch([0, 1, 2])  # other calls in between change nothing
    img_b, lab_b = b[17]
    assert torch.equal(img_a, img_b)
    for k in lab_a:
        assert torch.equal(lab_a[k], lab_b[k])
    other, _ = make_dataset("position", size=50, seed=4)[17]
    assert not torch.equal(img_a, other)


@pytest.mark.parametrize("name", ["position", "two_objects", "multiview", "cross_product"])
def test_batch_equals_stacked_items(name):
    ds = make_dataset(name, size=12, seed=1)
    idx = [5, 0, 11, 5]
    images, labels = ds.batch(idx)
    for j, i in enumerate(idx):
        img, lab = ds[i]
        assert torch.allclose(images[j], img, atol=1e-6)  # chunked render, same math
        for k in labels:
            assert torch.equal(labels[k][j], lab[k]), k


def test_item_types_and_ranges():
    ds = make_dataset("general", size=20, seed=0)
    img, lab = ds[0]
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32)
    assert 0 <= img.min() and img.max() <= 1
    assert lab["position"].shape == (2,) and lab["position"].dtype == torch.float32
    assert lab["size"].shape == (1,)
    assert lab["color"].dtype == torch.long and lab["color"].shape == ()
    assert lab["shape"].dtype == torch.long and lab["shape"].shape == ()
    assert lab["view"].shape == (4,) and lab["light"].shape == (7,)
    onehot = ds.concepts["color"].encode(lab["color"])
    assert onehot.shape == (8,) and onehot[lab["color"]] == 1
    assert list(ds.palette) == list(ds.concepts["color"].values)


def test_dataloader_workers_do_not_change_items():
    ds = make_dataset("position", size=8, seed=5)
    batches = []
    for workers in (0, 2):
        dl = DataLoader(ds, batch_size=4, num_workers=workers)
        batches.append(torch.cat([x for x, _ in dl]))
    assert torch.equal(batches[0], batches[1])


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="available: .*position"):
        make_dataset("nope")
    with pytest.raises(ValueError, match="unknown option"):
        make_dataset("position", colour="red")
    assert "two_objects" in DATASETS


def test_index_out_of_range():
    ds = make_dataset("position", size=3)
    with pytest.raises(IndexError, match="size 3"):
        ds.batch([3])
    assert len(list(iter(ds))) == 3  # the iteration protocol stops at IndexError


def test_streams_depend_on_name_and_scene_options_only():
    base = make_dataset("cross_product", size=20, seed=0).scenes_and_labels(range(20))[1]
    test = make_dataset("cross_product", size=20, seed=0, split="test")
    assert not torch.equal(base["light"], test.scenes_and_labels(range(20))[1]["light"])
    aa = make_dataset("cross_product", size=20, seed=0, antialias=2)
    assert torch.equal(base["light"], aa.scenes_and_labels(range(20))[1]["light"])
    big = make_dataset("cross_product", size=20, seed=0, image_size=64)
    assert torch.equal(base["position"], big.scenes_and_labels(range(20))[1]["position"])


def test_integer_like_indices():
    ds = make_dataset("position", size=5)
    a, _ = ds[np.int64(2)]
    assert torch.equal(a, ds[torch.tensor(2)][0]) and torch.equal(a, ds[-3][0])
    with pytest.raises(TypeError, match="batch"):
        ds[[1, 2]]


@pytest.mark.parametrize("name, pos, color, shape, mean, std", [
    ("position", [[0.298569, -0.276952], [0.647614, 0.050599]], [0, 1], [2, 0], 0.561327,
     0.098243),
    ("multiview", [[0.231152, 0.549312], [0.871576, -0.557432]], [0, 4], [0, 0], 0.537989,
     0.086890),
])
def test_data_stream_is_stable(name, pos, color, shape, mean, std):
    # Judges and shipped models were trained on these exact scenes: a change to sampling or
    # rendering that moves them must be deliberate (update the numbers and say so).
    images, labels = make_dataset(name, size=10, seed=0).batch([0, 7])
    assert torch.allclose(labels["position"], torch.tensor(pos), atol=1e-5)
    assert labels["color"].tolist() == color and labels["shape"].tolist() == shape
    assert images.mean().item() == pytest.approx(mean, abs=2e-5)
    assert images.std().item() == pytest.approx(std, abs=2e-5)

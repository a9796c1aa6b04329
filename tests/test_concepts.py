"""Concept specifications: encoding, validation with helpful errors, round trips."""

import pytest
import torch

from conceptebm.concepts import Concept

COLOR = Concept.categorical("color", ["red", "green", "blue"])
POS = Concept.continuous("position", dim=2, low=-1.0, high=1.0)


def test_categorical_encodings_agree():
    one_hot = torch.tensor([0.0, 0.0, 1.0])
    assert torch.equal(COLOR.encode("blue"), one_hot)
    assert torch.equal(COLOR.encode(2), one_hot)
    assert torch.equal(COLOR.encode(torch.tensor(2)), one_hot)
    assert torch.equal(COLOR.encode(one_hot), one_hot)
    batch = COLOR.encode(["green", "red"])  # a list of names is a batch
    assert torch.equal(batch, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert torch.equal(COLOR.encode(torch.tensor([1, 0])), batch)
    assert COLOR.index("green") == 1


def test_continuous_encoding_shapes_and_dtype():
    assert POS.encode((0.3, -0.2)).shape == (2,)
    assert POS.encode([[0.3, -0.2], [1.0, -1.0]]).shape == (2, 2)  # the range is inclusive
    size = Concept.continuous("size", dim=1, low=0.0, high=1.0)
    assert size.encode(0.5).shape == (1,)
    # a float64 tensor keeps its precision (float32 would round 0.3 to 0.30000001)
    c = POS.encode(torch.tensor([0.3, -0.2], dtype=torch.float64))
    assert c.dtype == torch.float64 and c[0].item() == 0.3


def test_unknown_category_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown color 'purple'; known values: red, green, blue"):
        COLOR.encode("purple")
    with pytest.raises(ValueError, match="unknown color"):
        COLOR.encode(["red", "purple"])


@pytest.mark.parametrize("bad", [3, -1, torch.tensor([0, 3])])
def test_category_index_out_of_range(bad):
    with pytest.raises(ValueError, match=r"color ind.* \[0, 2\]"):
        COLOR.encode(bad)


def test_one_hot_of_wrong_width():
    with pytest.raises(ValueError, match="one-hot of width 3"):
        COLOR.encode(torch.ones(4))


@pytest.mark.parametrize("value", [(1.5, 0.0), (0.0, -1.01), [[0.0, 0.0], [2.0, 0.0]]])
def test_continuous_out_of_range_raises_with_the_range(value):
    with pytest.raises(ValueError, match=r"position values must lie in \[-1.0, 1.0\]"):
        POS.encode(value)


@pytest.mark.parametrize("value", [(float("nan"), 0.0), (float("inf"), 0.0)])
def test_continuous_non_finite_raises(value):
    with pytest.raises(ValueError, match="finite"):
        POS.encode(value)


@pytest.mark.parametrize("value", [0.3, (0.1, 0.2, 0.3), torch.zeros(2, 2, 2)])
def test_continuous_wrong_width_raises(value):
    with pytest.raises(ValueError, match=r"position expects 2 number\(s\)"):
        POS.encode(value)


def test_continuous_given_a_name_raises():
    with pytest.raises(ValueError, match="position is continuous"):
        POS.encode("red")


def test_continuous_has_no_named_values():
    with pytest.raises(ValueError, match="continuous"):
        POS.index("red")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "p", "kind": "fuzzy", "dim": 1}, "kind must be"),
        ({"name": "p", "kind": "continuous", "dim": 0}, "dim must be >= 1"),
        ({"name": "p", "kind": "continuous", "dim": 1, "low": 1.0, "high": 1.0}, "low < high"),
        ({"name": "c", "kind": "categorical", "dim": 2, "values": ("a",)}, "1 value names"),
    ],
)
def test_invalid_specifications(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Concept(**kwargs)


def test_duplicate_category_names():
    with pytest.raises(ValueError, match="duplicate"):
        Concept.categorical("shape", ["cube", "cube"])


def test_dict_round_trip_and_format():
    for concept in (COLOR, POS):
        assert Concept.from_dict(concept.to_dict()) == concept
    assert COLOR.format(COLOR.encode("green")) == "'green'"
    assert POS.format(POS.encode((0.3, -0.2))) == "0.3,-0.2"

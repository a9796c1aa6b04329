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


def test_accuracy_tolerances_follow_the_declaration_not_the_name():
    # undeclared: a 2-d concept gets the paper's tolerances scaled to its range, a 1-d none
    assert POS.accuracy_tolerances == (0.4, 0.15)
    wide = Concept.continuous("where", dim=2, low=0.0, high=10.0)
    assert wide.accuracy_tolerances == pytest.approx((2.0, 0.75))
    assert Concept.continuous("size", low=0.2, high=0.4).accuracy_tolerances == ()
    assert COLOR.accuracy_tolerances == ()
    # declared: any name, any dimension
    angle = Concept.continuous("angle", dim=1, low=0.0, high=360.0, tolerances=(10, 5))
    assert angle.accuracy_tolerances == (10.0, 5.0)
    # tolerances are evaluation metadata: equality and old records are unchanged
    assert Concept.continuous("position", dim=2, tolerances=(0.4, 0.15)) == POS
    assert "tolerances" not in Concept.continuous("position", dim=2,
                                                  tolerances=(0.4, 0.15)).to_dict()
    back = Concept.from_dict(angle.to_dict())
    assert back == angle and back.accuracy_tolerances == (10.0, 5.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="c", kind="categorical", dim=1, values=("a",), tolerances=(0.1,)), "categorical"),
    (dict(name="x", kind="continuous", dim=1, tolerances=(0.0,)), "> 0"),
    (dict(name="x", kind="continuous", dim=1, tolerances=(float("inf"),)), "finite"),
])
def test_bad_tolerances_name_the_concept(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Concept(**kwargs)


def test_scene_concepts_declare_the_paper_position_tolerance():
    from conceptebm.datasets import scene_concepts

    concepts = scene_concepts()
    assert concepts["position"].tolerances == (0.4, 0.15)
    assert concepts["size"].accuracy_tolerances == ()


def _name_cases(path):
    """``x.name == "position"``, ``concept in ("color", "shape")``... in one source file."""
    import ast

    scene = {"position", "size", "color", "shape"}

    def literals(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {e.value for e in node.elts if isinstance(e, ast.Constant)}
        return set()

    def names_a_concept(node):
        ident = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return "name" in ident or "concept" in ident

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(names_a_concept(s) for s in sides) and any(literals(s) & scene
                                                              for s in sides):
                out.append(f"{path.name}:{node.lineno}")
    return out


def test_evaluation_and_training_have_no_special_case_by_concept_name():
    # a concept declared once flows through evaluation and training by its kind, dimension
    # and tolerances; only the scene renderer and the judges may know the scene's names
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [*sorted((root / "conceptebm" / "evaluate").glob("*.py")),
             *sorted((root / "conceptebm" / "train").glob("*.py")),
             *sorted((root / "conceptebm" / "infer").rglob("*.py")),
             root / "conceptebm" / "concepts.py",
             *sorted((root / "paper" / "benchmarks").glob("train_quality.py")),
             *sorted((root / "paper" / "benchmarks").glob("sampler_sweep.py"))]
    found = [case for f in files for case in _name_cases(f)]
    assert not found, found


def test_the_name_case_check_finds_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("if concept.name == 'position':\n    pass\nok = name in ('color', 'shape')\n")
    assert _name_cases(bad) == ["bad.py:1", "bad.py:3"]


def test_a_users_concepts_file_declares_tolerances(tmp_path):
    from conceptebm.datasets.user import concepts_from

    concepts = concepts_from({"angle": {"dim": 1, "low": 0, "high": 360, "tolerances": [10]},
                               "xy": {"dim": 2}}, "concepts.json")
    assert concepts["angle"].accuracy_tolerances == (10.0,)
    assert concepts["xy"].accuracy_tolerances == (0.4, 0.15)  # the 2-d default
    with pytest.raises(ValueError, match="concepts.json: concept 'a'.*tolerances"):
        concepts_from({"a": {"dim": 1, "tolerances": [-1]}}, "concepts.json")

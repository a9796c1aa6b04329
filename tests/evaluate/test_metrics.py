"""Metrics against values worked out by hand (including their standard errors)."""

import math

import pytest
import torch

from conceptebm.concepts import Concept
from conceptebm.evaluate.metrics import (
    Metric,
    binomial_metric,
    class_accuracy,
    mean_absolute_error,
    mean_metric,
    metric_names,
    position_accuracy,
    score_predictions,
)

CONCEPTS = {
    "position": Concept.continuous("position", dim=2),
    "size": Concept.continuous("size", dim=1, low=0.2, high=1.2),
    "color": Concept.categorical("color", ["red", "green", "blue"]),
}
# distances from the origin: 0, 0.4243, 0.5, 0.2, 0.4 (exactly on the tolerance: not correct)
PRED_POS = torch.tensor([[0.0, 0.0], [0.3, 0.3], [0.5, 0.0], [0.0, 0.2], [0.4, 0.0]],
                        dtype=torch.float64)


def test_position_accuracy_euclidean_and_strict():
    m = position_accuracy(PRED_POS, torch.zeros(5, 2), tol=0.4)
    # correct: 0 and 0.2 -> 2 of 5; [0.3, 0.3] is within 0.4 per coordinate but not in L2
    assert m.value == pytest.approx(0.4)
    assert m.stderr == pytest.approx(math.sqrt(0.4 * 0.6 / 5))
    m = position_accuracy(PRED_POS, torch.zeros(5, 2), tol=0.15)
    assert m == pytest.approx((0.2, math.sqrt(0.2 * 0.8 / 5)))


def test_mean_absolute_error_and_stderr():
    pred = torch.tensor([[0.1, 0.3], [0.0, 0.0], [0.5, -0.5]])
    m = mean_absolute_error(pred, torch.zeros(3, 2))
    # per-sample errors 0.2, 0, 0.5: mean 7/30, sample variance 19/300, se sqrt(19/300/3)
    assert m.value == pytest.approx(7 / 30)
    assert m.stderr == pytest.approx(math.sqrt(19) / 30)
    one = mean_absolute_error(torch.tensor([0.3]), torch.tensor([0.1]))
    assert one == pytest.approx((0.2, 0.0))  # a single sample has no spread to report


def test_class_accuracy_binomial_stderr():
    m = class_accuracy(torch.tensor([0, 1, 2, 1, 0]), torch.tensor([0, 1, 1, 1, 2]))
    assert m == pytest.approx((0.6, math.sqrt(0.6 * 0.4 / 5)))
    assert isinstance(m, Metric) and m.format(2) == "0.60 ± 0.22"


@pytest.mark.parametrize("bad, match", [
    (lambda: binomial_metric(torch.tensor([1, 0])), "boolean"),
    (lambda: binomial_metric(torch.zeros(0, dtype=torch.bool)), "empty"),
    (lambda: mean_metric(torch.tensor([1.0, float("nan")])), "NaN"),
    (lambda: position_accuracy(torch.zeros(3, 2), torch.zeros(4, 2)), "same shape"),
    (lambda: position_accuracy(torch.zeros(3, 3), torch.zeros(3, 3)), r"\(n, 2\)"),
    (lambda: position_accuracy(torch.zeros(3, 2), torch.zeros(3, 2), tol=0.0), "tol"),
    (lambda: class_accuracy(torch.rand(3, 3), torch.tensor([0, 1, 2])), "argmax"),
])
def test_metric_input_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_score_predictions_broadcasts_and_names_metrics():
    predictions = {
        "position": PRED_POS,
        "size": torch.tensor([[0.5], [0.7], [0.5], [0.9], [0.5]]),
        "color": torch.tensor([0, 0, 1, 0, 2]),
        "color_probs": torch.rand(5, 3),
    }
    scores = score_predictions(predictions, {"position": (0.0, 0.0), "size": 0.5,
                                             "color": "red"}, CONCEPTS)
    assert list(scores) == ["position_acc", "position_acc_0.15", "position_mae", "size_mae",
                            "color_acc"]
    assert scores["position_acc"].value == pytest.approx(0.4)
    assert scores["position_acc_0.15"].value == pytest.approx(0.2)
    # |errors| 0, 0.2, 0, 0.4, 0: mean 0.12, sample var (0.0144*3 + 0.0064 + 0.0784)/4
    assert scores["size_mae"].value == pytest.approx(0.12)
    assert scores["size_mae"].stderr == pytest.approx(math.sqrt(0.128 / 4 / 5))
    assert scores["color_acc"] == pytest.approx((0.6, math.sqrt(0.24 / 5)))
    # per-image targets: indices or one-hots give the same answer
    per_image = torch.tensor([0, 0, 1, 1, 1])
    a = score_predictions(predictions, {"color": per_image}, CONCEPTS)["color_acc"]
    b = score_predictions(predictions, {"color": torch.eye(3)[per_image]}, CONCEPTS)["color_acc"]
    names = ["red", "red", "green", "green", "green"]
    c = score_predictions(predictions, {"color": names}, CONCEPTS)["color_acc"]
    assert a == b == c == pytest.approx((0.6, math.sqrt(0.24 / 5)))
    sizes = torch.full((5,), 0.5)  # (n,) for a 1-d concept is one value per image
    assert score_predictions(predictions, {"size": sizes}, CONCEPTS)["size_mae"] == (
        scores["size_mae"])


def test_joint_accuracy_needs_every_concept_right_in_the_same_image():
    # position within 0.4 of (0, 0): images 0 and 3; colour right: images 1, 2 and 3
    predictions = {"position": PRED_POS, "color": torch.tensor([0, 0, 1, 0, 2]),
                   "size": torch.full((5, 1), 0.5)}
    targets = {"position": (0.0, 0.0), "color": torch.tensor([1, 0, 1, 0, 0])}
    scores = score_predictions(predictions, targets, CONCEPTS, joint=True)
    assert scores["position_acc"].value == pytest.approx(0.4)
    assert scores["color_acc"].value == pytest.approx(0.6)
    assert scores["all_acc"] == pytest.approx((0.2, math.sqrt(0.16 / 5)))  # image 3 alone
    assert "all_acc" not in score_predictions(predictions, targets, CONCEPTS)
    absent = torch.tensor([True, True, True, False, True])  # image 3 shows no object
    assert score_predictions(predictions, targets, CONCEPTS, present=absent,
                             joint=True)["all_acc"].value == 0
    with pytest.raises(ValueError, match="no accuracy tolerance"):
        score_predictions(predictions, {**targets, "size": 0.5}, CONCEPTS, joint=True)


@pytest.mark.parametrize("targets, match", [
    ({"shape": "cube"}, "judge knows"),
    ({"color": "purple"}, "unknown color 'purple'"),
    ({"color": 3}, r"indices must lie in \[0, 2\]"),
    ({"position": (1.5, 0.0)}, r"must lie in \[-1.0, 1.0\]"),
    ({"position": (0.1, 0.2, 0.3)}, "expects 2 number"),
])
def test_score_predictions_rejects_bad_targets(targets, match):
    predictions = {"position": PRED_POS, "color": torch.zeros(5, dtype=torch.long)}
    with pytest.raises(ValueError, match=match):
        score_predictions(predictions, targets, CONCEPTS)


def test_object_present_separates_renders_from_blank_and_grey_images():
    from conceptebm.datasets import make_dataset
    from conceptebm.evaluate import object_present

    images, _ = make_dataset("general", size=200, seed=11).batch(range(200))
    assert object_present(images).all()  # every render shows its object
    grey = torch.full((3, 3, 32, 32), 0.55)
    grey[1] += 0.02 * torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0))
    grey[2, 0, :2, :2] = 1.0  # four saturated pixels: a speck, not an object
    assert not object_present(grey.clamp(0, 1)).any()
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        object_present(images[0])


def test_blank_generations_count_as_wrong():
    concepts = {"shape": Concept.categorical("shape", ("sphere", "cube", "cylinder")),
                "position": Concept.continuous("position", dim=2)}
    pred = {"shape": torch.tensor([0, 0, 1, 1]), "position": torch.zeros(4, 2)}
    targets = {"shape": torch.tensor([0, 0, 1, 1]), "position": torch.zeros(4, 2)}
    present = torch.tensor([True, False, True, False])
    m = score_predictions(pred, targets, concepts, present=present)
    assert m["shape_acc"].value == 0.5 and m["position_acc"].value == 0.5
    assert m["object_rate"].value == 0.5
    assert m["position_mae"].value == 0.0  # errors stay as judged
    assert score_predictions(pred, targets, concepts)["shape_acc"].value == 1.0


def test_metrics_follow_kind_dimension_and_tolerances_not_names():
    # a 1-d concept named like nothing the package knows, with declared tolerances, and a
    # 2-d one on the default tolerances: the same rules as position and size
    angle = Concept.continuous("angle", dim=1, low=0.0, high=1.0, tolerances=(0.25,))
    where = Concept.continuous("where", dim=2, low=0.0, high=10.0)  # tolerances 2, 0.75
    concepts = {"angle": angle, "where": where}
    assert metric_names(angle) == ["angle_acc", "angle_mae"]
    assert metric_names(where) == ["where_acc", "where_acc_0.75", "where_mae"]
    pred = {"angle": torch.tensor([[0.1], [0.5]]), "where": torch.tensor([[1.0, 1.0],
                                                                           [5.0, 5.0]])}
    targets = {"angle": torch.tensor([[0.0], [0.0]]), "where": torch.tensor([[1.0, 2.0],
                                                                              [5.0, 5.5]])}
    m = score_predictions(pred, targets, concepts)
    assert list(m) == ["angle_acc", "angle_mae", "where_acc", "where_acc_0.75", "where_mae"]
    assert m["angle_acc"].value == 0.5 and m["angle_mae"].value == pytest.approx(0.3)
    assert m["where_acc"].value == 1.0 and m["where_acc_0.75"].value == 0.5
    # a renamed position concept is scored exactly like position
    renamed = {"pos": Concept.continuous("pos", dim=2)}
    a = score_predictions({"pos": PRED_POS}, {"pos": (0.0, 0.0)}, renamed)
    b = score_predictions({"position": PRED_POS}, {"position": (0.0, 0.0)}, CONCEPTS)
    assert [m.value for m in a.values()] == [m.value for m in b.values()]

"""The paper's Table 1 (section 4.2) as data: compositions with per-chain targets and scoring.

Each row draws ``n`` random targets, builds the composed energy with one chain per target
(a syntax tree of :mod:`conceptebm.compose.expr` whose atoms hold ``(n, dim)`` tensors, so raw
and calibrated composition share :func:`~conceptebm.compose.expr.build`), and scores the
judged generations against what the row asked for.

Rows (keys of the JSON written by ``paper/benchmarks/compose_table.py``):

========================  ==============================================================
``color``                 Color alone; position scored against an unrelated random target
``position``              Position alone; color scored against an unrelated random color
``pos_and_color``         Position AND Color
``pos_and_not_color``     Position AND NOT Color (color_acc = P(the negated color))
``not_pos_and_color``     NOT Position AND Color (pos_acc = P(within 0.4 of the negated one))
``pos1_or_pos2``          Pos1 (bottom-left) OR Pos2 (top-right)
``or_of_ands``            (Pos1 AND Col1) OR (Pos2 AND Col2)
========================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from conceptebm.compose.expr import Atom, Conj, Disj, Neg, build
from conceptebm.energies import Energy
from conceptebm.evaluate.metrics import (
    PAPER_POSITION_TOL,
    STRICT_POSITION_TOL,
    Metric,
    binomial_metric,
    mean_metric,
    position_distance,
)

__all__ = ["Row", "ROWS", "extra_rows", "row_keys", "draw_targets", "score_row", "count_objects"]

# Disjunction corners: with coordinates in [-1,-0.4] and [0.4,1] the two targets are at least
# 0.8*sqrt(2) = 1.13 apart, so "within 0.4" of one excludes the other.
CORNER_LOW = (-1.0, -0.4)
CORNER_HIGH = (0.4, 1.0)


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    tree: Callable[[dict], object]  # targets -> syntax tree
    scores: Callable[..., dict]  # (predictions, targets, images) -> {name: Metric}
    concepts: tuple[str, ...] = ("position", "color")  # models the row needs


def _uniform(n: int, low: float, high: float, gen) -> Tensor:
    return low + (high - low) * torch.rand(n, 2, generator=gen, dtype=torch.float64)


def draw_targets(
    n: int,
    num_colors: int,
    gen: torch.Generator,
    *,
    num_shapes: int = 3,
    size_range: tuple[float, float] = (0.25, 0.45),
) -> dict[str, Tensor]:
    """Random targets for every row: positions in [-1,1]^2, colors uniform, OR corners."""

    def colors():
        return torch.randint(0, num_colors, (n,), generator=gen)

    col2 = colors()
    # col2 differs from col1 so the two OR branches are distinguishable by color as well.
    col1 = (col2 + torch.randint(1, num_colors, (n,), generator=gen)) % num_colors
    return {
        "pos": _uniform(n, -1.0, 1.0, gen).float(),
        "col": colors(),
        "pos_other": _uniform(n, -1.0, 1.0, gen).float(),
        "col_other": colors(),
        "pos1": _uniform(n, *CORNER_LOW, gen).float(),
        "pos2": _uniform(n, *CORNER_HIGH, gen).float(),
        "col1": col1,
        "col2": col2,
        "shape": torch.randint(0, num_shapes, (n,), generator=gen),
        "size": (
            size_range[0]
            + (size_range[1] - size_range[0]) * torch.rand(n, 1, generator=gen, dtype=torch.float64)
        ).float(),
    }


def _near(pred: Tensor, target: Tensor, tol: float = PAPER_POSITION_TOL) -> Tensor:
    return position_distance(pred, target) < tol


def _pos_scores(pred: Tensor, target: Tensor, prefix: str = "pos") -> dict[str, Metric]:
    d = position_distance(pred, target)
    return {
        f"{prefix}_acc": binomial_metric(d < PAPER_POSITION_TOL),
        f"{prefix}_acc_0.15": binomial_metric(d < STRICT_POSITION_TOL),
        f"{prefix}_err": mean_metric(d),
    }


def _col(pred: Tensor, target: Tensor, key: str = "color_acc") -> dict[str, Metric]:
    return {key: binomial_metric(pred == target.to(pred.device))}


ROWS: tuple[Row, ...] = (
    Row(
        "color",
        "Color",
        lambda t: Atom("color", t["col"], 0),
        lambda p, t, x=None: {
            **_pos_scores(p["position"], t["pos_other"]),
            **_col(p["color"], t["col"]),
        },
    ),
    Row(
        "position",
        "Position",
        lambda t: Atom("position", t["pos"], 0),
        lambda p, t, x=None: {
            **_pos_scores(p["position"], t["pos"]),
            **_col(p["color"], t["col_other"]),
        },
    ),
    Row(
        "pos_and_color",
        "Position AND Color",
        lambda t: Conj((Atom("position", t["pos"], 0), Atom("color", t["col"], 0))),
        lambda p, t, x=None: {**_pos_scores(p["position"], t["pos"]), **_col(p["color"], t["col"])},
    ),
    Row(
        "pos_and_not_color",
        "Position AND NOT Color",
        lambda t: Conj((Atom("position", t["pos"], 0), Neg(Atom("color", t["col"], 0)))),
        lambda p, t, x=None: {**_pos_scores(p["position"], t["pos"]), **_col(p["color"], t["col"])},
    ),
    Row(
        "not_pos_and_color",
        "NOT Position AND Color",
        lambda t: Conj((Neg(Atom("position", t["pos"], 0)), Atom("color", t["col"], 0))),
        lambda p, t, x=None: {**_pos_scores(p["position"], t["pos"]), **_col(p["color"], t["col"])},
    ),
    Row(
        "pos1_or_pos2",
        "Pos1 OR Pos2",
        lambda t: Disj((Atom("position", t["pos1"], 0), Atom("position", t["pos2"], 0))),
        lambda p, t, x=None: {
            **_pos_scores(p["position"], t["pos1"], "pos1"),
            **_pos_scores(p["position"], t["pos2"], "pos2"),
            "either_acc": binomial_metric(
                _near(p["position"], t["pos1"]) | _near(p["position"], t["pos2"])
            ),
        },
    ),
    Row(
        "or_of_ands",
        "(Pos1 AND Col1) OR (Pos2 AND Col2)",
        lambda t: Disj(
            (
                Conj((Atom("position", t["pos1"], 0), Atom("color", t["col1"], 0))),
                Conj((Atom("position", t["pos2"], 0), Atom("color", t["col2"], 0))),
            )
        ),
        lambda p, t, x=None: {
            "first_acc": binomial_metric(
                _near(p["position"], t["pos1"]) & (p["color"] == t["col1"].to(p["color"].device))
            ),
            "second_acc": binomial_metric(
                _near(p["position"], t["pos2"]) & (p["color"] == t["col2"].to(p["color"].device))
            ),
            **_pos_scores(p["position"], t["pos1"], "pos1"),
            **_pos_scores(p["position"], t["pos2"], "pos2"),
        },
    ),
)


def _implication_tree(t: dict, num_colors: int, *, position_once: bool = False):
    # (Pos AND NOT Col_1) AND ... AND (Pos AND NOT Col_{K-1}) implies the one color left
    # (paper section 4.2). Chain i negates every color but its target t["col"][i].
    # position_once: Pos AND NOT Col_1 AND ... AND NOT Col_{K-1}, the same statement (A AND A
    # is A) with the position energy entering once instead of K - 1 times
    col = t["col"]
    terms = [Atom("position", t["pos"], 0)] if position_once else []
    for k in range(1, num_colors):
        if not position_once:
            terms.append(Atom("position", t["pos"], 0))
        terms.append(Neg(Atom("color", (col + k) % num_colors, 0)))
    return Conj(tuple(terms))


def count_objects(images: Tensor, *, saturation: float = 0.25, min_pixels: int = 3):
    """Objects per image: ``(counts (n,), centroids list of (k, 2) (col, row))``.

    The ground and clutter of our scenes are grey and every palette color is saturated, so an
    object is a region of saturated pixels (max - min over RGB above ``saturation``). Pixels
    are first assigned to the nearest palette chromaticity (direction of rgb - grey), then
    connected components are found per color, so touching objects of different colors stay
    apart.
    """
    from scipy import ndimage

    from conceptebm.datasets import PALETTE

    pal = torch.tensor(list(PALETTE.values()), dtype=images.dtype, device=images.device)
    pal = pal - pal.mean(1, keepdim=True)
    pal = pal / pal.norm(dim=1, keepdim=True)  # (K, 3)
    chroma = images - images.mean(1, keepdim=True)  # (n, 3, H, W)
    cls = torch.einsum("kc,nchw->nkhw", pal, chroma).argmax(1).cpu().numpy()  # (n, H, W)
    sat = (images.amax(1) - images.amin(1)).cpu().numpy() > saturation  # (n, H, W)
    counts, cents = [], []
    for m, cl in zip(sat, cls, strict=True):
        found = []
        for k in range(pal.shape[0]):
            mk = m & (cl == k)
            lab, num = ndimage.label(mk)
            if num == 0:
                continue
            sizes = ndimage.sum(mk, lab, range(1, num + 1))
            keep = [i + 1 for i, sz in enumerate(sizes) if sz >= min_pixels]
            found += ndimage.center_of_mass(mk, lab, keep) if keep else []
        counts.append(len(found))
        cents.append(torch.tensor([(c, r) for r, c in found], dtype=torch.float64).reshape(-1, 2))
    return torch.tensor(counts), cents


def _two_object_scores(t: dict, images: Tensor, tol_px: float = 3.0) -> dict[str, Metric]:
    from conceptebm.datasets import DEFAULT_VIEW, project

    n, size = images.shape[0], images.shape[-1]
    counts, cents = count_objects(images)
    view = torch.as_tensor(DEFAULT_VIEW, dtype=torch.float64).expand(n, -1)
    found = []
    for key in ("pos1", "pos2"):
        pts = torch.cat([t[key].double().cpu(), torch.zeros(n, 1, dtype=torch.float64)], 1)
        px = project(pts[:, None, :], view, size)[:, 0]  # (n, 2) (col, row) of ground point
        found.append(
            torch.tensor(
                [
                    bool(len(c)) and bool(((c - px[i]).norm(dim=1) < tol_px).any())
                    for i, c in enumerate(cents)
                ]
            )
        )
    return {
        "two_objects": binomial_metric(counts == 2),
        "both_found": binomial_metric(found[0] & found[1]),
        "mean_count": mean_metric(counts.double()),
    }


def _concept_scores(p: dict, t: dict) -> dict[str, Metric]:
    out = {
        **_pos_scores(p["position"], t["pos"]),
        **_col(p["color"], t["col"]),
        **_col(p["shape"], t["shape"], "shape_acc"),
    }
    out["size_err"] = mean_metric(
        (p["size"].reshape(-1).double().cpu() - t["size"].reshape(-1).double().cpu()).abs()
    )
    return out


def extra_rows(num_colors: int) -> tuple[Row, ...]:
    """Beyond Table 1: implication (as the paper writes it, and with the position once),
    four-concept conjunction (Figure 4), two objects (Fig. 7)."""
    return (
        Row(
            "implication",
            "(Pos AND NOT Col_k) for all k but one",
            lambda t: _implication_tree(t, num_colors),
            lambda p, t, x=None: {
                **_pos_scores(p["position"], t["pos"]),
                **_col(p["color"], t["col"]),
            },
        ),
        Row(
            "implication_once",
            "Pos AND NOT Col_k for all k but one",
            lambda t: _implication_tree(t, num_colors, position_once=True),
            lambda p, t, x=None: {
                **_pos_scores(p["position"], t["pos"]),
                **_col(p["color"], t["col"]),
            },
        ),
        Row(
            "four_concepts",
            "Shape AND Position AND Size AND Color",
            lambda t: Conj(
                (
                    Atom("shape", t["shape"], 0),
                    Atom("position", t["pos"], 0),
                    Atom("size", t["size"], 0),
                    Atom("color", t["col"], 0),
                )
            ),
            lambda p, t, x=None: _concept_scores(p, t),
            ("position", "color", "shape", "size"),
        ),
        Row(
            "two_objects",
            "Pos1 AND Pos2 (two objects)",
            lambda t: Conj((Atom("position", t["pos1"], 0), Atom("position", t["pos2"], 0))),
            lambda p, t, x=None: _two_object_scores(t, x),
            ("position",),
        ),
    )


def row_keys() -> list[str]:
    return [r.key for r in ROWS]


def row_energy(
    row: Row,
    targets: dict,
    models: Mapping,
    *,
    alpha: float,
    temperature: float,
    scales: Mapping[str, float] | None,
    temperatures: Mapping[str, float] | None = None,
    negation_weight: float = 1.0,
    closed_world: bool = False,
) -> Energy:
    """The composed energy of ``row`` with one chain per target (``temperatures``: negate
    those concepts through their classifier, ``closed_world``: as the values left,
    :func:`build`)."""
    return build(row.tree(targets), models, alpha=alpha, temperature=temperature, scales=scales,
                 temperatures=temperatures, negation_weight=negation_weight,
                 closed_world=closed_world)


def score_row(
    row: Row, predictions: dict, targets: dict, images: Tensor | None = None
) -> dict[str, Metric]:
    return row.scores(predictions, targets, images)

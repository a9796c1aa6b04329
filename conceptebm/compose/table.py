"""The paper's Table 1 (section 4.2) as data: compositions with per-chain targets and scoring.

Each row draws ``n`` random targets, builds the composed energy with one chain per target
(a syntax tree of :mod:`conceptebm.compose.expr` whose atoms hold ``(n, dim)`` tensors, so raw
and calibrated composition share :func:`~conceptebm.compose.expr.build`), and scores the
judged generations against what the row asked for. An image that shows no object
(:func:`conceptebm.evaluate.metrics.object_present`) fails its row, as in every generation
table: it counts as wrong in each accuracy (and as showing the negated value where the row
asks for a rate that should be low); errors are averaged over all images as judged, and each
row reports its ``object_rate``. :func:`real_targets` and :func:`render_targets` give real
renders of the values a row asked for (the reference of the realism column,
:func:`conceptebm.evaluate.realism`).

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
    object_present,
    position_distance,
)

__all__ = ["Row", "ROWS", "extra_rows", "row_keys", "draw_targets", "score_row", "count_objects",
           "real_targets", "render_targets"]

# Disjunction corners: with coordinates in [-1,-0.4] and [0.4,1] the two targets are at least
# 0.8*sqrt(2) = 1.13 apart, so "within 0.4" of one excludes the other.
CORNER_LOW = (-1.0, -0.4)
CORNER_HIGH = (0.4, 1.0)


@dataclass(frozen=True)
class Row:
    """One row: its syntax tree over per-chain targets and how its generations are scored.

    ``row.scores(predictions, targets, images=None, present=None)`` returns ``{name:
    Metric}``; ``present`` ``(n,)`` bool says which images show an object (computed from
    ``images`` when they are an image batch and ``present`` is not given): an image without
    one fails every accuracy of the row, and ``object_rate`` is reported.
    """

    key: str
    title: str
    tree: Callable[[dict], object]  # targets -> syntax tree
    score_fn: Callable[..., dict]  # (predictions, targets, images, present) -> {name: Metric}
    concepts: tuple[str, ...] = ("position", "color")  # models the row needs

    def scores(self, predictions: dict, targets: dict, images: Tensor | None = None,
               present: Tensor | None = None) -> dict[str, Metric]:
        if present is None and images is not None and images.dim() == 4 \
                and images.shape[1] == 3:
            present = object_present(images)
        if present is not None:
            present = torch.as_tensor(present, dtype=torch.bool).cpu()
        out = dict(self.score_fn(predictions, targets, images, present))
        if present is not None:
            out["object_rate"] = binomial_metric(present)
        return out


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


def _judged(hit: Tensor, present: Tensor | None, negated: bool = False) -> Tensor:
    """``hit`` with the images that show no object counted as failures: a miss, or, for a
    rate that should be low (``negated``: the share showing a negated value), a hit."""
    hit = hit.cpu()
    if present is None:
        return hit
    return hit | ~present if negated else hit & present


def _near(pred: Tensor, target: Tensor, tol: float = PAPER_POSITION_TOL) -> Tensor:
    return position_distance(pred, target) < tol


def _pos_scores(pred: Tensor, target: Tensor, prefix: str = "pos", present=None,
                negated: bool = False) -> dict[str, Metric]:
    d = position_distance(pred, target)
    return {
        f"{prefix}_acc": binomial_metric(_judged(d < PAPER_POSITION_TOL, present, negated)),
        f"{prefix}_acc_0.15": binomial_metric(_judged(d < STRICT_POSITION_TOL, present, negated)),
        f"{prefix}_err": mean_metric(d),
    }


def _col(pred: Tensor, target: Tensor, key: str = "color_acc", present=None,
         negated: bool = False) -> dict[str, Metric]:
    return {key: binomial_metric(_judged(pred == target.to(pred.device), present, negated))}


ROWS: tuple[Row, ...] = (
    Row(
        "color",
        "Color",
        lambda t: Atom("color", t["col"], 0),
        lambda p, t, x, ok: {
            **_pos_scores(p["position"], t["pos_other"], present=ok),
            **_col(p["color"], t["col"], present=ok),
        },
    ),
    Row(
        "position",
        "Position",
        lambda t: Atom("position", t["pos"], 0),
        lambda p, t, x, ok: {
            **_pos_scores(p["position"], t["pos"], present=ok),
            **_col(p["color"], t["col_other"], present=ok),
        },
    ),
    Row(
        "pos_and_color",
        "Position AND Color",
        lambda t: Conj((Atom("position", t["pos"], 0), Atom("color", t["col"], 0))),
        lambda p, t, x, ok: {**_pos_scores(p["position"], t["pos"], present=ok),
                             **_col(p["color"], t["col"], present=ok)},
    ),
    Row(
        "pos_and_not_color",
        "Position AND NOT Color",
        lambda t: Conj((Atom("position", t["pos"], 0), Neg(Atom("color", t["col"], 0)))),
        lambda p, t, x, ok: {**_pos_scores(p["position"], t["pos"], present=ok),
                             **_col(p["color"], t["col"], present=ok, negated=True)},
    ),
    Row(
        "not_pos_and_color",
        "NOT Position AND Color",
        lambda t: Conj((Neg(Atom("position", t["pos"], 0)), Atom("color", t["col"], 0))),
        lambda p, t, x, ok: {**_pos_scores(p["position"], t["pos"], present=ok, negated=True),
                             **_col(p["color"], t["col"], present=ok)},
    ),
    Row(
        "pos1_or_pos2",
        "Pos1 OR Pos2",
        lambda t: Disj((Atom("position", t["pos1"], 0), Atom("position", t["pos2"], 0))),
        lambda p, t, x, ok: {
            **_pos_scores(p["position"], t["pos1"], "pos1", present=ok),
            **_pos_scores(p["position"], t["pos2"], "pos2", present=ok),
            "either_acc": binomial_metric(_judged(
                _near(p["position"], t["pos1"]) | _near(p["position"], t["pos2"]), ok)
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
        lambda p, t, x, ok: {
            "first_acc": binomial_metric(_judged(
                _near(p["position"], t["pos1"]) & (p["color"] == t["col1"].to(p["color"].device)),
                ok)),
            "second_acc": binomial_metric(_judged(
                _near(p["position"], t["pos2"]) & (p["color"] == t["col2"].to(p["color"].device)),
                ok)),
            **_pos_scores(p["position"], t["pos1"], "pos1", present=ok),
            **_pos_scores(p["position"], t["pos2"], "pos2", present=ok),
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


def _concept_scores(p: dict, t: dict, present=None) -> dict[str, Metric]:
    out = {
        **_pos_scores(p["position"], t["pos"], present=present),
        **_col(p["color"], t["col"], present=present),
        **_col(p["shape"], t["shape"], "shape_acc", present=present),
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
            lambda p, t, x, ok: {
                **_pos_scores(p["position"], t["pos"], present=ok),
                **_col(p["color"], t["col"], present=ok),
            },
        ),
        Row(
            "implication_once",
            "Pos AND NOT Col_k for all k but one",
            lambda t: _implication_tree(t, num_colors, position_once=True),
            lambda p, t, x, ok: {
                **_pos_scores(p["position"], t["pos"], present=ok),
                **_col(p["color"], t["col"], present=ok),
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
            lambda p, t, x, ok: _concept_scores(p, t, ok),
            ("position", "color", "shape", "size"),
        ),
        Row(
            "two_objects",
            "Pos1 AND Pos2 (two objects)",
            lambda t: Conj((Atom("position", t["pos1"], 0), Atom("position", t["pos2"], 0))),
            lambda p, t, x, ok: _two_object_scores(t, x),
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
    row: Row, predictions: dict, targets: dict, images: Tensor | None = None,
    present: Tensor | None = None,
) -> dict[str, Metric]:
    return row.scores(predictions, targets, images, present)


def _alternate(n: int) -> Tensor:
    return torch.arange(n) % 2  # chain i follows branch i mod 2


def real_targets(row: Row, targets: dict, branch: Tensor | None = None) -> dict[str, Tensor]:
    """What a real render of each chain's target fixes: ``{"position": (n, 2), "color":
    (n,), ...}`` (a value a row leaves free is left out: the renderer draws it).

    A negated value is replaced by another (the next colour for NOT Color; a free position
    for NOT Position); a disjunction takes the branch each chain followed (``branch`` (n,),
    as :func:`conceptebm.compose.generate.choose_branches` drew it; chains alternate without
    it). ``two_objects`` has no single-object reference: ``{}``.

    Example:
        >>> t = draw_targets(4, 8, torch.Generator().manual_seed(0))
        >>> row = next(r for r in ROWS if r.key == "pos_and_not_color")
        >>> bool((real_targets(row, t)["color"] != t["col"]).all())
        True
    """
    n = targets["pos"].shape[0]
    pos, col = targets["pos"], targets["col"]
    from conceptebm.datasets import PALETTE

    k = len(PALETTE)
    if row.key in ("pos1_or_pos2", "or_of_ands"):
        b = (branch if branch is not None else _alternate(n)).to(pos.device)[:, None]
        out = {"position": torch.where(b == 0, targets["pos1"], targets["pos2"])}
        if row.key == "or_of_ands":
            out["color"] = torch.where(b[:, 0] == 0, targets["col1"], targets["col2"])
        return out
    table = {
        "color": {"color": col},
        "position": {"position": pos},
        "pos_and_color": {"position": pos, "color": col},
        "pos_and_not_color": {"position": pos, "color": (col + 1) % k},
        "not_pos_and_color": {"color": col},
        "implication": {"position": pos, "color": col},
        "implication_once": {"position": pos, "color": col},
        "four_concepts": {"position": pos, "color": col, "shape": targets["shape"],
                          "size": targets["size"]},
    }
    return dict(table.get(row.key, {}))


def render_targets(fixed: Mapping[str, Tensor], n: int, *, seed: int,
                   image_size: int = 32) -> Tensor:
    """``n`` real renders ``(n, 3, S, S)`` of single-object scenes (``make_dataset("general",
    seed=seed)``: shape, size, light drawn as in training) with the values in ``fixed``
    (``position`` (n, 2), ``color`` (n,) palette indices, ``shape`` (n,), ``size`` (n, 1))
    put in.

    Example:
        >>> x = render_targets({"color": torch.zeros(3, dtype=torch.long)}, 3, seed=1)
        >>> x.shape
        torch.Size([3, 3, 32, 32])
    """
    from conceptebm.datasets import make_dataset
    from conceptebm.datasets.scene import palette_tensor

    unknown = sorted(set(fixed) - {"position", "color", "shape", "size"})
    if unknown:
        raise ValueError(f"render_targets fixes position, color, shape, size; got {unknown}")
    ds = make_dataset("general", size=n, seed=seed, image_size=image_size)
    scene, _ = ds.scenes_and_labels(range(n))
    if "position" in fixed:
        scene.position[:, 0] = fixed["position"].detach().float().cpu().reshape(n, 2)
    if "color" in fixed:
        scene.rgb[:, 0] = palette_tensor()[fixed["color"].long().cpu()].float()
    if "shape" in fixed:
        scene.shape[:, 0] = fixed["shape"].long().cpu()
    if "size" in fixed:
        scene.size[:, 0] = fixed["size"].detach().float().cpu().reshape(n)
    return ds.render_scenes(scene)

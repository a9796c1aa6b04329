"""``conceptebm demo``: compositions of the shipped concept EBMs, judged and plotted.

Generates a few images for a conjunction, a disjunction, a negation and a nested expression
from the shipped position / color models (calibrated composition, the one Langevin engine),
scores them with the shipped judges, writes ``compositions.png`` and ``report.md`` / ``.json``,
and prints where they are. ``--analytic`` runs the same operators on 2-D Gaussians instead,
checked against their closed forms (no trained models needed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from conceptebm.cli import validate
from conceptebm.energies import Gaussian, Not
from conceptebm.infer import mala
from conceptebm.plotting import save_figure

# The rows the scene demo shows: (row key, what the score columns mean)
SCENE_ROWS = ("pos_and_color", "pos1_or_pos2", "pos_and_not_color", "or_of_ands")


# ------------------------------------------------------------------------------ scenes
def target_caption(tree, values: dict[str, tuple[str, ...]] | None = None) -> str:
    """A short reading of one image's target, from the syntax tree it was built from
    (:mod:`conceptebm.compose.expr`): weights dropped, a negation written ``~``, broken after
    a disjunction; ``values`` names the categories of each categorical concept.

    Example:
        >>> from conceptebm.compose.expr import Atom, Conj, Disj, Neg
        >>> colors = {"color": ("red", "blue", "cyan")}
        >>> tree = Disj((Conj((Atom("position", (-0.79, -0.63), 0), Atom("color", 1, 0))),
        ...              Conj((Atom("position", (0.64, 0.52), 0), Neg(Atom("color", 2, 0))))))
        >>> print(target_caption(tree, colors))
        (position(-0.79,-0.63) & color('blue')) |
        (position(0.64,0.52) & ~color('cyan'))
    """
    from conceptebm.compose.expr import Atom, Conj, Neg, Weighted

    values = values or {}

    def text(node, inside: bool = False) -> str:
        if isinstance(node, Weighted):
            return text(node.term, inside)
        if isinstance(node, Atom):
            if isinstance(node.value, str):  # a category by name
                return f"{node.name}({node.value!r})"
            v = torch.as_tensor(node.value).flatten()  # a category's index, or a vector
            if node.name in values:
                return f"{node.name}({values[node.name][int(v[0])]!r})"
            return f"{node.name}({','.join(f'{float(c):.2f}' for c in v)})"
        if isinstance(node, Neg):
            return "~" + text(node.term, True)
        joint = " & " if isinstance(node, Conj) else " |\n" if not inside else " | "
        body = joint.join(text(t, True) for t in node.terms)
        return f"({body})" if inside else body

    return text(tree)


def target_positions(tree) -> list[tuple[float, float]]:
    """Every ``position`` value of one image's target tree, in order (negated ones too)."""
    from conceptebm.compose.expr import Atom

    if isinstance(tree, Atom):
        if tree.name != "position":
            return []
        x, y = torch.as_tensor(tree.value).flatten().tolist()[:2]
        return [(float(x), float(y))]
    children = getattr(tree, "terms", None) or (tree.term,)
    return [p for child in children for p in target_positions(child)]


def target_pixels(positions, image_size: int) -> list[tuple[float, float]]:
    """(column, row) pixels of each ``(x, y)`` position under the default camera, at the
    height of a mid-sized object's centre."""
    from conceptebm.datasets.scene import DEFAULT_VIEW, SIZE_RANGE, project

    xy = [(float(a), float(b)) for a, b in positions]
    if not xy:
        return []
    z = sum(SIZE_RANGE) / 2
    points = torch.tensor([[(px, py, z) for px, py in xy]])  # (1, N, 3)
    pix = project(points, torch.tensor([DEFAULT_VIEW]), image_size)[0]  # (N, 2)
    return [(float(c), float(r)) for c, r in pix]


def run_scenes(out: Path, n: int = 32, seed: int = 0, steps: int | None = None,
               device: str = "cpu", progress: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conceptebm.compose import defaults
    from conceptebm.compose.calibrate import composition_scales
    from conceptebm.compose.generate import generate_images, load_concepts
    from conceptebm.compose.table import ROWS, draw_targets, row_energy
    from conceptebm.evaluate import load_judges

    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    cm = load_concepts(("position", "color"), device=dev)
    settings = cm.settings.replace(num_steps=steps or defaults.STEPS)
    scales = composition_scales(cm.scales)
    judge = load_judges().to(dev)
    targets = draw_targets(n, cm.models["color"].concept.dim,
                           torch.Generator().manual_seed(seed))
    targets = {k: v.to(dev) for k, v in targets.items()}
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = [r for r in ROWS if r.key in SCENE_ROWS]
    names = {c: m.concept.values for c, m in cm.models.items() if m.concept.is_categorical}
    fig, axes = plt.subplots(len(rows), 8, figsize=(12, 2.1 * len(rows)))
    report = {"settings": {**settings.to_dict(), "n": n, "alpha": defaults.ALPHA,
                           "temperature": defaults.TEMPERATURE, "scales": cm.scales}}
    for r, row in enumerate(rows):
        energy = row_energy(row, targets, cm.models, alpha=defaults.ALPHA,
                            temperature=defaults.TEMPERATURE, scales=scales)
        x = generate_images(energy, n, settings, cm.image_shape, generator=gen, device=dev,
                     progress=progress)
        scores = row.scores(judge.predict(x), targets, x)
        report[row.key] = {"title": row.title,
                           "example": repr(row_energy(row, {k: v[:1] for k, v in
                                                            targets.items()}, cm.models,
                                                      alpha=defaults.ALPHA,
                                                      temperature=defaults.TEMPERATURE,
                                                      scales=scales)),
                           **{k: [m.value, m.stderr] for k, m in scores.items()}}
        for j, ax in enumerate(axes[r]):
            ax.imshow(x[j].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            # Each image's own target beside it: the expression it was drawn from, and a cross
            # where each position it names projects in the default camera.
            tree = row.tree({k: v[j:j + 1].cpu() for k, v in targets.items()})
            for col, row_px in target_pixels(target_positions(tree), x.shape[-1]):
                ax.plot(col, row_px, marker="+", color="white", markersize=7, mew=1.6)
                ax.plot(col, row_px, marker="+", color="black", markersize=5, mew=0.8)
            ax.set_xlabel(target_caption(tree, names), fontsize=4.5, labelpad=2)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(row.title.replace(" OR ", "\nOR "), fontsize=7)
    fig.suptitle("Compositions of independently trained concept EBMs (each image's target below "
                 "it; + marks a target position)", fontsize=9)
    png = save_figure(fig, out / "compositions.png", dpi=100)
    _write_report(out, report)
    report["png"] = str(png)
    return report


def _write_report(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["# conceptebm demo: judged compositions", "",
             f"{report['settings']['n']} generations per row; value +- standard error.", "",
             "| composition | scores |", "|---|---|"]
    for key in SCENE_ROWS:
        row = report[key]
        keep = [k for k in row if k.endswith("_acc") or k in ("pos_err",)]
        cells = ", ".join(f"{k} {row[k][0]:.2f}+-{row[k][1]:.2f}" for k in keep)
        lines.append(f"| {row['title']} | {cells} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ analytic
def _panels():
    a = Gaussian(torch.tensor([-1.5, 0.0], dtype=torch.float64), 0.5)
    b = Gaussian(torch.tensor([1.5, 0.0], dtype=torch.float64), 0.5)
    wide = Gaussian(torch.tensor([0.0, 0.0], dtype=torch.float64), 2.0)
    # closed forms: AND of equal-variance Gaussians is a Gaussian at the mean of the means
    # with half the variance; OR of equal-width ones puts half the mass on each.
    return [
        ("A", a, {"mean_x": -1.5}),
        ("A & B", a & b, {"mean_x": 0.0, "var_x": 0.25}),
        ("A | B", a | b, {"frac_right": 0.5}),
        # E = x^2/4 - 0.1 (x + 1.5)^2 in x: a Gaussian pushed away from A, mean +1, var 10/3.
        ("wide & ~A", wide & Not(a, alpha=0.1), {"mean_x": 1.0, "var_x": 10 / 3}),
    ]


def run_analytic(out: Path, chains: int = 2000, steps: int = 400, seed: int = 0) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    report = {}
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (name, energy, target) in zip(axes, _panels(), strict=True):
        x0 = torch.randn(chains, 2, generator=gen, dtype=torch.float64) * 2
        x, info = mala(energy, x0, num_steps=steps, step_size=0.3, adapt_steps=100,
                       generator=gen, return_info=True)
        row = {
            "expression": repr(energy),
            "mean_x": float(x[:, 0].mean()),
            "var_x": float(x[:, 0].var()),
            "frac_right": float((x[:, 0] > 0).double().mean()),
            "accept": float(info.accept_rate.mean()),
            "target": target,
        }
        report[name] = row
        ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=60, range=[[-4, 4], [-3, 3]],
                  cmap="magma")
        ax.set_title(f"{repr(energy)}\naccept {row['accept']:.2f}", fontsize=9)
        ax.set_aspect("equal")
    fig.suptitle("Composition of two Gaussian concepts, sampled with MALA")
    png = save_figure(fig, out / "analytic_composition.png", dpi=90)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    report["png"] = str(png)
    return report


# ------------------------------------------------------------------------------ CLI
def _main(args: argparse.Namespace) -> int:
    t0 = time.time()
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    if args.analytic:
        rep = run_analytic(out, chains=args.chains, steps=args.langevin_steps or 400,
                           seed=args.seed)
        for name, row in rep.items():
            if name != "png":
                print(f"{row['expression']:<48} mean_x {row['mean_x']:+.3f}  var_x "
                      f"{row['var_x']:.3f}  P(x>0) {row['frac_right']:.3f}  closed form "
                      f"{row['target']}")
    else:
        rep = run_scenes(out, n=args.n, seed=args.seed, steps=args.langevin_steps,
                         device=args.device, progress=not args.quiet)
        print((out / "report.md").read_text())
    print(f"wrote {rep['png']} and the report in {out} ({time.time() - t0:.0f} s)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="composition demo on the shipped models (PNG + report)")
    p.add_argument("--out-dir", type=validate.output_dir(), default="out/demo",
                   help="folder to write compositions.png and report.md / .json into "
                        "(default out/demo)")
    p.add_argument("-n", type=validate.integer(1, 1024), default=32,
                   help="generations per composition (1-1024)")
    p.add_argument("--langevin-steps", type=validate.integer(1, 100_000), default=None,
                   help="Langevin steps, 1-100000 (default: the models' own; MALA steps with "
                        "--analytic, 400)")
    p.add_argument("--analytic", action="store_true",
                   help="2-D Gaussian concepts against closed forms instead of scenes")
    p.add_argument("--chains", type=validate.integer(1, 1_000_000), default=2000,
                   help="chains for --analytic")
    p.add_argument("--seed", type=validate.SEED, default=0)
    p.add_argument("--device", type=validate.device(), default="cpu")
    validate.add_threads(p)
    validate.add_quiet(p)
    validate.add_deprecated(p, "--out", "--out-dir", command="demo")
    validate.add_deprecated(p, "--steps", "--langevin-steps", command="demo")
    p.set_defaults(func=_main)

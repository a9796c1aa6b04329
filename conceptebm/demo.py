"""``conceptebm demo``: composition on analytic 2-D energies, sampled by the one engine.

Two Gaussian "concepts" A and B are composed with AND, OR and a grounded NOT, sampled with
MALA, compared against their closed-form answers, and plotted to a PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from conceptebm.energies import Gaussian, Not
from conceptebm.infer import mala


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


def run(out: Path, chains: int = 2000, steps: int = 400, seed: int = 0) -> dict:
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
    fig.tight_layout()
    png = out / "analytic_composition.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    report["png"] = str(png)
    return report


def _main(args: argparse.Namespace) -> int:
    t0 = time.time()
    rep = run(Path(args.out), chains=args.chains, steps=args.steps, seed=args.seed)
    for name, row in rep.items():
        if name == "png":
            continue
        print(f"{row['expression']:<40} mean_x {row['mean_x']:+.3f}  var_x {row['var_x']:.3f}"
              f"  P(x>0) {row['frac_right']:.3f}  accept {row['accept']:.2f}  "
              f"closed form {row['target']}")
    print(f"wrote {rep['png']} and {Path(args.out) / 'report.json'} in {time.time() - t0:.1f}s")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="composition demo (writes PNGs and a report)")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--chains", type=int, default=2000)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_main)

"""Training logs: CSV files of metrics (one row per logged iteration) and a PNG of the curves.

``metrics.csv`` holds the loss terms and energies; ``eval.csv`` holds the judge scores of the
periodic evaluations. On resume, rows after the checkpoint's iteration are dropped (those
iterations are redone), so the files always describe one consistent run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from conceptebm.plotting import save_figure

__all__ = ["CsvLog", "plot_training"]


class CsvLog:
    """Append rows of named numbers to a CSV file; columns are fixed by the first row."""

    def __init__(self, path: str | Path, resume_after: int | None = None):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if resume_after is None or not self.path.exists():
            self.path.unlink(missing_ok=True)
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if float(r["iteration"]) <= resume_after]
        self.path.unlink()
        for r in keep:
            self.write(dict(r))

    def write(self, row: dict) -> None:
        if self.columns is None:
            self.columns = list(row)
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if new:
                with open(self.path, "w", newline="") as f:
                    csv.writer(f).writerow(self.columns)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.columns])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _read(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            cols.setdefault(k, []).append(float(v) if v not in ("", None) else float("nan"))
    return cols


def plot_training(out_dir: str | Path, title: str = "") -> Path | None:
    """Plot ``metrics.csv`` (and ``eval.csv`` if present) to ``loss.png``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    m, ev = _read(out_dir / "metrics.csv"), _read(out_dir / "eval.csv")
    if not m:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    it = m["iteration"]
    for key in ("loss", "cd", "contrastive", "image_contrastive", "kl"):
        if key in m:
            axes[0].plot(it, m[key], label=key, lw=0.8)
    axes[0].set_title("loss terms")
    axes[0].legend()
    for key in ("e_pos", "e_neg", "e_wrong"):  # e_wrong: the contrastive objective's
        if key in m:
            axes[1].plot(it, m[key], label=key, lw=0.8)
    axes[1].set_title("mean energies (data: e_pos, samples: e_neg, wrong labels: e_wrong)")
    axes[1].legend()
    if ev:
        for key, vals in ev.items():
            if key not in ("iteration", "time_s"):
                axes[2].plot(ev["iteration"], vals, marker="o", ms=3, label=key)
        axes[2].legend(fontsize=7)
    axes[2].set_title("evaluation (judges and/or MAP inference)")
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.suptitle(title)
    return save_figure(fig, out_dir / "loss.png", dpi=80)

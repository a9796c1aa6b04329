"""A "foreign" labelled image set: our renderer with a camera, light, palette, shape names and
size range that no shipped model saw, written as a user's folder (PNGs + ``labels.csv``).

It stands in for a user's own data in the tests, the notebook and ``paper/benchmarks/user_data.py``.
How it differs from every training set of the shipped models (``make_dataset``):

* camera: azimuth 35 deg, elevation 78 deg (nearly top-down; shipped sets: 0 / 60, multi-view
  sets 35-75), distance 7.6, field of view 28 deg, so world axes run diagonally in the image;
* light: from behind (azimuth 140-200 deg, elevation 40-55 deg), intensity 0.8-1.0,
  ambient 0.15-0.22, a warm tint (blue channel down to 0.75);
* palette: six colours of its own (``FOREIGN_PALETTE``: teal, rust, olive, navy, rose, sand),
  shape names ``ball``, ``box``, ``can``;
* sizes 0.18-0.30 (shipped: 0.25-0.45), so objects are smaller.

The CSV has the columns ``file,x,y,color,shape,size`` (a layout the loader maps: ``x, y`` ->
``position``; the palette, shape names and size range are inferred from the data).

Command line (the benchmark fixture)::

    conceptebm make-data foreign --out-dir data/foreign -n 1700

Example:
    >>> import tempfile
    >>> from conceptebm.datasets import load_images
    >>> folder = write_foreign(tempfile.mkdtemp(), n=12, seed=0)
    >>> ds = load_images(folder, infer=True)
    >>> sorted(ds.concepts), ds.concepts["shape"].values
    (['color', 'position', 'shape', 'size'], ('ball', 'box', 'can'))
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch

from conceptebm.datasets.images import write_pngs
from conceptebm.datasets.renderer import render
from conceptebm.datasets.sampling import SceneSpec, item_uniforms, name_salt, sample_scenes
from conceptebm.datasets.scene import SHAPES, Scene

__all__ = ["FOREIGN_PALETTE", "FOREIGN_SHAPES", "FOREIGN_SPEC", "foreign_batch",
           "write_foreign"]

FOREIGN_PALETTE: dict[str, tuple[float, float, float]] = {
    "teal": (0.05, 0.50, 0.50),
    "rust": (0.65, 0.28, 0.12),
    "olive": (0.50, 0.52, 0.12),
    "navy": (0.10, 0.14, 0.50),
    "rose": (0.95, 0.55, 0.65),
    "sand": (0.90, 0.80, 0.55),
}
FOREIGN_SHAPES = {"sphere": "ball", "cube": "box", "cylinder": "can"}
FOREIGN_SPEC = SceneSpec(
    size_range=(0.18, 0.30),
    view=((35.0, 35.0), (78.0, 78.0), (7.6, 7.6), (28.0, 28.0)),
    light=((140.0, 200.0), (40.0, 55.0), (0.80, 1.00), (0.15, 0.22)),
    light_tint=0.0,
    extra={"name": "foreign"},
)
_SALT = name_salt("foreign")


def foreign_batch(indices, *, seed: int = 0, image_size: int = 32):
    """Images ``(B, 3, S, S)`` and raw labels (position ``(B, 2)``, size ``(B,)``, color and
    shape names) of foreign items ``indices``; item ``i`` is a pure function of (seed, i)."""
    indices = list(indices)
    u = item_uniforms(seed, indices, FOREIGN_SPEC.num_draws + 4, salt=_SALT)  # (B, D + 4)
    scene, labels = sample_scenes(FOREIGN_SPEC, u[:, :FOREIGN_SPEC.num_draws])
    extra = u[:, FOREIGN_SPEC.num_draws:]  # (B, 4): colour pick, warm tint
    names = list(FOREIGN_PALETTE)
    pick = (extra[:, 0] * len(names)).long().clamp_max(len(names) - 1)  # (B,)
    rgb = torch.tensor(list(FOREIGN_PALETTE.values()))[pick]  # (B, 3)
    light = scene.light.clone()
    light[:, 6] = 1.0 - 0.25 * extra[:, 1].float()  # warm: less blue
    light[:, 5] = 1.0 - 0.08 * extra[:, 2].float()
    scene = Scene(scene.position, scene.size, scene.shape,
                  torch.cat([rgb[:, None], scene.rgb[:, 1:]], dim=1).float(), scene.active,
                  scene.view, light, scene.ground_tint)
    images = render(scene, image_size)  # (B, 3, S, S)
    raw = {"position": labels["position"], "size": labels["size"][:, 0],
           "color": [names[i] for i in pick.tolist()],
           "shape": [FOREIGN_SHAPES[SHAPES[i]] for i in labels["shape"].tolist()]}
    return images, raw


def write_foreign(out, n: int = 1700, *, seed: int = 0, image_size: int = 32,
                  chunk: int = 256) -> Path:
    """Render ``n`` foreign scenes to ``out/`` as PNGs plus ``labels.csv``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "x", "y", "color", "shape", "size"])
        for s in range(0, n, chunk):
            idx = range(s, min(n, s + chunk))
            images, raw = foreign_batch(idx, seed=seed, image_size=image_size)
            names = [f"scene_{i:05d}.png" for i in idx]
            write_pngs(images, [out / name for name in names])
            for j, name in enumerate(names):
                x, y = raw["position"][j].tolist()
                w.writerow([name, f"{x:.5f}", f"{y:.5f}", raw["color"][j], raw["shape"][j],
                            f"{raw['size'][j].item():.5f}"])
    return out


def main(argv=None) -> int:
    """``python -m conceptebm.datasets.foreign ARGS`` (deprecated): ``conceptebm make-data
    foreign ARGS`` (``--out`` spelled ``--out-dir``) after one warning line; it goes in
    conceptebm 0.3."""
    from conceptebm.cli import main as conceptebm

    print("warning: python -m conceptebm.datasets.foreign is deprecated; use conceptebm "
          "make-data foreign; it goes in conceptebm 0.3", file=sys.stderr)
    words = sys.argv[1:] if argv is None else list(argv)
    words = ["--out-dir" if w == "--out" else "--out-dir=" + w[6:] if w.startswith("--out=")
             else w for w in words]
    return conceptebm(["make-data", "foreign", *words])


if __name__ == "__main__":
    sys.exit(main())

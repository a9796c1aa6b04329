"""``conceptebm energy-map --points N`` on a late-conditioned model, as a user types it, with
process CPU time (issue 29 item 5: a 2000 x 2000 map in seconds on one core).

Renders one default scene (seed 20261207), then runs ``conceptebm energy-map IMG --model
position_late --points N --threads 1`` for each ``--points`` as a subprocess (wall seconds,
CPU seconds of the process: start-up, model load, the map, its basins and the figure) and, in
this process, the phases alone (process CPU time at one thread): the map
(``scenes.scene_energy_maps``), its basins refined (``energy_basins`` + ``refine_basins``) and
the drawing (``plot_energy_map`` + save).

    python benchmarks/energy_map.py

writes ``benchmarks/results/energy_map.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TEST_SEED = 20_261_207


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, nargs="+", default=[48, 500, 2000])
    p.add_argument("--model", default="position_late")
    p.add_argument("--work", default="out/energy_map_bench")
    p.add_argument("--quick", action="store_true", help="points 48 and 200")
    p.add_argument("--out", default="benchmarks/results/energy_map.json")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import conceptebm
    from conceptebm.datasets import make_dataset
    from conceptebm.datasets.images import write_pngs
    from conceptebm.scenes.inference import energy_basins, refine_basins, scene_energy_maps
    from conceptebm.scenes.plots import plot_energy_map

    points = [48, 200] if args.quick else args.points
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    image, _ = make_dataset("position", size=1, seed=TEST_SEED).batch([0])
    png = work / "scene.png"
    write_pngs(image, [png])
    rows = {}
    for n in points:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "conceptebm", "energy-map", str(png),
                               "--model", args.model, "--points", str(n), "--threads", "1",
                               "--quiet", "-o", str(work / f"map_{n}.png")],
                              capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows[str(n)] = {"command": f"conceptebm energy-map IMG --model {args.model} --points "
                                   f"{n} --threads 1", "wall_s": wall, "process_cpu_s": cpu,
                        "peak_rss_mb": after.ru_maxrss / 1024, "load_average_1min":
                        os.getloadavg()[0], "stdout": proc.stdout.strip()}
        print(f"energy-map --points {n}: {cpu:.2f} CPU s ({wall:.1f} s wall, load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
    model = conceptebm.load(args.model)
    n = max(points)
    infer_first = refine_basins(model, image, energy_basins(*scene_energy_maps(model, image, 8),
                                                            1))  # one-off imports, not counted
    del infer_first
    t0 = time.process_time()
    maps, grid = scene_energy_maps(model, image, n)
    t1 = time.process_time()
    found = refine_basins(model, image, energy_basins(maps, grid, 1, min_separation=0.3))
    t2 = time.process_time()
    fig, ax = plt.subplots()
    plot_energy_map(ax, maps[0], model.concept, marks=found.points[0])
    fig.savefig(work / "phases.png", dpi=110)
    plt.close(fig)
    t3 = time.process_time()
    phases = {"points": n, "map_cpu_s": t1 - t0, "basins_cpu_s": t2 - t1,
              "drawing_cpu_s": t3 - t2, "map_points_per_cpu_s": n * n / (t1 - t0)}
    print(f"phases at {n}x{n}: map {phases['map_cpu_s']:.2f} s "
          f"({phases['map_points_per_cpu_s']:.3g} points/s), basins {phases['basins_cpu_s']:.2f}"
          f" s, drawing {phases['drawing_cpu_s']:.2f} s (CPU, one thread)")
    res = {"command": "python benchmarks/energy_map.py " + " ".join(argv or sys.argv[1:]),
           "model": args.model, "image_seed": TEST_SEED, "threads": 1,
           "note": "process CPU seconds are what the command costs on one core; wall seconds "
                   "depend on the other jobs of this shared machine (load recorded)",
           "command_runs": rows, "phases": phases}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

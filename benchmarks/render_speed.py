"""How fast are the scene datasets? Images per second of ``dataset.batch`` and of the renderer.

    python benchmarks/render_speed.py                       # full run, prints a table
    python benchmarks/render_speed.py --quick --json out/render_speed.json

Rows: for each dataset and image size, ``batch`` is the whole pipeline a training loop calls
(per-item uniforms from a seeded ``torch.Generator``, vectorised scene sampling, rendering);
``render`` is the renderer alone on pre-sampled scenes, with the automatic (windowed) and the
dense ray-casting strategies. Each figure is the best of ``--repeats`` timed calls of
``--images`` images (after one warm-up call), with ``--threads`` torch threads (default 2).
The machine's load average is recorded before and after, because on a shared machine it
moves the numbers a lot.

JSON keys: ``images_per_s_32`` (``make_dataset("position").batch`` at 32x32, the headline),
``images_per_s_64``, ``images_per_s_32_1thread`` (the headline with one thread), ``rows``
(every measurement), ``threads``, ``loadavg_before``, ``loadavg_after``, ``cpu_count``,
``torch``, ``omp_wait_policy``.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a shared,
# oversubscribed machine spinning threads make 2-thread torch up to ~7x slower than 1 thread
# (measured: 1,100 vs 7,900 images/s at load average 8 on 2 cores); on an idle machine the
# policy makes no difference. Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from conceptebm.datasets import make_dataset, render  # noqa: E402


def _best_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def run(quick: bool = False, threads: int = 2, images: int | None = None,
        repeats: int | None = None) -> dict:
    torch.set_num_threads(threads)
    n = images or (1024 if quick else 4096)
    repeats = repeats or (2 if quick else 5)
    sizes = (32, 64) if quick else (32, 64, 128)
    names = ("position", "two_objects", "cluttered") if quick else (
        "position", "general", "two_objects", "cluttered", "multiview")
    load_before = os.getloadavg()[0]
    rows = []
    for size in sizes:
        m = max(64, n * 32 * 32 // (size * size))  # same number of pixels per call
        for name in names:
            ds = make_dataset(name, size=m, seed=0, image_size=size)
            idx = list(range(m))
            rows.append({"dataset": name, "size": size, "what": "batch", "images": m,
                         "images_per_s": _best_rate(lambda ds=ds, idx=idx: ds.batch(idx),
                                                    m, repeats)})
            scene = ds.scenes(idx)
            for label, dense in (("render", None), ("render dense", True)):
                if dense and (quick or size > 64):
                    continue
                rate = _best_rate(lambda s=scene, z=size, d=dense: render(s, z, dense=d),
                                  m, repeats)
                rows.append({"dataset": name, "size": size, "what": label, "images": m,
                             "images_per_s": rate})
    head = {r["size"]: r["images_per_s"] for r in rows
            if r["dataset"] == "position" and r["what"] == "batch"}
    # one thread too: on a busy shared machine two threads can lose to one (they wait on
    # each other at every parallel op), so both figures are recorded
    torch.set_num_threads(1)
    ds = make_dataset("position", size=n, seed=0)
    one = _best_rate(lambda: ds.batch(range(n)), n, repeats)
    torch.set_num_threads(threads)
    return {"images_per_s_32": head[32], "images_per_s_64": head[64],
            "images_per_s_32_1thread": one, "rows": rows,
            "threads": threads, "loadavg_before": load_before,
            "loadavg_after": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch": torch.__version__, "quick": quick}


def _print(result: dict) -> None:
    print(f"{'dataset':<12} {'size':>5} {'what':<13} {'images/s':>10}")
    for r in result["rows"]:
        print(f"{r['dataset']:<12} {r['size']:>5} {r['what']:<13} {r['images_per_s']:>10.0f}")
    print(f"threads={result['threads']} load average {result['loadavg_before']:.2f} -> "
          f"{result['loadavg_after']:.2f} on {result['cpu_count']} CPUs; headline "
          f"images_per_s_32 = {result['images_per_s_32']:.0f} "
          f"(1 thread: {result['images_per_s_32_1thread']:.0f})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (under a minute)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=None, help="images per timed call at 32px")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    result = run(args.quick, args.threads, args.images, args.repeats)
    _print(result)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

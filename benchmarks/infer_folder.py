"""A folder of rendered images through ``conceptebm infer DIR --separate -o OUT.jsonl``, as a
user types it: one process, then ``torchrun --nproc-per-node 2`` (issue 29 item 6).

Renders ``-n`` default scenes (seed 20261207) as PNGs into ``--work``, then runs the command
(``--model position_late``, one thread a process) in one process and in two; each run starts
from an empty output, and a third run of one process repeats the first command on the finished
output (resume: every image skipped). Before them, one process reads a folder of one chunk (256
images), whose peak memory the whole folder's should match (memory bounded by the chunk, not
the folder). Reports wall-clock images/s, the processes' CPU seconds
(user + system of the children) and their peak memory, and checks that the two outputs hold the
same rows in the same order.

    python benchmarks/infer_folder.py -n 2000

writes ``benchmarks/results/infer_folder.json``.
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
CHUNK = 256  # conceptebm.scenes.folder.CHUNK: images read and inferred at a time


def render(folder: Path, n: int) -> None:
    from conceptebm.datasets import make_dataset
    from conceptebm.datasets.images import write_pngs

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == n:
        return
    ds = make_dataset("position", size=n, seed=TEST_SEED)
    for lo in range(0, n, 256):
        idx = range(lo, min(n, lo + 256))
        write_pngs(ds.batch(idx)[0], [folder / f"scene_{i:05d}.png" for i in idx])


def timed(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds, the children's CPU seconds and peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(cmd), "wall_s": wall, "cpu_s": cpu,
            "peak_rss_mb_any_child": after.ru_maxrss / 1024, "stdout": proc.stdout.strip()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=2000, help="images in the folder (2000)")
    p.add_argument("--work", default="out/infer_folder", help="where the images and outputs go")
    p.add_argument("--model", default="position_late")
    p.add_argument("--quick", action="store_true", help="24 images")
    p.add_argument("--out", default="benchmarks/results/infer_folder.json")
    args = p.parse_args(argv)
    n = 24 if args.quick else args.n
    work = Path(args.work)
    images = work / f"images_{n}"
    render(images, n)
    infer = ["-m", "conceptebm", "infer", str(images), "--separate", "--model", args.model,
             "--threads", "1", "--quiet", "-o"]
    runs = {}
    # memory: first (the children's peak only grows) one process on a folder of one chunk,
    # CHUNK images, to compare with the peak of the whole folder below
    small = work / f"images_{CHUNK}"
    render(small, CHUNK)
    (work / "one_chunk.jsonl").unlink(missing_ok=True)
    one_chunk = timed([sys.executable, *infer[:3], str(small), *infer[4:],
                       str(work / "one_chunk.jsonl")])
    print(f"one chunk ({CHUNK} images): peak {one_chunk['peak_rss_mb_any_child']:.0f} MB",
          flush=True)
    for name, launcher in (("1_process", [sys.executable]),
                           ("2_processes", [sys.executable, "-m", "torch.distributed.run",
                                            "--standalone", "--nproc-per-node", "2"])):
        out = work / f"{name}.jsonl"
        out.unlink(missing_ok=True)
        load = os.getloadavg()[0]
        r = timed([*launcher, *infer, str(out)])
        r.update({"images": n, "images_per_s_wall": n / r["wall_s"],
                  "images_per_cpu_s": n / r["cpu_s"], "load_average_1min_before": load})
        runs[name] = r
        print(f"{name}: {n} images in {r['wall_s']:.1f} s wall ({r['images_per_s_wall']:.1f} "
              f"images/s), {r['cpu_s']:.1f} CPU s of all processes ({r['images_per_cpu_s']:.1f} "
              f"images per CPU s, start-up included), peak {r['peak_rss_mb_any_child']:.0f} MB; "
              f"load before {load:.2f}", flush=True)
    resumed = timed([sys.executable, *infer, str(work / "1_process.jsonl")])
    print(f"resume of the finished output: {resumed['wall_s']:.1f} s ({resumed['stdout']})")
    one = [json.loads(line) for line in open(work / "1_process.jsonl")]
    two = [json.loads(line) for line in open(work / "2_processes.jsonl")]
    same_order = [r["path"] for r in one] == [r["path"] for r in two] == sorted(
        str(images / f) for f in os.listdir(images))
    max_diff = max(abs(a - b) for r1, r2 in zip(one, two, strict=True)
                   for a, b in zip(r1["value"], r2["value"], strict=True))
    print(f"outputs: {len(one)} and {len(two)} rows, same sorted order: {same_order}, "
          f"largest value difference {max_diff:.2g}")
    res = {"command": "python benchmarks/infer_folder.py " + " ".join(argv or sys.argv[1:]),
           "render_seed": TEST_SEED, "model": args.model, "cpu_cores": os.cpu_count(),
           "note": "wall-clock images/s on a machine shared with other jobs (the load "
                   "average before each run is recorded); CPU seconds are user + system of "
                   "every process, start-up (imports, model load) included",
           "one_chunk_peak_rss_mb": one_chunk["peak_rss_mb_any_child"], "chunk": CHUNK,
           "runs": runs, "resume": resumed, "rows": [len(one), len(two)],
           "same_sorted_order": same_order, "max_value_difference": max_diff}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

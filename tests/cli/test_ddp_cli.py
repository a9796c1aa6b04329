"""``torchrun --nproc-per-node 2 -m conceptebm train ...`` as a user types it (issue 28): a run
that finished exits 0 every time (each process leaves the process group; before, 1 run in 5
aborted at exit with "terminate called without an active exception"), and only rank 0
prints."""

import os
import subprocess
import sys

import pytest

from conceptebm.datasets.foreign import write_foreign

pytestmark = pytest.mark.slow  # three torchrun launches, about 15 s each on a shared core
RUNS = 3


def test_a_two_process_run_ends_cleanly_every_time(tmp_path):
    data = write_foreign(tmp_path / "data", n=24, seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONCEPTEBM_TRACEBACK": ""}
    for i in range(RUNS):
        run = tmp_path / f"run{i}"
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc-per-node", "2", "-m", "conceptebm", "train", "--data", str(data),
             "--concept", "position", "--net", "late", "--objective", "contrastive", "--smoke",
             "--eval-every", "0", "--iterations", "3", "--out-dir", str(run), "--quiet"],
            env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (i, proc.stderr[-3000:])
        for bad in ("terminate called", "Traceback", "FAILED", "error:"):
            assert bad not in proc.stderr, (i, bad, proc.stderr[-3000:])
        # only rank 0 prints: the data summary and the result once each
        assert proc.stdout.count(f"[train] {data}: 24 images") == 1, proc.stdout
        assert proc.stdout.count("trained position EBM to iteration 3") == 1, proc.stdout
        assert (run / "last.safetensors").is_file()
        assert len((run / "command.txt").read_text().splitlines()) == 1  # written once

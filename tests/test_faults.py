"""Fault injection (issue 28): the operating system, memory and signals say no in the middle of a
command, as a user meets them. Each test asserts one ``error:`` line (no traceback), the exit
status ``conceptebm --help`` promises (2 bad input, 1 runtime failure, 130 / 143 signals) and
that nothing already written is lost.

Where a test needs a folder it may not write and runs as root (for whom ``chmod`` stops
nothing), the write itself is made to fail (the package's one atomic writer,
``conceptebm.checkpoints._atomic``, patched to raise what the system would); a real
unwritable path (a file in place of a folder, a name too long) is used wherever one exists
for every user.
"""

import csv
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import conceptebm.checkpoints as checkpoints
from conceptebm.checkpoints import load_checkpoint
from conceptebm.cli import main

TRAIN = ["--smoke", "--quiet", "--eval-every", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CONCEPTEBM_TRACEBACK": ""}


def cli(*args, cwd=None, **popen):
    """``python -m conceptebm ARGS`` in a child process, as typed in a shell."""
    return subprocess.run([sys.executable, "-m", "conceptebm", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=180, cwd=cwd, **popen)


def one_line(err: str, *needles) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: conceptebm"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def listing(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def failing_writer(monkeypatch, code, *, when=lambda path: True, after_write=False):
    """Make the atomic writer fail with ``OSError(code)`` for the paths ``when`` picks:
    before anything is written, or (``after_write``) once the temp file is written, as a
    disk filling up mid-write does (the writer's own clean-up then runs)."""
    real = checkpoints._atomic

    def atomic(path, write):
        if not when(path):
            return real(path, write)
        if not after_write:
            raise OSError(code, os.strerror(code), str(path))

        def write_then_fail(tmp):
            write(tmp)
            raise OSError(code, os.strerror(code), str(tmp))

        return real(path, write_then_fail)

    monkeypatch.setattr(checkpoints, "_atomic", atomic)


# ----------------------------------------------------------------------------- permissions
def test_a_folder_without_write_permission(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    failing_writer(monkeypatch, errno.EACCES)  # what the system says to a non-root user
    assert main(["train", *TRAIN, "--out-dir", str(run)]) == 2
    one_line(capsys.readouterr().err, "permission denied", str(run / "conceptebm-run.json"),
             "choose a folder you can write to")
    assert not run.exists() or listing(run) == {}
    monkeypatch.undo()
    if os.geteuid() != 0:  # a real read-only folder: refused when the options are read
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            proc = cli("render", "position", "-n", "2", "--each", locked / "out")
            assert proc.returncode == 2
            one_line(proc.stderr, "no permission to write in", str(locked))
        finally:
            locked.chmod(0o755)


def test_a_read_only_file_system(tmp_path, monkeypatch, capsys):
    failing_writer(monkeypatch, errno.EROFS)
    each = tmp_path / "each"
    assert main(["render", "position", "-n", "2", "--each", str(each)]) == 2
    one_line(capsys.readouterr().err, "read-only file system", "writable disk")
    assert not any(each.glob("*.png"))  # nothing half-written: the labels go first


def test_a_file_in_the_way_and_a_name_too_long(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    proc = cli("train", *TRAIN, "--out-dir", blocker / "run")  # once as typed in a shell
    assert proc.returncode == 2
    one_line(proc.stderr, "--out-dir", "notes.txt is a file, not a folder")
    long = tmp_path / ("a" * 300)
    for args in (["render", "position", "-n", "2", "--each", str(long)],
                 ["train", *TRAIN, "--out-dir", str(long)],
                 ["render", "position", "-n", "2", "-o", str(long) + ".png"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        one_line(err, "choose")
        assert "too long" in err or "bytes; this file system allows" in err
    assert blocker.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["notes.txt"]


# ----------------------------------------------------------------------------- disk full
def test_a_full_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    calls = []

    def second_checkpoint(path):
        if path.name == "last.safetensors":
            calls.append(path)
            return len(calls) == 2  # the checkpoint of iteration 6; iteration 3's was written
        return False

    failing_writer(monkeypatch, errno.ENOSPC, when=second_checkpoint, after_write=True)
    assert main(["train", *TRAIN, "--out-dir", str(run)]) == 1
    one_line(capsys.readouterr().err, "no space left on the device", "last.safetensors",
             "free there", "free some space")
    assert load_checkpoint(run / "last.safetensors").meta["iteration"] == 3  # intact
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no torn temp file
    monkeypatch.undo()
    assert main(["train", "--resume", "--out-dir", str(run), "--quiet"]) == 0  # nothing lost
    assert load_checkpoint(run / "last.safetensors").meta["iteration"] == 6


# ----------------------------------------------------------------------------- memory
def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    import conceptebm.train.loop as loop

    def no_memory(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 123456789012 bytes.")

    monkeypatch.setattr(loop, "_batch", no_memory)
    assert main(["train", *TRAIN, "--out-dir", str(tmp_path / "run")]) == 1
    one_line(capsys.readouterr().err, "out of memory", "123.5 GB", "--batch-size", "--resize")
    monkeypatch.setenv("CONCEPTEBM_TRACEBACK", "1")  # the traceback on request
    with pytest.raises(RuntimeError, match="can't allocate"):
        main(["train", *TRAIN, "--out-dir", str(tmp_path / "run2")])


def test_help_says_what_each_status_means(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and "1    a runtime failure" in out and "2    bad input" in out
    assert "130" in out and "143" in out


# ----------------------------------------------------------------------------- signals
ITERATIONS = 24


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(["train", *TRAIN, "--iterations", str(ITERATIONS), "--out-dir", str(run)]) == 0
    return run


def _logged(run) -> int:
    try:
        with open(run / "metrics.csv", newline="") as fh:
            return len(list(csv.DictReader(fh)))
    except OSError:
        return 0


@pytest.mark.parametrize("signum, status, rows, name", [
    (signal.SIGINT, 130, 3, "Ctrl-C (SIGINT)"),
    (signal.SIGTERM, 143, 9, "SIGTERM"),
])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_equals_an_uninterrupted_one(
        tmp_path, uninterrupted, capsys, signum, status, rows, name):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "conceptebm", "train", *TRAIN,
                             "--iterations", str(ITERATIONS), "--out-dir", str(run)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _logged(run) < rows and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    line = one_line(err, f"stopped by {name} after iteration", "saved",
                    f"conceptebm train --resume --out-dir {run}")
    stopped = int(line.split("after iteration ")[1].split(";")[0])
    assert rows <= stopped < ITERATIONS
    assert load_checkpoint(run / "last.safetensors").meta["iteration"] == stopped
    assert _logged(run) == stopped  # every iteration done is in metrics.csv, none twice
    assert main(["train", "--resume", "--out-dir", str(run), "--quiet"]) == 0
    assert f"to iteration {ITERATIONS}" in capsys.readouterr().out
    a = load_checkpoint(run / "last.safetensors").groups["model"]
    b = load_checkpoint(uninterrupted / "last.safetensors").groups["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- closed stdout
def test_a_reader_that_closes_the_pipe(tmp_path):
    from conceptebm.datasets.foreign import write_foreign

    image = sorted(write_foreign(tmp_path / "imgs", n=1, seed=0).glob("*.png"))[0]
    grid = tmp_path / "grid.png"
    for args, written in ((["render", "position", "-n", "4", "-o", grid], grid),
                          (["infer", "--model", "position", image, "--json"], None)):
        proc = subprocess.Popen([sys.executable, "-m", "conceptebm", *map(str, args)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # `| head -c0`: the reader is gone before anything is printed
        err = proc.stderr.read()
        assert proc.wait(timeout=180) == 1, err
        one_line(err, "closed the output pipe")
        if written is not None:  # what was written is whole
            from PIL import Image

            assert Image.open(written).size[0] > 0


def test_ctrl_c_during_render_each_keeps_what_was_finished(tmp_path):
    from conceptebm.datasets import load_images

    out = tmp_path / "each"
    proc = subprocess.Popen([sys.executable, "-m", "conceptebm", "render", "position", "-n",
                             "3000", "--each", str(out), "--threads", "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while (not out.is_dir() or len(list(out.iterdir())) < 100) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: conceptebm render: stopped by Ctrl-C") and \
        "Traceback" not in err
    written = int(last.split("wrote ")[1].split(" of ")[0])
    assert 0 < written < 3000 and "its labels.csv lists them" in last
    pngs = sorted(p.name for p in out.glob("*.png"))
    listed = [r[0] for r in csv.reader(open(out / "labels.csv"))][1:]
    assert sorted(listed) == pngs and len(pngs) == written  # no image without its row
    assert len(load_images(out)) == written


def test_another_process_that_failed_is_one_line_on_rank_0(tmp_path, monkeypatch, capsys):
    import conceptebm.train.loop as loop
    from conceptebm.train.distributed import RankFailed

    def failed(*a, **k):
        raise RankFailed("process 1 of 2 failed (ValueError: bad labels); process 0 stopped "
                         "too. Fix that error and run the command again")

    monkeypatch.setattr(loop, "train", failed)
    for rank, lines in (("0", 1), ("1", 0)):  # under torchrun only rank 0 says it
        monkeypatch.setenv("RANK", rank)
        assert main(["train", *TRAIN, "--out-dir", str(tmp_path / f"run{rank}")]) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == lines and "Traceback" not in err
        if lines:
            one_line(err, "process 1 of 2 failed (ValueError: bad labels)")

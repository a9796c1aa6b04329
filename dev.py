#!/usr/bin/env python3
"""Set up a local virtual environment and run the project's main jobs.

Needs nothing but Python (3.10+). Usage:

    python3 dev.py demo      # the main job: composition demo, writes PNGs and a report
    python3 dev.py test      # the whole test suite (the documentation build included)
    python3 dev.py docs      # the documentation site, built offline into build/site
    python3 dev.py setup     # only create / update .venv

The first call creates ``.venv`` and installs the package with its ``dev``, ``notebooks`` and
``docs`` extras.
torch is pinned to the local CPU build through ``constraints.txt``: a spec that admits
a newer torch would pull several GB of CUDA wheels. Later calls reuse the environment and only
reinstall when ``pyproject.toml`` or ``constraints.txt`` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".conceptebm-install-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def setup() -> None:
    """Create .venv and install the package (editable) unless it is already up to date."""
    if not PY.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("[dev] installing conceptebm with its dev, notebook and docs extras", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # torch first, by exact pin, so no resolver step can ever pick a CUDA build.
    subprocess.check_call(pip + ["-c", str(ROOT / "constraints.txt"), "torch==2.13.0"])
    subprocess.check_call(
        pip + ["-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev,notebooks,docs]"]
    )
    STAMP.write_text(_fingerprint())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # One BLAS/OpenMP thread per process: on 2 cores, two 1-thread processes beat one 2-thread.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    # Spinning OpenMP threads collapse multi-thread speed on a loaded machine
    # (benchmarks/render_speed.py measured 9,500 -> 640 images/s with ACTIVE).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run(args: list[str], **extra_env: str) -> int:
    return subprocess.call([str(PY), *args], cwd=ROOT, env={**_env(), **extra_env})


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "docs", "setup"}:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    setup()
    if cmd == "setup":
        return 0
    if cmd == "demo":
        return run(["-m", "conceptebm", "demo", *rest])
    if cmd == "docs":  # strict: a broken link, reference or failing notebook fails the build
        # the notebooks run their quick settings (as in the tests) unless --full is given
        full = "--full" in rest
        rest = [a for a in rest if a != "--full"]
        return run(["-m", "mkdocs", "build", "--strict", *rest], **({} if full else {"CI": "1"}))
    # Two worker processes, one per core; each test process uses one thread.
    return run(["-m", "pytest", "-n", "2", "-q", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

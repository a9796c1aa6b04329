"""Long or large work streams in chunks: peak memory (ru_maxrss of the command's process)
stays bounded whatever ``-n`` or ``--points`` is."""

import json
import subprocess
import sys

import torch
from PIL import Image

LIMIT_MB = 2048

# run the command in a child of a fresh interpreter, so RUSAGE_CHILDREN is that command's alone
_WRAPPER = """
import json, resource, subprocess, sys
r = subprocess.run([sys.executable, "-m", "conceptebm", *sys.argv[1:]], capture_output=True,
                   text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
print(json.dumps({"rc": r.returncode, "err": r.stderr[-2000:],
                  "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _peak_mb(*argv) -> float:
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True,
                         text=True, check=True).stdout
    result = json.loads(out)
    assert result["rc"] == 0, result["err"]
    return result["peak_mb"]


def test_render_each_streams_in_chunks(tmp_path):
    small = _peak_mb("render", "position", "-n", "256", "--each", str(tmp_path / "a"),
                     "--threads", "1")
    big = _peak_mb("render", "position", "-n", "1024", "--each", str(tmp_path / "b"),
                   "--threads", "1")
    assert len(list((tmp_path / "b").glob("*.png"))) == 1024
    assert big < LIMIT_MB and big < small + 100, (small, big)  # 4x the images, same memory


def test_energy_map_with_many_points_stays_bounded(tmp_path):
    image = tmp_path / "a.png"
    arr = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).byte()
    Image.fromarray(arr.numpy()).save(image)
    peak = _peak_mb("energy-map", str(image), "--points", "120", "-o", str(tmp_path / "m.png"))
    assert peak < LIMIT_MB and (tmp_path / "m.png").stat().st_size > 1000

"""benchmarks/photographs.py runs on a folder of images and writes its keys; an empty folder is
refused in one line."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "photographs.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_photographs_benchmark_writes_answers_per_model(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(photos / "white.png")
    Image.effect_noise((50, 50), 60).convert("RGB").save(photos / "noise.jpg")
    out = tmp_path / "p.json"
    r = _run("--photos", str(photos), "--models", "position_late", "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["n"] == 2 and res["photos"] == ["noise.jpg", "white.png"]
    row = res["models"]["position_late"]
    assert 0.0 <= row["answered"] <= 1.0
    assert len(row["answered_names"]) == round(row["answered"] * 2)
    assert "white.png" not in row["answered_names"]  # a blank image is refused


def test_photographs_benchmark_refuses_an_empty_folder(tmp_path):
    r = _run("--photos", str(tmp_path), "--models", "position_late")
    assert r.returncode == 2 and r.stderr.startswith("error: --photos:")
    assert "Traceback" not in r.stderr
    r = _run("--photos", str(tmp_path / "missing"), "--models", "position_late")
    assert r.returncode == 2 and r.stderr.startswith("error: --photos:")
    assert "is not a folder" in r.stderr and "Traceback" not in r.stderr

"""``conceptebm infer --posterior``: several chains, ArviZ's diagnostics in the text and JSON
reports, a warning naming an unconverged coordinate, ``--save post.nc``; on rendered PNGs
with the shipped late-conditioned position model (a head per candidate: fast)."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conceptebm.cli import main
from conceptebm.datasets import make_dataset

az = pytest.importorskip("arviz")

MODEL = ["--model", "position_late"]
FAST = ["--samples", "60", "--warmup", "60"]


def _png(path, image):
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture(scope="module")
def scenes():
    images, labels = make_dataset("position", seed=20261207).batch(torch.arange(2))
    return images, labels["position"]


def test_posterior_reports_chains_and_arviz_diagnostics_and_saves_netcdf(tmp_path, capsys,
                                                                        scenes):
    images, truth = scenes
    p = _png(tmp_path / "a.png", images[0])
    out = tmp_path / "post.nc"
    assert main(["infer", p, *MODEL, "--posterior", *FAST, "--save", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    post = row["posterior"]
    assert post["chains"] == 4 and post["samples"] == 60 and post["sampler"] == "mala"
    d = post["diagnostics"]
    assert d["source"].startswith("arviz") and len(d["rhat"]) == 2
    assert {"ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"} <= set(d)
    assert post["saved"] == str(out)
    idata = az.from_netcdf(str(out))
    assert dict(idata.posterior["position"].sizes) == {"chain": 4, "draw": 60,
                                                       "position_dim": 2}
    assert list(idata.observed_data["image"].values) == [p]
    np.testing.assert_allclose(az.rhat(idata)["position"].values, d["rhat"])
    lo, hi = torch.tensor(post["interval"])
    assert (lo <= torch.tensor(row["value"]) + 0.05).all()
    assert (torch.tensor(row["value"]) - 0.05 <= hi).all()


def test_text_report_and_a_warning_naming_the_coordinate(tmp_path, capsys, scenes):
    images, _ = scenes
    p = _png(tmp_path / "a.png", images[1])
    # 8 draws a chain: no ESS can reach 100, so every coordinate is named in a warning
    assert main(["infer", p, *MODEL, "--posterior", "--samples", "8", "--warmup", "20"]) == 0
    cap = capsys.readouterr()
    assert "90% interval (MALA, 4 chains x 8 samples" in cap.out
    assert "diagnostics (arviz" in cap.out and "R-hat" in cap.out
    warned = [ln for ln in cap.err.splitlines() if ln.startswith("warning:")]
    assert any("position x:" in ln and "ESS" in ln for ln in warned), cap.err
    assert any("position y:" in ln for ln in warned), cap.err


def test_save_numbers_files_of_separate_images(tmp_path, capsys, scenes):
    images, _ = scenes
    paths = [_png(tmp_path / f"{k}.png", images[k]) for k in range(2)]
    out = tmp_path / "post.nc"
    assert main(["infer", *paths, "--separate", *MODEL, "--posterior", *FAST,
                 "--chains", "2", "--save", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["posterior"]["saved"] for r in rows] == [str(tmp_path / "post-1.nc"),
                                                       str(tmp_path / "post-2.nc")]
    for k, r in enumerate(rows):
        idata = az.from_netcdf(r["posterior"]["saved"])
        assert idata.posterior.sizes["chain"] == 2
        assert list(idata.observed_data["image"].values) == [paths[k]]


@pytest.mark.parametrize("extra,message", [
    (["--save", "post.nc"], "--save writes the posterior draws: add --posterior"),
    (["--posterior", "--save", "post.txt"], "must be a netCDF path ending in .nc"),
])
def test_bad_save_is_one_error_line(tmp_path, capsys, scenes, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    p = _png(tmp_path / "a.png", scenes[0][0])
    assert main(["infer", p, *MODEL, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_save_without_arviz_is_one_line_saying_how_to_install(tmp_path, capsys, scenes,
                                                              monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    p = _png(tmp_path / "a.png", scenes[0][0])
    assert main(["infer", p, *MODEL, "--posterior", "--save", str(tmp_path / "p.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'conceptebm[posterior]'" in err[0], err
    assert not (tmp_path / "p.nc").exists()

"""``conceptebm infer`` and ``conceptebm energy-map`` on rendered PNGs written in tmp_path.

The model is the analytic stand-in of ``standins.py`` (patched in as the loaded model), so the
estimates can be checked against the rendered truth; one test loads a real checkpoint file.
"""

import json

import pytest
import torch
from PIL import Image
from standins import SaliencyPosition

import conceptebm.cli.infer as infer_cli
from conceptebm.cli import main
from conceptebm.datasets import make_dataset


def _png(path, image):
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture
def standin(monkeypatch):
    model = SaliencyPosition()
    seen = {}

    def fake_load(spec, concept, device=None):
        seen["args"] = (spec, concept)
        if concept not in (None, "position"):
            return real_load(spec, concept)  # the real error path for other concepts
        return model

    real_load = infer_cli.load_model
    monkeypatch.setattr(infer_cli, "load_model", fake_load)
    # a loaded model carries its record (conceptebm.load): the calibration lives there
    model.attach_record({"energy_calibration": _standin_calibration()})
    seen["model"] = model
    return seen


_CALIBRATION = {}


def _standin_calibration():
    """The stand-in's energy calibration from 64 held-out renders (as training records it)."""
    if not _CALIBRATION:
        from conceptebm.evaluate.calibration import energy_calibration

        images, labels = make_dataset("position", size=64, seed=11).batch(range(64))
        _CALIBRATION.update(energy_calibration(SaliencyPosition(), images, labels["position"]))
    return _CALIBRATION


@pytest.fixture(scope="module")
def rendered():
    images, labels = make_dataset("position", size=16, seed=3).batch(range(3))
    two, two_labels = make_dataset("two_objects", size=16, seed=2).batch([0])
    return images, labels["position"], two[0], two_labels["position"][0]


def test_infer_prints_the_estimate_of_one_image(tmp_path, capsys, standin, rendered):
    images, truth, _, _ = rendered
    p = _png(tmp_path / "a.png", images[0])
    assert main(["infer", p, "--concept", "position"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{p}: position = (") and "energy" in out
    assert main(["infer", p, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 1 and report[0]["concept"] == "position"
    assert (torch.tensor(report[0]["value"]) - truth[0]).norm() < 0.2
    assert standin["args"] == (None, None)


def test_several_images_are_views_unless_separate(tmp_path, capsys, standin, rendered):
    images, truth, _, _ = rendered
    # three renders of the same scene with pixel noise: views of one position
    gen = torch.Generator().manual_seed(0)
    noisy = (images[1] + 0.05 * torch.randn(3, *images.shape[1:], generator=gen)).clamp(0, 1)
    paths = [_png(tmp_path / f"v{i}.png", noisy[i]) for i in range(3)]
    assert main(["infer", *paths, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 1 and report[0]["images"] == paths
    assert (torch.tensor(report[0]["value"]) - truth[1]).norm() < 0.2
    assert main(["infer", *paths, "--separate"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == paths


def test_posterior_prints_a_nuts_interval_around_the_map(tmp_path, capsys, standin, rendered):
    images, truth, _, _ = rendered
    p = _png(tmp_path / "a.png", images[2])
    args = ["infer", p, "--posterior", "--samples", "60", "--warmup", "40", "--json"]
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)[0]
    lo, hi = torch.tensor(row["posterior"]["interval"])
    value = torch.tensor(row["value"])
    assert row["posterior"]["level"] == 0.9 and row["posterior"]["samples"] == 60
    assert (lo <= hi).all() and (lo - 0.05 <= value).all() and (value <= hi + 0.05).all()
    assert main(args[:-1]) == 0
    assert "90% interval (MALA, 4 chains x 60 samples" in capsys.readouterr().out


def test_energy_map_writes_a_png_with_two_basins(tmp_path, capsys, standin, rendered):
    _, _, two, two_truth = rendered
    p = _png(tmp_path / "two.png", two)
    out_png = tmp_path / "maps" / "map.png"
    assert main(["energy-map", p, "-o", str(out_png), "--objects", "2", "--points", "25"]) == 0
    out = capsys.readouterr().out
    assert out_png.stat().st_size > 5000 and f"wrote {out_png}" in out
    basins = [ln for ln in out.splitlines() if ln.startswith("basin")]
    assert len(basins) == 2
    found = torch.tensor([[float(v) for v in ln.split("(")[1].split(")")[0].split(",")]
                          for ln in basins])
    dist = (found[:, None] - two_truth[None]).norm(dim=-1)  # (found, true)
    assert min(dist[0, 0] + dist[1, 1], dist[0, 1] + dist[1, 0]) < 0.5, (found, two_truth)


def test_errors_are_clear(tmp_path, capsys, standin, rendered):
    images = rendered[0]
    assert main(["infer", str(tmp_path / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.png" in err and "no such file" in err
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["infer", str(bad)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    big = _png(tmp_path / "big.png", torch.nn.functional.interpolate(images[:1], size=64)[0])
    assert main(["infer", big]) == 2
    err = capsys.readouterr().err
    assert "64x64" in err and "32x32" in err and "--resize" in err
    assert main(["infer", big, "--resize"]) == 0
    assert "position = (" in capsys.readouterr().out
    ok = _png(tmp_path / "ok.png", images[0])
    assert main(["infer", ok, "--concept", "happiness"]) == 2
    err = capsys.readouterr().err
    assert "unknown concept 'happiness'" in err
    assert all(name in err for name in ("position", "color", "shape", "size"))
    assert main(["energy-map", ok, "-o", str(tmp_path / "map")]) == 2  # would be map.png
    assert ".png" in capsys.readouterr().err


def test_model_checkpoint_path(tmp_path, capsys, rendered):
    import conceptebm.checkpoints as ckpt
    from conceptebm.datasets import scene_concepts
    from conceptebm.energies.nets import ConvEnergyNet

    torch.manual_seed(0)  # an untrained net: this checks loading and plumbing, not accuracy
    net = ConvEnergyNet(scene_concepts()["color"], width=4, embed_dim=8)
    path = tmp_path / "color.safetensors"
    ckpt.save_checkpoint(path, {"model": net.state_dict()}, {"net": net.config})
    p = _png(tmp_path / "a.png", rendered[0][0])
    assert main(["infer", p, "--model", str(path), "--posterior"]) == 0
    out = capsys.readouterr().out
    assert "color = " in out and "posterior:" in out
    assert main(["infer", p, "--model", str(path), "--posterior", "--posterior-temperature",
                 "1e-6", "--json"]) == 0
    probs = json.loads(capsys.readouterr().out)[0]["probabilities"]
    assert max(probs.values()) > 0.99  # a tiny temperature: the posterior is the argmin
    assert main(["infer", p, "--model", str(path), "--posterior-temperature", "0"]) == 2
    assert "argument --posterior-temperature: must be a finite number in [1e-06, 1000], got '0'" \
        in capsys.readouterr().err
    assert main(["infer", p, "--model", str(path), "--concept", "position"]) == 2
    assert "is a 'color' model, not a 'position' one" in capsys.readouterr().err
    assert main(["infer", p, "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    out_png = tmp_path / "color_map.png"
    assert main(["energy-map", p, "--model", str(path), "-o", str(out_png)]) == 0
    assert out_png.stat().st_size > 3000


def test_benchmark_quick_writes_its_keys(tmp_path):
    """paper/benchmarks/inference.py --quick end to end on tiny untrained checkpoints: this checks
    the plumbing and the report's shape; the real numbers come from the full run."""
    import subprocess
    import sys
    from pathlib import Path

    import conceptebm.checkpoints as ckpt
    from conceptebm.datasets import scene_concepts
    from conceptebm.energies.nets import ConvEnergyNet

    torch.manual_seed(0)
    net = ConvEnergyNet(scene_concepts()["position"], width=4, embed_dim=8)
    model = tmp_path / "position.safetensors"
    ckpt.save_checkpoint(model, {"model": net.state_dict()}, {"net": net.config})
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.inference", "--quick",
                           "--model", str(model), "--multiview-model", str(model),
                           "--json", str(out), "--out", str(tmp_path / "png")],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for key in ("single_mae_ebm", "single_mae_regressor", "two_object_frac", "nuts_coverage90"):
        assert isinstance(report[key], float) and report[key] >= 0, key
    assert 0 <= report["two_object_frac"] <= 1 and 0 <= report["nuts_coverage90"] <= 1
    assert sorted(report["multiview_mae"]) == ["1", "2", "4", "8"]
    assert all(0 <= v <= 2 for v in report["multiview_mae"].values())
    single = report["details"]["single"]
    assert sorted(single) == ["clean", "clutter", "lighting", "noise"]
    reg = report["details"]["regressor"]
    assert abs(reg["params"] - reg["ebm_params"]) < 0.25 * reg["ebm_params"]  # same size
    assert (tmp_path / "png" / "multiview.png").stat().st_size > 10_000
    assert (tmp_path / "png" / "two_objects.png").stat().st_size > 10_000


def test_an_image_without_an_object_is_reported_not_answered(tmp_path, capsys, standin,
                                                             rendered):
    images = rendered[0]
    blank = _png(tmp_path / "blank.png", torch.full((3, 32, 32), 0.6))
    ok = _png(tmp_path / "ok.png", images[0])
    assert main(["infer", blank, ok, "--separate", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [r["object_found"] for r in rows] == [False, True]
    assert f"warning: no object found in {blank}" in captured.err and ok not in captured.err
    assert main(["infer", blank]) == 0
    assert capsys.readouterr().out.startswith(f"{blank}: no object found (")


def test_views_of_different_scenes_are_flagged(tmp_path, capsys, standin, rendered):
    images, truth, _, _ = rendered
    assert (truth[0] - truth[1]).norm() > 0.5  # two different scenes
    a, b = _png(tmp_path / "a.png", images[0]), _png(tmp_path / "b.png", images[1])
    assert main(["infer", a, b, "--json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert row["views_agree"] is False and len(row["separate"]) == 2
    assert "views disagree" in captured.err and a in captured.err and b in captured.err
    assert "--separate" in captured.err
    gen = torch.Generator().manual_seed(0)  # two noisy renders of one scene agree
    noisy = (images[2] + 0.03 * torch.randn(2, *images.shape[1:], generator=gen)).clamp(0, 1)
    paths = [_png(tmp_path / f"v{i}.png", noisy[i]) for i in range(2)]
    assert main(["infer", *paths, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["views_agree"] is True
    assert "warning" not in captured.err


def test_without_a_calibration_it_says_it_cannot_tell(tmp_path, capsys, standin, rendered,
                                                      monkeypatch):
    standin["model"].attach_record({})
    p = _png(tmp_path / "a.png", rendered[0][0])
    assert main(["infer", p, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["object_found"] is None
    assert "no energy_calibration" in captured.err


def test_energy_map_of_a_blank_image_says_no_object(tmp_path, capsys, standin):
    blank = _png(tmp_path / "blank.png", torch.full((3, 32, 32), 0.6))
    assert main(["energy-map", blank, "-o", str(tmp_path / "m.png"), "--points", "17"]) == 0
    assert f"warning: no object found in {blank}" in capsys.readouterr().err

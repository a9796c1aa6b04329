"""LateEnergyNet(camera=True): the camera-aware late net of the multi-view reader.

It estimates each view's camera from its feature map and reads a world position where that
camera projects it; the option must leave the shipped late nets untouched.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conceptebm import pretrained
from conceptebm.checkpoints import load_energy, save_checkpoint
from conceptebm.concepts import Concept
from conceptebm.datasets import make_dataset
from conceptebm.datasets.scene import project
from conceptebm.energies.late import LateEnergyNet
from conceptebm.energies.nets import build_energy_net
from conceptebm.scenes import infer_concept

POS = Concept.continuous("position", dim=2)
ROOT = Path(__file__).resolve().parents[1]


def test_projection_is_the_renderers_camera():
    net = LateEnergyNet(POS, width=4, features=6, hidden=8, camera=True)
    _, labels = make_dataset("multiview", size=8, seed=3, n_views=4).batch(range(8))
    c = torch.rand(8, 5, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got = net.project(c, net.camera_target(labels["view"]))  # (8, 5, 2)
    world = torch.cat([c, torch.full((8, 5, 1), 0.35)], -1)  # the started height
    pix = project(world, labels["view"], 32)  # (column, row) of the 32x32 image
    want = pix / 2 / 15 * 2 - 1  # the 16x16 map's cell j sits on pixel 2j
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_energy_reads_where_the_estimated_camera_points(gen):
    net = LateEnergyNet(POS, image_size=16, width=4, features=6, hidden=8, camera=True)
    x = torch.rand(3, 3, 16, 16, generator=gen)
    c = torch.rand(3, 4, 2, generator=gen) * 2 - 1
    with torch.no_grad():
        f = net.features(x)
        cam = net.camera(f)  # (3, 4)
        read = F.grid_sample(f, net.where(net.project(c, cam))[:, :, None],
                             align_corners=True)[..., 0].transpose(1, 2)
        want = net.head(torch.cat([read, net.normalise(c), cam[:, None].expand(3, 4, 4)],
                                  -1))[..., 0]
        torch.testing.assert_close(net.energy_from_features(f, c), want)
        torch.testing.assert_close(net(x, c[:, 0]), want[:, 0])
        net.camera_head[-1].bias.add_(torch.tensor([0.0, 3.0, 0.0, 0.0]))  # turn the camera
        assert not torch.allclose(net.energy_from_features(f, c), want)


def test_config_round_trips_through_safetensors_and_json(tmp_path, gen):
    net = LateEnergyNet(POS, width=4, features=6, hidden=8, camera=True, camera_fov=40.0)
    with torch.no_grad():
        net.height.fill_(0.2)
    assert net.config["camera"] is True and net.config["camera_fov"] == 40.0
    path = tmp_path / "mv.safetensors"
    save_checkpoint(path, {"model": net.state_dict()}, {"net": net.config})
    assert path.with_suffix(".json").exists()
    back = load_energy(path)
    assert back.config == net.config and back.height.item() == pytest.approx(0.2)
    x, c = torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 2, generator=gen)
    with torch.no_grad():
        assert torch.equal(back(x, c), net.eval()(x, c))
    views = torch.rand(2, 3, 3, 32, 32, generator=gen)  # views' energies add (eq. 11)
    assert infer_concept(back, views, views=True, grid=5, steps=2).value.shape == (2, 2)


def test_bad_camera_options_are_refused():
    with pytest.raises(ValueError, match="readout='spatial'"):
        LateEnergyNet(POS, width=4, readout="pooled", camera=True)
    with pytest.raises(ValueError, match="camera_fov"):
        LateEnergyNet(POS, width=4, camera=True, camera_fov=180.0)
    with pytest.raises(ValueError, match="camera=True"):
        LateEnergyNet(POS, width=4).camera(torch.zeros(1, 32, 16, 16))
    assert not LateEnergyNet(POS, width=4, camera=True).start_readout(
        torch.rand(20, 3, 32, 32), torch.rand(20, 2))  # a camera net projects from the start


@pytest.mark.parametrize("name", ["position_late", "position_late_robust"])
def test_shipped_late_nets_are_unchanged(name, gen):
    """No camera in their config, and their energy is still the camera-free formula,
    bit for bit (the readout at where(c), the head on [read, c])."""
    net = pretrained.load(name)
    assert "camera" not in net.config and not net.camera_aware
    rebuilt = build_energy_net(net.config)
    rebuilt.load_state_dict(net.state_dict())  # strict: no new parameters expected
    x = torch.rand(2, 3, 32, 32, generator=gen)
    c = torch.rand(2, 7, 2, generator=gen) * 2 - 1
    with torch.no_grad():
        f = net.features(x)
        cn = net.normalise(c)
        read = F.grid_sample(f, net.where(cn)[:, :, None], mode="bilinear",
                             padding_mode="border", align_corners=True)[..., 0].transpose(1, 2)
        if net.context:
            read = torch.cat([read, f.mean((2, 3))[:, None].expand(2, 7, -1)], -1)
        want = net.head(torch.cat([read, cn], -1))[..., 0]
        assert torch.equal(net.energy_from_features(f, c), want)


def test_benchmark_quick_train(tmp_path):
    out = tmp_path / "mv.safetensors"
    run = subprocess.run([sys.executable, "benchmarks/late_multiview.py", "train", "--quick",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    net = load_energy(out)
    assert net.config["camera"] is True and net.record["train"]["best_iteration"] in (10, 20)


def test_shipped_reader_reads_positions_from_any_camera():
    model = pretrained.load("position_multiview_late")
    assert model.config["camera"] is True and model.map_settings.grid == 9
    images, labels = make_dataset("multiview", size=48, seed=123, n_views=4).views(range(12))
    truth = labels["position"][:, 0]  # (12, 2): one position per 4-view set
    with torch.no_grad():
        err = (infer_concept(model, images, views=True).value - truth).abs().mean().item()
    # its 4-view test MAE is 0.017 (benchmarks/results/late_multiview.json); chance is 2/3
    assert err < 0.08, err

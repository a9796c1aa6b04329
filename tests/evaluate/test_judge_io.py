"""Judge network, predict() and checkpoint I/O: round trip and every failure the loader names."""

import json

import pytest
import torch

from conceptebm.evaluate import Judge, JudgeConfig, JudgeNet, load_judge, save_judge


@pytest.fixture
def judge(blobs):
    torch.manual_seed(0)  # weight init of this throwaway net; nothing statistical depends on it
    cfg = JudgeConfig(concepts=tuple(blobs(1).concepts.values()), image_size=16,
                      widths=(4, 8, 8, 8), hidden=8, extra={"palette": [[1.0, 0.0, 0.0]]})
    return Judge(JudgeNet(cfg), {"training": {"command": "made in a test"}})


def test_predict_shapes_types_and_chunking(judge, blobs):
    images, _ = blobs(10, image_size=16).batch(torch.arange(10))
    out = judge.predict(images)
    assert out["position"].shape == (10, 2) and out["size"].shape == (10, 1)
    assert out["color"].shape == (10,) and out["color"].dtype == torch.long
    assert out["shape_probs"].shape == (10, 3)
    torch.testing.assert_close(out["color_probs"].sum(1), torch.ones(10))
    assert torch.equal(out["color"], out["color_probs"].argmax(1))
    chunked = judge.predict(images, batch_size=3)  # eval mode: batch size changes nothing
    for k in out:
        torch.testing.assert_close(chunked[k], out[k])


@pytest.mark.parametrize("images, match", [
    (torch.rand(2, 3, 32, 32), r"reads 16x16 images.*interpolate"),
    (torch.rand(2, 1, 16, 16), r"shape \(B, 3, H, W\)"),
    (torch.rand(2, 3, 16, 16) * 2, r"must lie in \[0, 1\].*max"),
    (torch.full((2, 3, 16, 16), float("nan")), "NaN"),
    (torch.zeros(2, 3, 16, 16, dtype=torch.long), "floating tensor"),
    (torch.rand(0, 3, 16, 16), "empty batch"),
])
def test_predict_rejects_bad_images(judge, images, match):
    with pytest.raises(ValueError, match=match):
        judge.predict(images)


def test_round_trip(judge, tmp_path, blobs):
    stem = save_judge(judge, tmp_path / "j", metadata={"heldout": {"color_acc": 1.0}})
    assert (tmp_path / "j.safetensors").is_file() and (tmp_path / "j.json").is_file()
    for path in (stem, tmp_path / "j.json", tmp_path / "j.safetensors"):
        back = load_judge(path)
        assert back.config == judge.config and back.config.extra == judge.config.extra
        for k, v in judge.net.state_dict().items():
            assert torch.equal(back.net.state_dict()[k], v), k
    assert back.metadata["training"]["command"] == "made in a test"
    assert back.metadata["heldout"] == {"color_acc": 1.0}
    doc = json.loads((tmp_path / "j.json").read_text())
    assert doc["weights"]["num_params"] == sum(p.numel() for p in judge.net.parameters())
    images, _ = blobs(4, image_size=16).batch(torch.arange(4))
    torch.testing.assert_close(back.predict(images)["position"],
                               judge.predict(images)["position"])


def _corrupt_bytes(tmp_path):
    p = tmp_path / "j.safetensors"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside a tensor: still parseable, wrong numbers
    p.write_bytes(bytes(data))


def _truncate_without_checksum(tmp_path):
    p = tmp_path / "j.safetensors"
    p.write_bytes(p.read_bytes()[:40])
    doc = json.loads((tmp_path / "j.json").read_text())
    del doc["weights"]["sha256"]  # so the safetensors parser itself has to catch it
    (tmp_path / "j.json").write_text(json.dumps(doc))


def _edit_config(tmp_path, **changes):
    doc = json.loads((tmp_path / "j.json").read_text())
    doc["config"].update(changes)
    (tmp_path / "j.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, error, match", [
    (lambda p: (p / "j.json").unlink(), FileNotFoundError, "judge config .* not found"),
    (lambda p: (p / "j.safetensors").unlink(), FileNotFoundError, "weights .* not found"),
    (lambda p: (p / "j.json").write_text("{not json"), ValueError, "not valid JSON"),
    (lambda p: (p / "j.json").write_text('{"format": "other"}'), ValueError,
     "not a judge checkpoint"),
    (_corrupt_bytes, ValueError, "corrupt: SHA-256"),
    (_truncate_without_checksum, ValueError, "not a readable safetensors"),
    (lambda p: _edit_config(p, hidden=16, extra={}), ValueError,
     r"do not fit the config.*shape mismatch.*fc\.1\.weight"),
    (lambda p: _edit_config(p, widths=[4, 8, 8]), ValueError,
     r"do not fit the config.*unexpected \['trunk\.3"),
    (lambda p: _edit_config(p, image_size=20), ValueError, "multiple of 8"),
])
def test_load_errors_name_the_problem(judge, tmp_path, damage, error, match):
    save_judge(judge, tmp_path / "j")
    damage(tmp_path)
    with pytest.raises(error, match=match):
        load_judge(tmp_path / "j")


def test_config_validation(blobs):
    concepts = tuple(blobs(1).concepts.values())
    with pytest.raises(ValueError, match="at least one concept"):
        JudgeConfig(concepts=())
    with pytest.raises(ValueError, match="duplicate"):
        JudgeConfig(concepts=concepts[:1] * 2)
    with pytest.raises(ValueError, match="multiple of 8"):
        JudgeConfig(concepts=concepts, image_size=28)

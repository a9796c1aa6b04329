import pytest
import torch

from conceptebm import pretrained
from conceptebm.energies import ConditionalEnergy
from conceptebm.evaluate import load_judges
from conceptebm.infer import DEFAULT_SETTINGS, IMAGE_BOUNDS, SamplerSettings, langevin


@pytest.mark.parametrize("name", pretrained.NAMES)
def test_shipped_model_loads_and_generates(name):
    e = pretrained.load(name)
    assert isinstance(e, ConditionalEnergy) and e.concept.name == pretrained.concept_of(name)
    # the settings come from the record's "sampler" entry, set when the model is built
    record = pretrained.info(name)
    assert isinstance(e.sampler, SamplerSettings)
    assert e.sampler == SamplerSettings.from_dict(record["sampler"])
    assert e.sampler.bounds == IMAGE_BOUNDS and not hasattr(e, "info")
    with pytest.raises(AttributeError):
        e.sampler = DEFAULT_SETTINGS  # read-only: fixed at construction
    assert {"command", "metrics", "training_time_s"} <= set(record)
    c = e.concept
    value = c.values[0] if c.is_categorical else [0.5 * (c.low + c.high)] * c.dim
    g = torch.Generator().manual_seed(0)
    x = langevin(e.given(value), (3, 3, 32, 32), generator=g, **e.sampler)
    assert x.shape == (3, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert torch.isfinite(e(x, c.encode(value).expand(3, -1))).all()


def test_position_generations_move_with_the_label():
    e = pretrained.load("position")
    judge = load_judges()
    g = torch.Generator().manual_seed(0)
    xs = {}
    for side in (-0.6, 0.6):
        x = langevin(e.given((side, 0.0)), (8, 3, 32, 32), generator=g, **e.sampler)
        xs[side] = judge.predict(x)["position"][:, 0].mean().item()
    # the judged x coordinate follows the requested one (0.6 apart on each side of 0)
    assert xs[0.6] - xs[-0.6] > 0.6, xs


def test_shape_model_keeps_its_own_step_size():
    # the shape model was trained with Langevin step 1: its settings say so, unlike the others'
    assert pretrained.load("shape").sampler.step_size == 1.0
    assert pretrained.load("position").sampler.step_size == 100.0


def test_unknown_name_lists_the_shipped_ones():
    shipped = ("position, color, shape, size, position_contrastive, position_multiview, "
               "position_late, position_late_robust, position_multiview_late, shape_late, "
               "size_late, color_late, position_cd")
    with pytest.raises(ValueError, match=shipped):
        pretrained.load("texture")
    assert set(pretrained.available()) <= set(pretrained.NAMES)


def test_every_shipped_model_is_present_and_small():
    # the task's budget: all shipped weights together at most 20 MB
    assert pretrained.available() == list(pretrained.NAMES)
    total = sum(p.stat().st_size for p in pretrained.DIR.glob("*.safetensors"))
    assert total <= 20 * 2**20, total
    assert pretrained.concept_of("position_multiview") == "position"


def test_multiview_model_reads_positions_from_any_camera():
    from conceptebm.datasets import make_dataset
    from conceptebm.scenes.inference import infer_concept

    e = pretrained.load("position_multiview")
    ds = make_dataset("multiview", size=24, seed=123, n_views=4)
    images, labels = ds.views(range(6))  # (6, 4, 3, 32, 32): views of one position each
    truth = labels["position"][:, 0]
    est = infer_concept(e, images, views=True, grid=9, steps=30).value  # (6, 2)
    err = (est - truth).abs().mean().item()
    # chance (uniform guess in [-1, 1]^2 against a uniform truth) is 2/3; the benchmark's
    # 4-view MAE is 0.053 on 200 scenes, so 6 scenes at 0.2 fail only for a broken model
    assert err < 0.2, (err, est, truth)


def test_train_quality_benchmark_quick(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "tq.json"
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.train_quality",
                           "--quick", "--json", str(out)], capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for key in ("position.acc04", "position.mae", "color.acc", "shape.acc", "size.mae",
                "inference_position_mae"):
        assert key in res and key + "_stderr" in res
    assert set(res["pass"]) >= {"position.acc04", "color.acc", "inference_position_mae"}


def test_shipped_record_is_one_record_in_two_copies():
    """pretrained.info (the safetensors metadata) and the JSON twin a reader opens agree, the
    energy calibration that `infer` uses for "no object found" included."""
    import json

    for name in pretrained.available():
        twin = json.loads((pretrained.DIR / f"{name}.json").read_text())
        assert pretrained.info(name) == twin, name
        assert "energy_calibration" in twin, name

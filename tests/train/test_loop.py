import csv

import pytest
import torch
from squares import SquaresDataset, SquaresJudge

from conceptebm.checkpoints import CheckpointError, load_checkpoint, load_energy
from conceptebm.train import TrainingDiverged, lr_at, smoke_config, train


def run(tmp_path, name="run", resume=False, callback=None, **overrides):
    cfg = smoke_config(concept="position", image_size=16, out_dir=str(tmp_path / name),
                       **overrides)
    return train(cfg, dataset=SquaresDataset(64), eval_dataset=SquaresDataset(8, seed=9),
                 judge=SquaresJudge(), resume=resume, progress=False, callback=callback)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_everything(tmp_path):
    r = run(tmp_path, iterations=4, eval_every=2, checkpoint_every=2, contrastive_weight=1.0,
            label_policy="stored", lr_schedule="cosine", grad_clip=1.0, eval_inference=True,
            snapshot_every=2, kl_weight=0.5, image_contrastive_weight=0.5)
    out = tmp_path / "run"
    for f in ("last.safetensors", "last.json", "best.safetensors", "best.json", "metrics.csv",
              "eval.csv", "loss.png", "config.json"):
        assert (out / f).exists(), f
    m = rows(out / "metrics.csv")
    assert [int(row["iteration"]) for row in m] == [1, 2, 3, 4]
    assert {"loss", "cd", "e_pos", "e_neg", "contrastive", "contrastive_acc", "kl",
            "image_contrastive", "image_contrastive_acc"} <= set(m[0])
    ev = rows(out / "eval.csv")
    assert [int(row["iteration"]) for row in ev] == [2, 4]
    assert {"position_acc", "position_mae", "inference_position_mae"} <= set(ev[0])
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "it000002.safetensors", "it000004.safetensors"]
    last = load_checkpoint(out / "last.safetensors")
    assert last.meta["iteration"] == 4
    assert {"model", "ema", "optim", "buffer", "rng"} <= set(last.groups)
    assert last.groups["buffer"]["x"].dtype == torch.uint8  # the buffer is saved, unpickled
    best = load_checkpoint(out / "best.safetensors")
    assert best.meta["iteration"] == r.best_iteration and "position_mae" in best.meta["metrics"]
    assert load_energy(out / "best.safetensors").concept.name == "position"


def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    kw = dict(iterations=8, checkpoint_every=4, eval_every=4)
    full = run(tmp_path, "full", **kw)

    def kill(it, row):
        if it == 6:  # dies between checkpoints: iterations 5-6 are lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", callback=kill, **kw)
    assert load_checkpoint(tmp_path / "killed" / "last.safetensors").meta["iteration"] == 4
    resumed = run(tmp_path, "killed", resume=True, **kw)
    assert resumed.iteration == 8
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    for a, b in zip(full.eval_net.parameters(), resumed.eval_net.parameters(), strict=True):
        assert torch.equal(a, b)
    m_full, m_res = rows(tmp_path / "full" / "metrics.csv"), rows(tmp_path / "killed" /
                                                                  "metrics.csv")
    assert [r["loss"] for r in m_full] == [r["loss"] for r in m_res]  # no duplicated rows


def test_refuses_to_overwrite_and_to_resume_incompatible(tmp_path):
    run(tmp_path, iterations=2, eval_every=0)
    with pytest.raises(FileExistsError, match="resume"):
        run(tmp_path, iterations=2, eval_every=0)
    with pytest.raises(CheckpointError, match="width"):
        run(tmp_path, iterations=3, eval_every=0, width=6, resume=True)
    more = run(tmp_path, iterations=3, eval_every=0, resume=True)  # more iterations is fine
    assert more.iteration == 3


@pytest.mark.parametrize("poison", [1e8, float("nan")])
def test_divergence_guard_stops_and_keeps_last_good_checkpoint(tmp_path, poison,
                                                               monkeypatch):
    def blow_up(it, row):
        if it == 2:  # after the checkpoint of iteration 2, the weights explode
            head = holder["net"].head
            with torch.no_grad():
                head.bias.fill_(poison)

    holder = {}
    from conceptebm.train import TrainConfig

    real = TrainConfig.build_net

    def spy(self, concept):  # the loop builds its net here: keep a handle on it
        holder["net"] = real(self, concept)
        return holder["net"]

    monkeypatch.setattr(TrainConfig, "build_net", spy)
    with pytest.raises(TrainingDiverged, match=r"iteration 3.*last.safetensors \(iteration 2"):
        run(tmp_path, iterations=6, checkpoint_every=2, eval_every=0, callback=blow_up)
    good = load_energy(tmp_path / "run" / "last.safetensors", weights="model")
    assert all(torch.isfinite(p).all() and p.abs().max() < 1e3 for p in good.parameters())


def test_lr_schedule():
    cfg = smoke_config(iterations=11, lr=1e-3, lr_schedule="cosine", lr_min_ratio=0.1)
    assert lr_at(cfg, 1) == pytest.approx(1e-3)
    assert lr_at(cfg, 6) == pytest.approx(0.55e-3)
    assert lr_at(cfg, 11) == pytest.approx(1e-4)
    assert lr_at(cfg.replace(lr_schedule="constant"), 11) == 1e-3


def test_config_validation_names_the_setting():
    with pytest.raises(ValueError, match="label_policy"):
        smoke_config(label_policy="newest")
    with pytest.raises(ValueError, match="reinit_prob"):
        smoke_config(reinit_prob=2.0)
    with pytest.raises(ValueError, match="downsample must be one of"):
        smoke_config(downsample="maxpool")
    assert smoke_config(downsample="pool").net_config()["downsample"] == "pool"
    assert "downsample" not in smoke_config().net_config()  # older configs unchanged
    with pytest.raises(ValueError, match="unknown TrainConfig settings"):
        type(smoke_config()).from_dict({"lr": 1.0, "learning_rate": 1.0})


def test_unknown_concept_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="concept 'shape' is not a label"):
        train(smoke_config(concept="shape", out_dir=str(tmp_path / "x"), eval_every=0),
              dataset=SquaresDataset(16), progress=False)


def test_init_weights_starts_from_a_checkpoint_and_checks_the_net(tmp_path):
    run(tmp_path, name="a", iterations=3, eval_every=0)
    start = tmp_path / "a" / "last.safetensors"
    # a tiny lr keeps the weights where they started: the start must be a's weights
    run(tmp_path, name="b", iterations=1, eval_every=0, lr=1e-12, init_weights=str(start))
    run(tmp_path, name="c", iterations=1, eval_every=0, lr=1e-12)  # fresh init
    a, b, c = (load_checkpoint(tmp_path / n / "last.safetensors").groups for n in "abc")
    a, b, c = a["ema"], b["model"], c["model"]  # the start is the weights a evaluates with
    assert all(torch.allclose(a[k], b[k], atol=1e-8) for k in a)
    assert not all(torch.allclose(a[k], c[k], atol=1e-4) for k in a)
    with pytest.raises(ValueError, match="init_weights .* differs"):
        run(tmp_path, name="d", iterations=1, eval_every=0, width=8, init_weights=str(start))


def test_channels_last_trains_the_same_run_to_float_rounding(tmp_path):
    losses = {}
    for flag in (False, True):
        seen = []
        r = run(tmp_path, name=f"cl{flag}", iterations=3, eval_every=0, contrastive_weight=1.0,
                channels_last=flag, callback=lambda it, row, seen=seen: seen.append(row["loss"]))
        losses[flag] = (seen, r.net.state_dict())
        # weights are handed back (and saved) in the default memory order
        assert all(p.is_contiguous() for p in r.net.parameters())
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-4, abs=1e-5)
    for k, v in losses[False][1].items():
        torch.testing.assert_close(losses[True][1][k], v, rtol=1e-3, atol=1e-5)

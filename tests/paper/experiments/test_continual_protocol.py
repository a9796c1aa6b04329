"""The continual-learning protocol (paper.experiments.continual) in its quick form: the
frozen earlier EBMs get no gradient in any stage, finished stages are reused, and the
benchmark writes its flat keys. (Named ``_protocol`` so its module name differs from
``tests/train/test_continual.py``: the test folders have no ``__init__.py``.)"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import conceptebm.train.continual as continual
from conceptebm.checkpoints import load_energy
from paper.experiments.continual import (
    SELECT_SEED,
    STAGES,
    ContinualSettings,
    gan_given,
    stage_config,
    start_config,
    train_ebm_stage,
)
from paper.experiments.continual import eval_targets as exp_targets

ROOT = Path(__file__).resolve().parents[3]


def test_frozen_models_get_no_gradient_in_every_stage(tmp_path, monkeypatch):
    settings = ContinualSettings.quick_settings(out_dir=str(tmp_path / "ckpt"),
                                                run_dir=str(tmp_path / "runs"))
    loaded, calls = [], {"n": 0}
    real_load = continual.load

    def spy(*a, **k):  # every frozen EBM the training loop loads, counted in the sampler
        e = real_load(*a, **k)
        e.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
        loaded.append((str(a[0]), e))
        return e

    monkeypatch.setattr(continual, "load", spy)
    paths = []
    for k in (1, 2, 3):
        loaded.clear()
        calls["n"] = 0
        rec = train_ebm_stage(k, settings)
        assert not rec["reused"]
        assert [p for p, _ in loaded] == paths  # exactly the earlier stages, in order
        cfg = settings.ebm[k - 1]
        if k > 1:  # the sampler summed them: K steps x iterations calls each, at least
            assert calls["n"] >= (k - 1) * cfg["sampler_steps"] * cfg["iterations"]
        for path, frozen in loaded:
            assert not frozen.training
            assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
            on_disk = load_energy(path).state_dict()
            for name, v in frozen.state_dict().items():
                assert torch.equal(v, on_disk[name]), (k, path, name)  # unchanged
        if paths:  # the new EBM is a new net, not a copy of a frozen one
            assert load_energy(rec["path"]).concept.name == STAGES[k - 1].concept
        paths.append(rec["path"])
    # a finished stage is reused, not retrained
    before = Path(paths[0]).stat().st_mtime_ns
    again = train_ebm_stage(1, settings)
    assert again["reused"] and Path(paths[0]).stat().st_mtime_ns == before


def test_a_discriminative_start_builds_the_stage_net():
    # its best weights start the stage's CD run, so every net option has to carry over
    settings = ContinualSettings(ebm=({}, {"center_input": True, "hue_invariant": True,
                                           "head": "pool", "downsample": "pool", "width": 8},
                                      {}), starts=(None, {"iterations": 10}, None))
    config = stage_config(2, settings, frozen=["stage1.safetensors"])
    start = start_config(2, settings, config)
    assert start.objective == "contrastive" and start.frozen == []
    concept = STAGES[1]
    assert start.net_config() == config.net_config()
    assert start.net_config()["hue_invariant"] and start.net_config()["head"] == "pool"
    assert (start.concept, start.dataset) == (concept.concept, concept.dataset)


def test_gan_label_variants():
    assert gan_given(3, "all") == ("position", "shape", "color")
    assert gan_given(2, "paper") == ("shape",)
    assert gan_given(1, "paper") == gan_given(1, "all") == ("position",)


def _quick(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m paper.benchmarks.<script> --quick --json out`` on one thread."""
    proc = subprocess.run([sys.executable, "-m", f"paper.benchmarks.{script.removesuffix('.py')}",
                           "--quick", "--json",
                           str(out), "--threads", "1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_benchmark_quick_writes_the_keys(tmp_path):
    out = tmp_path / "continual.json"
    proc = _quick("continual.py", out, "--out-dir", str(tmp_path / "ckpt"),
                  "--test-seed", "20261207")
    assert "| ebm |" in proc.stdout and "| paper gan |" in proc.stdout
    m = json.loads(out.read_text())
    assert m["protocol"]["test_seeds"] == [20261207]  # read once, apart from every choice
    assert not set(m["protocol"]["selection_seeds"]) & set(m["protocol"]["test_seeds"])
    for k in (1, 2, 3):  # realism beside accuracy, and its real-vs-real floor
        for model in ("ebm", "ebm_selected", "ebm_denoised", "gan", "gan_paper"):
            assert m[f"{model}.stage{k}.fid"] >= 0
        assert m[f"real.stage{k}.fid_floor"] >= 0
        # noise-free steps chosen on validation by FID, from the candidates
        d = m[f"ebm_denoised.stage{k}.denoise_steps"]
        assert d in (0, 2) and m[f"ebm_denoised.stage{k}.valid.d{d}.fid"] == min(
            m[f"ebm_denoised.stage{k}.valid.d{c}.fid"] for c in (0, 2))
    for asked in ("cube", "sphere"):  # how the judges read each asked-for shape: a partition
        reads = [m[f"gan_paper.stage2.reads.{asked}.{r}"]
                 for r in ("sphere", "cube", "cylinder", "none")]
        assert min(reads) >= 0 and abs(sum(reads) - 1) < 1e-6, reads
    for model in ("gan", "gan_paper"):  # each GAN stage kept its best validation snapshot
        for k in (2, 3):
            assert m[f"{model}.stage{k}.selected_step"] >= 1
            assert 0 <= m[f"{model}.stage{k}.valid.all"] <= 1
    keys = ["stage1.position", "stage2.position", "stage2.shape", "stage3.position",
            "stage3.shape", "stage3.color"]
    for model in ("ebm", "gan", "gan_paper"):
        for key in keys:
            assert 0 <= m[f"{model}.{key}"] <= 1, (model, key)
            assert m[f"{model}.{key}.se"] >= 0
        for k in (1, 2, 3):
            assert m[f"{model}.stage{k}.minutes"] >= 0
    assert not any(k.startswith("ebm_calibrated.") for k in m)  # quick: nothing to calibrate
    for k in (1, 2, 3):  # the composition chosen on validation targets, judged on the test ones
        assert m[f"ebm_selected.stage{k}.power"] == 0.0  # quick: the raw sum only
        assert m[f"ebm_selected.stage{k}.steps"] in (2, 3)
        assert 0 <= m[f"ebm_selected.stage{k}.all"] <= m[f"ebm_selected.stage{k}.position"]
        for steps in (2, 3):
            assert 0 <= m[f"ebm_selected.stage{k}.valid.p0.s{steps}.all"] <= 1
            # later stages also tried continuing the stage before's chains
            assert (f"ebm_selected.stage{k}.valid.p0.s{steps}.previous.all" in m) == (k > 1)
        assert m[f"ebm_selected.stage{k}.from_previous"] in ((0.0,) if k == 1 else (0.0, 1.0))
    for model in ("ebm", "ebm_selected", "gan", "real"):  # the second reader of shape
        assert 0 <= m[f"{model}.stage2.shape_reader2"] <= 1
    assert "ebm.stage1.shape_reader2" not in m
    assert m["real.stage3.color"] > 0.8  # the judges on the real scenes of the targets
    assert 0 <= m["ebm.stage3.all"] <= min(m[f"ebm.stage3.{c}"] for c in
                                           ("position", "shape", "color"))
    assert m["paper.ebm.stage3.color"] == 0.521 and m["n"] == 16
    assert (tmp_path / "ckpt" / "continual_quick.png").stat().st_size > 1000
    assert (tmp_path / "ckpt" / "continual_quick_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "ckpt" / "stage3_color.json").exists()
    # --eval-only trains nothing: a GAN stage without its checkpoint is left out, not trained
    (tmp_path / "ckpt" / "gan_paper_stage3.safetensors").unlink()
    _quick("continual.py", out, "--out-dir", str(tmp_path / "ckpt"), "--test-seed", "20261207",
           "--eval-only")
    again = json.loads(out.read_text())
    assert "gan_paper.stage3.position" not in again and "gan.stage3.position" in again
    assert again["gan_paper.stage2.shape"] == m["gan_paper.stage2.shape"]  # same read
    assert not (tmp_path / "ckpt" / "gan_paper_stage3.safetensors").exists()


def test_the_committed_shape_ebm_reads_shape_on_colours_it_never_saw():
    # stage 2 sees purple objects only; its net sees value and chroma, not the colour, so it
    # tells cube from sphere on every colour (0.79 on 512 scenes; chance is 0.5)
    from paper.experiments.continual import shape_transfer

    shape = load_energy(ROOT / "paper" / "checkpoints" / "continual" /
                        "stage2_shape.safetensors").requires_grad_(False)
    assert shape.config.get("hue_invariant") is True
    m = shape_transfer(shape, n=256)
    for name in ("purple", "every_color"):  # 4 standard errors above chance
        assert m[name].value > 0.5 + 4 * math.sqrt(0.25 / 256), (name, m[name].value)


def test_hue_invariance_benchmark_quick(tmp_path):
    out = tmp_path / "hue.json"
    _quick("hue_invariance.py", out, "--run-dir", str(tmp_path / "runs"))
    m = json.loads(out.read_text())
    for name in ("rgb", "hue"):
        assert m[f"{name}.minutes"] > 0
        for key in ("purple", "every_color"):
            assert 0 <= m[f"{name}.{key}"] <= 1 and m[f"{name}.{key}.se"] >= 0
    for net in ("rgb", "hue"):  # the two nets differ only in what they see
        config = json.loads((tmp_path / "runs" / net / "config.json").read_text())
        assert config["hue_invariant"] is (net == "hue")
    bad = subprocess.run([sys.executable, "-m", "paper.benchmarks.hue_invariance", "--n", "0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "--n must be >= 1" in bad.stderr


def test_calibration_weights_of_the_committed_stages():
    # the stage-2 conjunction's weights (ref / gap) ** p: their geometric mean is 1, the model
    # with the larger energy gap gets the smaller weight, and p = 0 is the raw sum
    from paper.experiments.continual import calibration_weights

    folder = ROOT / "paper" / "checkpoints" / "continual"
    models = [load_energy(folder / f"{n}.safetensors").requires_grad_(False)
              for n in ("stage1_position", "stage2_shape")]
    w = calibration_weights(models, 2, 1.0, n=32)
    assert abs(math.log(w[0]) + math.log(w[1])) < 1e-9
    half = calibration_weights(models, 2, 0.5, n=32)
    torch.testing.assert_close(torch.tensor(half, dtype=torch.float64) ** 2,
                               torch.tensor(w, dtype=torch.float64), rtol=1e-9, atol=0)
    assert calibration_weights(models, 2, 0.0, n=32) == [1.0, 1.0]


def test_a_calibrated_conjunction_generates(tmp_path):
    # the weighted terms keep what generation reads off the newest model (image size)
    from conceptebm.evaluate import load_judges
    from paper.experiments.continual import evaluate_ebm

    folder = ROOT / "paper" / "checkpoints" / "continual"
    paths = [str(folder / f"{n}.safetensors") for n in ("stage1_position", "stage2_shape")]
    targets = {"position": torch.zeros(2, 2), "shape": torch.tensor([0, 1])}
    m, images = evaluate_ebm(paths, targets, load_judges(), calibration_power=0.5)
    assert images.shape == (2, 3, 32, 32) and 0 <= m["shape_acc"].value <= 1


def test_composition_is_chosen_by_validation_accuracy_on_every_concept(monkeypatch):
    import paper.experiments.continual.selection as exp
    from conceptebm.evaluate.metrics import Metric

    seen, measured = [], []

    def fake(paths, targets, judge, *, seed, calibration_power, num_steps, gaps, x0):
        # the gaps measured once, for every power; none for one EBM (weight 1)
        assert gaps == ([0.3, 0.1] if len(paths) == 2 else None)
        assert x0 is None  # every chain from noise
        seen.append((calibration_power, num_steps, len(targets["position"])))
        # power 0.5 buys position, 1.0 shape; only (0.5, 300) gets both in the same images
        joint = {(0.5, 300): 0.6, (1.0, 300): 0.6}.get((calibration_power, num_steps), 0.3)
        return {"all_acc": Metric(joint, 0.0)}, None

    monkeypatch.setattr(exp, "evaluate_ebm", fake)
    monkeypatch.setattr(exp, "load_energy", lambda path: torch.nn.Linear(1, 1))
    monkeypatch.setattr(exp, "stage_gaps", lambda models, k, seed: measured.append(k) or
                        [0.3, 0.1])
    chosen, tried = exp.select_composition(["a", "b"], 2, None, powers=(0.0, 0.5, 1.0),
                                           steps=(60, 300), n=7)
    assert measured == [2]
    # the first of the tie, in listed order
    assert chosen == {"power": 0.5, "steps": 300, "start": "noise"}
    assert sorted(tried) == [(p, s, "noise") for p in (0.0, 0.5, 1.0) for s in (60, 300)]
    assert {n for *_, n in seen} == {7}
    # validation targets are other scenes than the test targets
    assert not torch.equal(exp.eval_targets(2, 7, seed=exp.SELECT_SEED)["position"],
                           exp.eval_targets(2, 7)["position"])
    seen.clear()  # one EBM: its weight is 1 at any power, so only the chain length is tried
    chosen, tried = exp.select_composition(["a"], 1, None, powers=(0.5, 1.0), steps=(60, 300))
    assert sorted(tried) == [(0.0, 60, "noise"), (0.0, 300, "noise")]
    assert chosen == {"power": 0.0, "steps": 60, "start": "noise"}


def test_a_stage_may_start_from_the_stage_befores_images(monkeypatch):
    import paper.experiments.continual.selection as exp
    from conceptebm.evaluate.metrics import Metric

    drawn, starts = [], []

    def previous(targets):  # stage k - 1's generations for the validation targets
        drawn.append(len(targets["position"]))
        return torch.full((len(targets["position"]), 3, 4, 4), 0.25)

    def fake(paths, targets, judge, *, seed, calibration_power, num_steps, gaps, x0):
        starts.append(None if x0 is None else float(x0.mean()))
        # continuing the stage before's chains gets more of them right on every concept
        return {"all_acc": Metric(0.3 if x0 is None else 0.5, 0.0)}, None

    monkeypatch.setattr(exp, "evaluate_ebm", fake)
    chosen, tried = exp.select_composition(["a", "b"], 2, None, powers=(0.0,),
                                           starts=exp.STARTS, n=5, previous=previous)
    assert drawn == [5]  # drawn once, for every power and chain length
    assert starts == [None, 0.25]
    assert chosen == {"power": 0.0, "steps": 60, "start": "previous"}
    assert sorted(tried) == [(0.0, 60, "noise"), (0.0, 60, "previous")]
    # stage 1 has no stage before it: only noise
    _, tried = exp.select_composition(["a"], 1, None, starts=exp.STARTS, previous=previous)
    assert [key[2] for key in tried] == ["noise"]
    for bad in (("pretrained",), ()):
        with pytest.raises(ValueError, match="starts must be among"):
            exp.select_composition(["a", "b"], 2, None, starts=bad)
    with pytest.raises(ValueError, match="needs previous"):
        exp.select_composition(["a", "b"], 2, None, starts=("previous",))


def test_stage_images_continue_the_chosen_chains_of_the_stages_before(monkeypatch):
    import paper.experiments.continual.selection as exp

    choice = {1: {"power": 0.0, "steps": 60, "start": "noise"},
              2: {"power": 0.5, "steps": 60, "start": "previous"},
              3: {"power": 0.25, "steps": 30, "start": "previous"}}
    calls = []

    def fake(paths, targets, *, seed, calibration_power, num_steps, x0, denoise_steps=0):
        calls.append((len(paths), calibration_power, num_steps, x0, denoise_steps))
        return torch.full((2, 3, 4, 4), float(len(paths)))  # stage k's images are all k

    monkeypatch.setattr(exp, "stage_selection", lambda k, s, judge=None: choice[k])
    monkeypatch.setattr(exp, "compose_images", fake)
    out = exp.stage_images(3, ContinualSettings(), {"position": torch.zeros(2, 2)})
    assert float(out.mean()) == 3
    assert [c[:3] for c in calls] == [(1, 0.0, 60), (2, 0.5, 60), (3, 0.25, 30)]
    assert calls[0][3] is None  # stage 1 from noise; each later one from the one before
    assert float(calls[1][3].mean()) == 1 and float(calls[2][3].mean()) == 2
    calls.clear()
    choice[3]["start"] = "noise"  # from noise: the stages before are not drawn at all
    exp.stage_images(3, ContinualSettings(), {"position": torch.zeros(2, 2)})
    assert [c[0] for c in calls] == [3] and calls[0][3] is None
    calls.clear()
    choice[3]["start"] = "previous"  # noise-free steps end stage 3's chains only
    exp.stage_images(3, ContinualSettings(), {"position": torch.zeros(2, 2)}, denoise_steps=5)
    assert [c[4] for c in calls] == [0, 0, 5]


def test_composed_chains_start_where_they_are_told(tmp_path):
    from paper.experiments.continual import compose_images

    folder = ROOT / "paper" / "checkpoints" / "continual"
    paths = [str(folder / "stage1_position.safetensors")]
    targets = {"position": torch.zeros(3, 2)}
    x0 = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cont = compose_images(paths, targets, num_steps=1, x0=x0)
    fresh = compose_images(paths, targets, num_steps=1)
    # one Langevin step moves the chain a little from where it started
    assert (cont - x0).abs().mean() < 0.5 * (fresh - x0).abs().mean()
    with pytest.raises(ValueError, match="x0 holds 2 images for 3 targets"):
        compose_images(paths, targets, num_steps=1, x0=x0[:2])


def test_the_second_shape_reader_reads_real_scenes():
    # the shipped shape EBM, choosing cube or sphere by energy, on real stage-2 / 3 scenes
    # (measured 0.98 / 0.935 on 200; n = 64 puts 0.85 over 3 standard errors below)
    from conceptebm.datasets import make_dataset
    from paper.experiments.continual import SHAPES, read_shapes

    for name in ("continual_shape", "continual_color"):
        x, labels = make_dataset(name, size=64, seed=11, shapes=SHAPES).batch(torch.arange(64))
        hits = read_shapes(x, chunk=40) == labels["shape"]
        assert hits.float().mean() >= 0.85, name
        assert set(read_shapes(x).tolist()) <= {0, 1}  # only the stage's shapes


def test_train_as_selected_weights_the_frozen_ebms_by_the_earlier_stage_choice(monkeypatch):
    import paper.experiments.continual.selection as exp

    folder = ROOT / "paper" / "checkpoints" / "continual"
    settings = ContinualSettings(out_dir=str(folder), train_as_selected=True)
    monkeypatch.setattr(exp, "stage_selection", lambda k, s, judge=None: {"power": 0.5})
    models = [load_energy(folder / f"{n}.safetensors").requires_grad_(False)
              for n in ("stage1_position", "stage2_shape")]
    weights = exp.frozen_weights(3, settings)
    assert weights == exp.calibration_weights(models, 2, 0.5, seed=settings.seed)
    assert weights[1] > 1 > weights[0]  # shape's energy gap is the smaller: weighted up
    assert exp.frozen_weights(2, settings) == [1.0]  # one frozen EBM is not reweighted
    monkeypatch.setattr(exp, "stage_selection", lambda k, s, judge=None: {"power": 0.0})
    assert exp.frozen_weights(3, settings) == [1.0, 1.0]  # the raw sum
    cfg = stage_config(3, settings, ["a.safetensors", "b.safetensors"], weights)
    assert cfg.frozen_weights == weights


def test_a_stage_selection_is_reused_until_its_checkpoints_or_grid_change(tmp_path,
                                                                          monkeypatch):
    import shutil

    import paper.experiments.continual.selection as exp
    from conceptebm.evaluate.metrics import Metric

    calls = []

    def fake(paths, k, judge, **kw):
        calls.append(kw)
        return {"power": 0.0, "steps": kw["steps"][0], "start": "noise"}, {
            (0.0, kw["steps"][0], "noise"): {"all_acc": Metric(0.5, 0.1),
                                             "object_rate": Metric(1, 0)}}

    monkeypatch.setattr(exp, "select_composition", fake)
    ckpt = tmp_path / "stage1_position.safetensors"
    shutil.copy(ROOT / "paper" / "checkpoints" / "continual" / ckpt.name, ckpt)
    settings = ContinualSettings(out_dir=str(tmp_path), select_steps=(60,), n_select=4)
    first = exp.stage_selection(1, settings, judge=object())
    assert first["valid"] == {"p0.s60": {"all_acc": 0.5, "object_rate": 1.0}}
    assert exp.stage_selection(1, settings, judge=object()) == first and len(calls) == 1
    settings.n_select = 5  # another grid: chosen again
    exp.stage_selection(1, settings, judge=object())
    assert len(calls) == 2
    ckpt.write_bytes(ckpt.read_bytes() + b" ")  # another checkpoint: chosen again
    exp.stage_selection(1, settings, judge=object())
    assert len(calls) == 3 and (tmp_path / "stage1_selection.json").exists()


def test_settings_refuse_what_would_fail_after_a_stage_trained():
    for bad, match in (({"select_starts": ("pretrained",)}, "select_starts"),
                       ({"select_starts": ()}, "select_starts"),
                       ({"ebm": ({},)}, "one entry per stage"),
                       ({"n_select": 0}, "n_select must be >= 1")):
        with pytest.raises(ValueError, match=match):
            ContinualSettings(**bad)
    assert ContinualSettings(select_starts=("noise",)).select_starts == ("noise",)


def test_gan_stages_carry_adam_and_keep_the_best_validation_snapshot(tmp_path, monkeypatch):
    import paper.experiments.continual.training as training
    from paper.baselines.gan import load_gan

    settings = ContinualSettings.quick_settings(out_dir=str(tmp_path / "ckpt"),
                                                run_dir=str(tmp_path / "runs"),
                                                gan_check_minutes=1e-9)
    seen, scores = [], iter([0.1, 0.9, 0.2, 0.3, 0.1, 0.0])

    def judge_snapshot(gan, given, targets, judge, seed):  # scripted validation scores
        seen.append((targets, {k: v.clone() for k, v in gan.generator.state_dict().items()}))
        return {c: 0.5 for c in targets} | {"all": next(scores), "object_rate": 1.0}

    monkeypatch.setattr(training, "_gan_judge", judge_snapshot)
    _, rec1 = training.train_gan_stage(1, "paper", settings, judge=object())
    assert [p["step"] for p in rec1["selection"]["curve"]] == [1, 2, 3]
    assert rec1["selection"]["chosen"]["step"] == 2  # the best on validation, not the last
    kept = load_gan(rec1["path"])
    for k, v in kept.generator.state_dict().items():
        assert torch.equal(v, seen[1][1][k]), k
    # the selection's targets are the validation ones, not the test targets
    valid = exp_targets(1, settings.n_select, seed=SELECT_SEED + settings.seed)
    assert all(torch.equal(seen[0][0][c], valid[c]) for c in valid)
    assert settings.test_scene_seed() not in settings.selection_seeds()
    # stage 2 goes on from the kept snapshot's Adam states (2 steps), not a fresh Adam
    gan2, rec2 = training.train_gan_stage(2, "paper", settings, judge=object())
    state = load_gan(tmp_path / "runs" / "gan_paper_stage2_state.safetensors")
    steps = {int(s["step"]) for s in state.opt_g.state_dict()["state"].values()}
    assert steps == {2 + rec2["selection"]["chosen"]["step"]}
    assert rec2["budget"]["clock"] == "process" and rec2["budget"]["budget_minutes"] == 1.0
    # without stage 1's Adam states, stage 2 refuses to start from its weights alone
    (tmp_path / "ckpt" / "gan_paper_stage2.safetensors").unlink()
    (tmp_path / "runs" / "gan_stage1_state.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="Adam"):
        training.train_gan_stage(2, "paper", settings, judge=object())


def test_gan_budget_is_the_ebm_stages_training_time(tmp_path):
    import shutil

    from paper.experiments.continual import gan_budget_minutes

    for name in ("stage1_position", "stage2_shape", "stage3_color"):
        shutil.copy(ROOT / "paper" / "checkpoints" / "continual" / f"{name}.safetensors",
                    tmp_path / f"{name}.safetensors")
        shutil.copy(ROOT / "paper" / "checkpoints" / "continual" / f"{name}.json",
                    tmp_path / f"{name}.json")
    settings = ContinualSettings(out_dir=str(tmp_path), gan_budget_ratio=1.5)
    for k, ebm in ((1, 13.0), (2, 11.4), (3, 32.8)):
        budget, matched = gan_budget_minutes(k, settings)
        assert round(matched, 1) == ebm and budget == pytest.approx(1.5 * matched)
    assert gan_budget_minutes(2, ContinualSettings(gan_minutes=3.0)) == (3.0, None)


def test_test_seed_is_validated_and_kept_apart_from_selection(tmp_path):
    settings = ContinualSettings(test_seed=20261207)
    assert settings.test_scene_seed() == 20261207
    assert settings.test_scene_seed() not in settings.selection_seeds()
    with pytest.raises(ValueError, match="validation seed"):
        ContinualSettings(test_seed=settings.selection_seeds()[0])
    for bad in ("-1", str(settings.selection_seeds()[0])):
        proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.continual", "--quick",
                               "--test-seed", bad], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 2 and "error: --test-seed must be" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "paper.benchmarks.continual", "--quick",
                           "--gan-variants", "paper,gan"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "error: --gan-variants" in proc.stderr

"""benchmarks/inference_speed.py in its quick mode: it runs, prints, writes its JSON keys.

No timing assertions (the suite runs on a shared machine): only that the measurements exist,
are positive, and that both models' MAEs are real errors on the same scenes.
"""

import json
import math

KEYS = ("map_images_per_s", "map_mae", "energy_map_48_s", "reference_map_images_per_s",
        "reference_map_mae")


def test_inference_speed_quick(tmp_path, run_benchmark):
    out = tmp_path / "speed.json"
    stdout = run_benchmark("inference_speed", "--quick", "--json", str(out))
    assert "images/s" in stdout and "of the" in stdout
    res = json.loads(out.read_text())
    for key in KEYS + ("trunk_gflops", "matmul_gflops", "trunk_fraction_of_peak"):
        assert math.isfinite(res[key]) and res[key] > 0, (key, res[key])
    assert 0 <= res["map_mae"] <= 2 and 0 <= res["reference_map_mae"] <= 2
    assert sum(b["images"] for b in res["per_block"]) == res["settings"]["n"] == 12
    assert res["settings"]["model_net"]["type"] == "LateEnergyNet"  # position_late


def test_late_model_quick(tmp_path, run_benchmark):
    from conceptebm.checkpoints import load_energy
    from conceptebm.energies import LateEnergyNet

    out = tmp_path / "late.safetensors"
    run_benchmark("late_model", "--quick", "--out", str(out))
    net = load_energy(out)
    assert isinstance(net, LateEnergyNet) and net.config["width"] == 4
    # the readout starts at the fitted camera projection: x grows to the right, y upward
    # in the label, downward in the image
    w = net.where.weight.detach()
    assert w[0, 0] > 0.3 and w[1, 1] < -0.3, w


def test_late_model_robust_family_quick(tmp_path, run_benchmark):
    from conceptebm.checkpoints import load_checkpoint

    out = tmp_path / "robust.safetensors"
    run_benchmark("late_model", "--quick", "--dataset", "position_robust", "--near-negatives",
                  "2", "--clutter-negatives", "--two-objects", "0.25", "--augment", "0.1",
                  "0.5", "0.1", "--out", str(out))
    ckpt = load_checkpoint(out)
    train = ckpt.meta["train"]
    assert train["dataset"] == "position_robust" and train["two_objects"] == 0.25
    assert train["clutter_negatives"] and train["near_negatives"] == 2
    # the kept weights are the validation history's best
    best = max(train["validation"], key=lambda r: r["score"])
    assert train["best_iteration"] == best["iteration"] == train["iterations_run"] == 20
    assert "--two-objects 0.25" in ckpt.meta["command"]

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_compose_table_quick_negates_as_the_values_left(tmp_path):
    out = tmp_path / "table.json"
    proc = _run("paper.benchmarks.compose_table", "--quick", "--extras",
                "--rows", "pos_and_not_color", "not_pos_and_color",
                "implication_once", "--negation", "complement", "--out",
                str(tmp_path / "png"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["settings"]["negation"] == "complement"
    assert set(m["settings"]["temperatures"]) == {"position", "color"}
    for row in ("pos_and_not_color", "not_pos_and_color", "implication_once"):
        assert 0 <= m[f"{row}.pos_acc"] <= 1 and 0 <= m[f"{row}.color_acc"] <= 1
        assert 0 <= m[f"{row}.object_rate"] <= 1 and m[f"{row}.pos_acc_se"] >= 0
        assert (tmp_path / "png" / f"{row}.png").exists()


def test_compose_table_reads_test_or_validation_targets_with_realism(tmp_path):
    reads = {}
    for split in ("test", "validation"):
        out = tmp_path / f"{split}.json"
        proc = _run("paper.benchmarks.compose_table", "--quick", "--rows", "pos_and_color",
                    "--split", split, "--denoise-steps", "0", "2", "--out",
                    str(tmp_path / split), "--json", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        reads[split] = m = json.loads(out.read_text())
        protocol = m["protocol"]
        assert set(protocol["selection_seeds"]).isdisjoint(protocol["test_seeds"])
        assert m["seed"] == (20261207 if split == "test" else 0)
        assert "paper.benchmarks.compose_table" in m["command"] and "--split" in m["command"]
        for prefix in ("pos_and_color", "pos_and_color.denoise2"):
            assert m[f"{prefix}.fid"] > 0 and m[f"{prefix}.fid_floor"] > 0, prefix
            assert 0 <= m[f"{prefix}.pos_acc"] <= 1
        assert (tmp_path / split / "pos_and_color_denoise2.png").exists()
    # other targets, other chains: the two reads differ
    assert reads["test"]["pos_and_color.pos_err"] != reads["validation"]["pos_and_color.pos_err"]


def test_compose_table_refuses_bad_options():
    for bad in (["--negation-weight", "-1"], ["--n", "0"], ["--rows", "bogus"],
                ["--alpha", "nan"], ["--negation", "bogus"], ["--val-seed", "7", "--test-seed",
                                                              "7"],
                ["--denoise-steps", "-1"], ["--split", "train"], ["--test-seed", "-3"]):
        proc = _run("paper.benchmarks.compose_table", *bad, timeout=120)
        assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in \
            proc.stderr, bad


def test_compose_sweep_quick_checks_a_knob_on_validation(tmp_path):
    out = tmp_path / "sweep.json"
    proc = _run("paper.benchmarks.compose_sweep", "--quick", "--sweeps", "raw", "--out",
                str(tmp_path / "png"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["protocol"]["selection_seeds"] == [0] and m["protocol"]["test_seeds"] == [20261207]
    assert m["default.raw"] is False and m["choice.raw"] in (False, True)
    assert m["choice.denoise_steps"] in (0, 5, 10, 20)
    assert {"criterion.raw=False", "criterion.raw=True"} <= set(m)
    assert "default.pos_and_color.pos_acc" in m and "raw=True.pos_and_color.pos_acc" in m
    proc = _run("paper.benchmarks.compose_sweep", "--val-seed", "3", "--test-seed", "3",
                timeout=120)
    assert proc.returncode == 2 and "error:" in proc.stderr

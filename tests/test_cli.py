import json

from conceptebm.cli import main


def test_analytic_demo_matches_closed_forms(tmp_path):
    assert main(["demo", "--analytic", "--out", str(tmp_path), "--chains", "400",
                 "--steps", "150"]) == 0
    assert (tmp_path / "analytic_composition.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())
    # AND of N(-1.5, .5) and N(1.5, .5): mean 0, var .25; 400 chains -> se(mean) = 0.025
    assert abs(report["A & B"]["mean_x"]) < 0.1
    assert abs(report["A | B"]["frac_right"] - 0.5) < 0.1


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "command" in capsys.readouterr().out


def test_scene_demo_smoke(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "-n", "8", "--steps", "3",
                 "--threads", "1"]) == 0
    assert (tmp_path / "compositions.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"pos_and_color", "pos1_or_pos2", "pos_and_not_color", "or_of_ands"} <= set(report)

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


def test_demo_marks_each_target_where_the_default_camera_sees_it():
    from conceptebm.cli.demo import target_pixels

    (centre,), (right_far,), (left_near,) = (target_pixels(f"position({x},{y})", 32)
                                              for x, y in ((0, 0), (1, 1), (-1, -1)))
    assert abs(centre[0] - 15.5) < 1e-4  # x = 0 is the image's middle column
    assert right_far[0] > 20 and right_far[1] < centre[1]  # +x right, +y up (farther)
    assert left_near[0] < 10 and left_near[1] > centre[1]
    assert target_pixels("color('red')", 32) == []
    two = target_pixels("Or(position(-0.5,0.2) | position(0.4,-0.1), temperature=0.01)", 32)
    assert len(two) == 2

import json

from conceptebm.cli import main


def test_analytic_demo_matches_closed_forms(tmp_path):
    assert main(["demo", "--analytic", "--out-dir", str(tmp_path), "--chains", "400",
                 "--langevin-steps", "150"]) == 0
    assert (tmp_path / "analytic_composition.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())
    # AND of N(-1.5, .5) and N(1.5, .5): mean 0, var .25; 400 chains -> se(mean) = 0.025
    assert abs(report["A & B"]["mean_x"]) < 0.1
    assert abs(report["A | B"]["frac_right"] - 0.5) < 0.1


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "command" in capsys.readouterr().out


def test_scene_demo_smoke(tmp_path):
    assert main(["demo", "--out-dir", str(tmp_path), "-n", "8", "--langevin-steps", "3",
                 "--threads", "1", "--quiet"]) == 0
    assert (tmp_path / "compositions.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"pos_and_color", "pos1_or_pos2", "pos_and_not_color", "or_of_ands"} <= set(report)


def test_demo_marks_each_target_where_the_default_camera_sees_it():
    from conceptebm.cli.demo import target_pixels

    (centre,), (right_far,), (left_near,) = (target_pixels([(x, y)], 32)
                                              for x, y in ((0, 0), (1, 1), (-1, -1)))
    assert abs(centre[0] - 15.5) < 1e-4  # x = 0 is the image's middle column
    assert right_far[0] > 20 and right_far[1] < centre[1]  # +x right, +y up (farther)
    assert left_near[0] < 10 and left_near[1] > centre[1]
    assert target_pixels([], 32) == []


def test_demo_reads_its_targets_from_the_rows_trees_not_from_a_repr():
    import torch

    from conceptebm.cli.demo import target_caption, target_positions
    from conceptebm.compose.table import ROWS, draw_targets

    targets = draw_targets(3, 4, torch.Generator().manual_seed(0))
    one = {k: v[1:2] for k, v in targets.items()}  # the second image's targets
    rows = {r.key: r for r in ROWS}
    both = target_positions(rows["pos1_or_pos2"].tree(one))
    assert torch.allclose(torch.tensor(both), torch.cat([one["pos1"], one["pos2"]]))
    assert target_positions(rows["color"].tree(one)) == []
    colors = {"color": ("red", "green", "blue", "cyan")}
    caption = target_caption(rows["pos_and_not_color"].tree(one), colors)
    x, y = one["pos"][0].tolist()
    assert caption == f"position({x:.2f},{y:.2f}) & ~color({colors['color'][int(one['col'])]!r})"

"""``conceptebm sample``: writes exactly the path it prints, in chunks of chains."""

import conceptebm.cli.sample as sample_cli
from conceptebm.cli import main


def test_sample_writes_the_path_it_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sample_cli, "CHUNK", 2)  # 3 images: chunks of 2 and 1
    out = tmp_path / "grid.jpg"
    assert main(["sample", "position=(0.3,-0.2) & color=red", "-n", "3", "--langevin-steps", "2",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 3 samples to {out}" in printed and out.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.jpg"]


def test_sample_negates_through_the_classifier(tmp_path, capsys, monkeypatch):
    out = tmp_path / "grid.png"
    assert main(["sample", "position=(0.3,-0.2) & ~color=red & ~color=blue", "-n", "2",
                 "--langevin-steps", "2", "--negation", "classifier", "--negation-weight", "2",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "NotAny(color, 2 values)" in printed and out.stat().st_size > 500
    # the closed world: a negation stands alone (another colour)
    assert main(["sample", "~color=red", "-n", "2", "--langevin-steps", "2", "--negation",
                 "complement", "-o", str(out)]) == 0
    assert "NotAny(color, 1 value, closed world)" in capsys.readouterr().out
    assert main(["sample", "~color=red", "-n", "2", "--langevin-steps", "2", "-o", str(out)]) == 2
    assert "no positive concept" in capsys.readouterr().err
    # a colour model no better than chance has no classifier to negate through
    from conceptebm.compose import generate as gen_module

    real = gen_module.load_concepts

    def no_classifier(*a, **k):
        cm = real(*a, **k)
        cm.temperatures.clear()
        return cm

    monkeypatch.setattr(gen_module, "load_concepts", no_classifier)
    assert main(["sample", "position=(0.3,-0.2) & ~color=red", "-n", "2", "--langevin-steps", "2",
                 "--negation", "classifier", "-o", str(out)]) == 2
    assert "better than chance" in capsys.readouterr().err

"""``conceptebm sample``: writes exactly the path it prints, in chunks of chains."""

import conceptebm.cli.sample as sample_cli
from conceptebm.cli import main


def test_sample_writes_the_path_it_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sample_cli, "CHUNK", 2)  # 3 images: chunks of 2 and 1
    out = tmp_path / "grid.jpg"
    assert main(["sample", "position=(0.3,-0.2) & color=red", "-n", "3", "--steps", "2",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 3 samples to {out}" in printed and out.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.jpg"]

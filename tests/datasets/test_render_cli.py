"""``conceptebm render``: writes a PNG grid (and labels) for any dataset name."""

import json

from PIL import Image

from conceptebm.cli import main
from conceptebm.cli.render import parse_option


def test_render_writes_png_grid(tmp_path):
    out = tmp_path / "grid.png"
    assert main(["render", "position", "-n", "12", "-o", str(out), "--threads", "1"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 300  # 8 tiles of 32 px, upscaled


def test_render_with_options_and_labels(tmp_path):
    out, lab = tmp_path / "cp.png", tmp_path / "cp.json"
    argv = ["render", "cross_product", "-n", "6", "-o", str(out), "--set", "fraction=0.1",
            "--set", "split=test", "--labels", str(lab), "--threads", "1"]
    assert main(argv) == 0
    data = json.loads(lab.read_text())
    assert len(data["items"]) == 6 and data["dataset"]["name"] == "cross_product"
    assert all(item["size"][0] < 0.45 for item in data["items"])


def test_render_rejects_unknown_names_and_options(tmp_path, capsys):
    assert main(["render", "nope", "-o", str(tmp_path / "x.png")]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["render", "position", "-n", "2", "-o", str(tmp_path / "x.png"),
                 "--set", "a=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown option" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
    assert parse_option("clutter=1,3") == ("clutter", (1, 3))
    assert parse_option("colors=red") == ("colors", "red")

"""Nothing of the user's is lost or silently wrong (issue 28): every refusal leaves the user's
folder exactly as it was (each test lists every file, with its bytes, before and after), and
the labels of a user's folder are checked for what they claim. Run as a user types the
commands (``conceptebm.cli.main``)."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conceptebm.cli import main
from conceptebm.datasets import load_images
from conceptebm.datasets.foreign import write_foreign

TRAIN = ["--smoke", "--quiet", "--eval-every", "0"]
USER = ["--objective", "contrastive", *TRAIN]


def listing(folder):
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return write_foreign(tmp_path_factory.mktemp("foreign"), n=24, seed=0)


def _copy(src, dest, edit=None):
    """A copy of the folder ``src`` whose labels.csv rows pass through ``edit(rows)``."""
    shutil.copytree(src, dest)
    if edit is not None:
        rows = list(csv.reader(open(dest / "labels.csv", newline="")))
        rows = edit(rows)
        with open(dest / "labels.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    return dest


# ----------------------------------------------------------------------------- train --out-dir
def test_train_refuses_a_folder_holding_files_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.json").write_text('{"mine": true}')
    (mine / "notes.txt").write_text("keep me")
    before = listing(mine)
    assert main(["train", *TRAIN, "--out-dir", str(mine)]) == 2
    one_error_line(capsys, "--out-dir", str(mine), "data.json", "notes.txt",
                   "choose a new or empty folder")
    assert listing(mine) == before
    # a run's own folder is marked, and a second run into it is refused without --resume
    run = tmp_path / "run"
    assert main(["train", *TRAIN, "--out-dir", str(run)]) == 0
    capsys.readouterr()
    assert json.loads((run / "conceptebm-run.json").read_text())["kind"] == \
        "conceptebm train run"
    before = listing(run)
    assert main(["train", *TRAIN, "--out-dir", str(run)]) == 2
    one_error_line(capsys, "already holds a training run", "--resume")
    assert listing(run) == before


def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path, foreign, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(foreign), "--concept", "position", *USER,
                 "--out-dir", str(run)]) == 0
    capsys.readouterr()
    other = write_foreign(tmp_path / "other", n=20, seed=1)
    before = listing(run)
    # another width than the checkpoint's: refused after the data was read
    assert main(["train", "--resume", "--data", str(other), "--concept", "position",
                 "--width", "8", "--out-dir", str(run), "--quiet"]) == 2
    one_error_line(capsys, "cannot resume", "width")
    assert listing(run) == before  # data.json not rewritten, command.txt not appended
    # so the next plain --resume still reads the run's own data
    assert main(["train", "--resume", "--out-dir", str(run), "--iterations", "7",
                 "--quiet"]) == 0
    assert f"on the run's data {foreign}" in capsys.readouterr().out
    assert json.loads((run / "data.json").read_text())["data"] == str(foreign)
    assert len((run / "command.txt").read_text().splitlines()) == 2


# ----------------------------------------------------------------------------- --each
def test_render_each_refuses_a_folder_it_did_not_write_and_appends_on_request(
        tmp_path, foreign, capsys):
    user = _copy(foreign, tmp_path / "user")
    before = listing(user)
    assert main(["render", "position", "-n", "3", "--each", str(user)]) == 2
    one_error_line(capsys, "--each", str(user), "labels.csv", "--append", "--force")
    assert listing(user) == before
    # --append: the columns must match the folder's labels.csv (these do not), else refused
    assert main(["render", "position", "-n", "3", "--each", str(user), "--append"]) == 2
    one_error_line(capsys, "--append", "columns")
    assert listing(user) == before
    # a folder of --each's own layout: --append adds new names and rows, keeps every file
    own = tmp_path / "own"
    assert main(["render", "position", "-n", "3", "--each", str(own)]) == 0
    (own / "mine.png").write_bytes((own / "img_00000.png").read_bytes())
    with open(own / "labels.csv", "a", newline="") as fh:
        fh.write("mine.png,0.1,0.2,0.3,red,cube\n")
    before = listing(own)
    assert main(["render", "position", "-n", "2", "--each", str(own)]) == 2
    one_error_line(capsys, "mine.png")
    assert listing(own) == before
    assert main(["render", "position", "-n", "2", "--start", "3", "--each", str(own),
                 "--append"]) == 0
    after = listing(own)
    assert all(after[name] == data for name, data in before.items() if name != "labels.csv"
               and not name.startswith("."))
    listed = [r[0] for r in csv.reader(open(own / "labels.csv"))][1:]
    images = sorted(p.name for p in own.glob("*.png"))
    assert sorted(listed) == images and len(images) == 6  # labels.csv describes every file
    assert len(load_images(own)) == 6


def test_each_force_and_a_rerun_into_its_own_folder(tmp_path, capsys):
    folder = tmp_path / "each"
    assert main(["render", "position", "-n", "4", "--each", str(folder)]) == 0
    # a re-run into its own folder replaces its set: the images it no longer lists go too
    assert main(["render", "color", "-n", "2", "--each", str(folder)]) == 0
    assert sorted(p.name for p in folder.glob("*.png")) == ["img_00000.png", "img_00001.png"]
    assert len(load_images(folder)) == 2
    # --force writes into a folder of someone else's files, and leaves the others alone
    user = tmp_path / "user"
    user.mkdir()
    (user / "photo.png").write_bytes((folder / "img_00000.png").read_bytes())
    (user / "labels.csv").write_text("file,size\nphoto.png,0.3\n")
    assert main(["render", "position", "-n", "2", "--each", str(user), "--force"]) == 0
    assert (user / "photo.png").read_bytes() == (folder / "img_00000.png").read_bytes()
    assert main(["render", "position", "-n", "2", "--append"]) == 2
    one_error_line(capsys, "--append", "--each")


def test_sample_each_refuses_a_folder_it_did_not_write(tmp_path, foreign, capsys):
    user = _copy(foreign, tmp_path / "user")
    before = listing(user)
    assert main(["sample", "color=red", "-n", "2", "--langevin-steps", "2", "--each",
                 str(user)]) == 2
    one_error_line(capsys, "--each", str(user), "--append")
    assert listing(user) == before


# ----------------------------------------------------------------------------- labels
def test_a_file_listed_twice(tmp_path, foreign, capsys):
    same = _copy(foreign, tmp_path / "same", lambda rows: rows + [rows[1]])
    assert main(["train", "--data", str(same), "--concept", "position", *USER,
                 "--out-dir", str(tmp_path / "r1")]) == 0
    captured = capsys.readouterr()
    assert "line 2 (scene_00000.png) and labels.csv line 26" in captured.err
    assert "used once" in captured.err and "24 images" in captured.out

    def clash(rows):
        row = list(rows[1])
        row[3] = "navy" if row[3] != "navy" else "teal"  # the colour column
        return rows + [row]

    differ = _copy(foreign, tmp_path / "differ", clash)
    before = listing(tmp_path)
    assert main(["train", "--data", str(differ), "--concept", "position", *USER,
                 "--out-dir", str(tmp_path / "r2")]) == 2
    one_error_line(capsys, "line 2 (scene_00000.png)", "line 26 (scene_00000.png)",
                   "different labels", "color")
    assert listing(tmp_path) == before  # no run folder


def test_a_word_among_the_numbers_of_a_numeric_concept(tmp_path, foreign, capsys):
    def word(rows):
        rows[4][-1] = "big"  # the size column of line 5
        return rows

    folder = _copy(foreign, tmp_path / "word", word)
    assert main(["train", "--data", str(folder), "--concept", "size", *USER,
                 "--out-dir", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "line 5", "size cell 'big' is not a number", "--concepts-file")
    assert not (tmp_path / "run").exists()


def test_one_value_and_small_classes(tmp_path, foreign, capsys):
    def constant(rows):
        for r in rows[1:]:
            r[-1] = "0.25"  # every size the same (inside the built-in size range)
        return rows

    folder = _copy(foreign, tmp_path / "one", constant)
    assert main(["train", "--data", str(folder), "--concept", "size", *USER,
                 "--out-dir", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "every image has size 0.25", "nothing to learn")

    def rare(rows):  # 22 'box', 2 'ball' shapes
        for i, r in enumerate(rows[1:]):
            r[4] = "ball" if i < 2 else "box"
        return rows

    folder = _copy(foreign, tmp_path / "rare", rare)
    assert main(["train", "--data", str(folder), "--concept", "shape", *USER,
                 "--out-dir", str(tmp_path / "run2")]) == 0
    assert "few images of some classes ('ball' 2" in capsys.readouterr().err


def _write_images(folder, arrays, labels):
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "size"])
        for i, (a, v) in enumerate(zip(arrays, labels, strict=True)):
            Image.fromarray(a).save(folder / f"{i}.png")
            w.writerow([f"{i}.png", v])
    return folder


def test_near_copies_across_the_holdout_split_are_warned(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(20)]
    copies = _write_images(tmp_path / "copies", arrays + arrays[:10],
                           [0.2 + 0.01 * i for i in range(30)])
    assert main(["train", "--data", str(copies), "--concept", "size", *USER, "--holdout", "8",
                 "--out-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "held-out images are near-copies of training images" in err
    distinct = _write_images(tmp_path / "distinct", arrays, [0.2 + 0.01 * i for i in range(20)])
    assert main(["train", "--data", str(distinct), "--concept", "size", *USER, "--holdout", "5",
                 "--out-dir", str(tmp_path / "run2")]) == 0
    assert "near-copies" not in capsys.readouterr().err


def test_large_images_are_refused_with_the_estimate_or_resized(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (520, 530, 3), dtype=np.uint8) for _ in range(6)]
    big = _write_images(tmp_path / "big", arrays, [0.2, 0.21, 0.22, 0.23, 0.24, 0.25])
    assert main(["train", "--data", str(big), "--concept", "size", *USER,
                 "--out-dir", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "530x520", "MB in memory", "512x512", "--resize")
    assert not (tmp_path / "run").exists()
    assert main(["train", "--data", str(big), "--concept", "size", *USER, "--resize", "16",
                 "--holdout", "2", "--out-dir", str(tmp_path / "run")]) == 0
    assert "6 images of 16x16" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "data.json").read_text())["resize"] == 16


def test_a_labels_json_of_another_layout_is_one_line(tmp_path, foreign, capsys):
    folder = tmp_path / "json"
    folder.mkdir()
    shutil.copy(foreign / "scene_00000.png", folder / "a.png")
    (folder / "labels.json").write_text('{"a.png": 3}')
    assert main(["train", "--data", str(folder), "--concept", "position", *USER,
                 "--out-dir", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "labels.json", "'a.png'", "not a record of labels")

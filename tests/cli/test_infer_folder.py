"""Folders of any size (issue 29 item 6): ``conceptebm infer DIR --separate -o OUT.jsonl``
streams a folder in chunks to JSON Lines, a rerun skips what is done, and processes that
each take a shard merge one sorted output (``conceptebm.scenes.folder``)."""

import json
import os
import subprocess
import sys

import pytest
import torch

import conceptebm
from conceptebm.cli import main
from conceptebm.datasets.foreign import write_foreign
from conceptebm.scenes import infer_concept
from conceptebm.scenes.folder import (
    answer_rows,
    image_files,
    infer_folder,
    merge_outputs,
    part_files,
    read_images,
    run_shard,
    shard,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_foreign(tmp_path_factory.mktemp("folder"), n=7, seed=3)


@pytest.fixture(scope="module")
def late():
    return conceptebm.load("position_late")


def rows(path):
    return [json.loads(line) for line in open(path)]


def test_streaming_in_tiny_chunks_answers_as_the_batch_path(folder, late, tmp_path):
    paths = image_files(folder)
    assert [os.path.basename(p) for p in paths] == [f"scene_{i:05d}.png" for i in range(7)]
    out = tmp_path / "r.jsonl"
    stats = infer_folder(paths, lambda chunk: answer_rows(late, chunk), out, chunk=2)
    assert stats["inferred"] == 7 and stats["rows"] == 7
    got = rows(out)
    assert [r["path"] for r in got] == paths  # sorted, one line each
    batch = infer_concept(late, read_images(paths))  # every image in one batch
    assert torch.allclose(torch.tensor([r["value"] for r in got]), batch.value, atol=1e-4)
    assert torch.allclose(torch.tensor([r["energy"] for r in got]), batch.energy, atol=1e-3)
    for r in got:
        assert set(r) == {"path", "concept", "value", "energy", "object_found", "flags",
                          "familiarity"}
        unfamiliar = ["unfamiliar_image"] if r["familiarity"] > 1.0 else []
        assert r["flags"] == ([] if r["object_found"] is not False
                              else ["no_object_found", *unfamiliar])


def test_a_rerun_skips_what_is_done_and_redoes_a_line_cut_short(tmp_path):
    paths = [str(tmp_path / f"img{i:02d}.png") for i in range(10)]
    calls = []

    def rows_of(chunk):
        calls.extend(chunk)
        if len(calls) > 6:
            raise KeyboardInterrupt  # the run stops in its third chunk
        return [{"path": p, "value": i} for i, p in enumerate(chunk)]

    out = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        infer_folder(paths, rows_of, out, chunk=3)
    assert [r["path"] for r in rows(out)] == paths[:6]  # two chunks written as they went
    with open(out, "a") as fh:  # a crash in the middle of a line
        fh.write('{"path": "' + paths[6])
    calls.clear()
    done = infer_folder(paths, lambda c: [{"path": p} for p in calls.extend(c) or c], out,
                        chunk=3)
    assert calls == paths[6:]  # only the images not done; the cut line's image again
    assert done["skipped"] == 6 and done["inferred"] == 4 and done["rows"] == 10
    assert [r["path"] for r in rows(out)] == paths
    calls.clear()
    assert infer_folder(paths, lambda c: calls.extend(c) or [], out)["inferred"] == 0
    assert calls == []


def test_two_ranks_take_every_other_file_and_rank_0_merges_one_sorted_output(tmp_path):
    paths = [str(tmp_path / f"img{i:02d}.png") for i in (3, 0, 4, 1, 2)]
    assert shard(paths, 0, 2) == [str(tmp_path / f"img{i:02d}.png") for i in (0, 2, 4)]
    assert shard(paths, 1, 2) == [str(tmp_path / f"img{i:02d}.png") for i in (1, 3)]
    out = tmp_path / "r.jsonl"
    seen = {}
    for rank in (1, 0):  # the ranks finish in any order
        def rows_of(chunk, rank=rank):
            seen.setdefault(rank, []).extend(chunk)
            return [{"path": p, "rank": rank} for p in chunk]
        run_shard(paths, rows_of, out, rank=rank, world=2, chunk=1)
    assert len(part_files(out)) == 2 and not out.exists()
    assert merge_outputs(out) == 5
    merged = rows(out)
    assert [r["path"] for r in merged] == sorted(paths)
    assert [r["rank"] for r in merged] == [0, 1, 0, 1, 0]
    assert part_files(out) == [] and sorted(seen[0] + seen[1]) == sorted(paths)
    # a resumed two-process run finds the merged rows done
    again = run_shard(paths, lambda c: pytest.fail("nothing to do"), out, rank=1, world=2)
    assert again["skipped"] == 2 and again["inferred"] == 0


def test_the_command_writes_the_json_rows_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "sub" / "r.jsonl"
    argv = ["infer", str(folder), "--separate", "--model", "position_late", "--quiet"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    got = rows(out)
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in got] == image_files(folder)
    for line, row in zip(got, printed, strict=True):
        assert [line["path"]] == row["images"] and line["value"] == row["value"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "0 inferred now, 7 already there" in capsys.readouterr().out
    assert rows(out) == got


@pytest.mark.parametrize("argv, needle", [
    (["--separate", "-o", "{img}/r.jsonl"], "-o"),  # a folder path runs through a file
    (["--separate", "-o", "{tmp}/r.txt"], "-o"),
    (["-o", "{tmp}/r.jsonl"], "--separate"),
    (["--separate", "--posterior", "--save", "{tmp}/p.nc", "-o", "{tmp}/r.jsonl"], "--save"),
])
def test_a_bad_output_is_one_error_line(folder, tmp_path, capsys, argv, needle):
    img = image_files(folder)[0]
    argv = [a.format(img=img, tmp=tmp_path) for a in argv]
    assert main(["infer", str(folder), "--model", "position_late", *argv]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not list(tmp_path.glob("r.*"))


@pytest.mark.slow
def test_torchrun_two_processes_merge_one_output(folder, tmp_path):
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONCEPTEBM_TRACEBACK": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "conceptebm", "infer", str(folder), "--separate", "--model", "position_late",
         "-o", str(out), "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote") == 1, proc.stdout  # rank 0 alone
    assert [r["path"] for r in rows(out)] == image_files(folder)
    assert part_files(out) == []

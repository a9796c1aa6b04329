"""Two gloo processes train one model with DistributedDataParallel; the replicas must agree,
every process leaves the process group, and a process that fails stops the other with an error
naming it."""

import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from squares import SquaresDataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from conceptebm.train import smoke_config, train

    cfg = smoke_config(concept="position", image_size=16, iterations=3, eval_every=0,
                       out_dir=os.path.join(out, "run"))
    seen = []
    result = train(cfg, dataset=SquaresDataset(64), progress=False,
                   callback=lambda it, row: seen.append(row["e_pos"]))
    save_file({k: v.contiguous() for k, v in result.net.state_dict().items()},
              os.path.join(out, f"rank{rank}.safetensors"))
    with open(os.path.join(out, f"stats{rank}.txt"), "w") as f:
        f.write(",".join(f"{v:.9g}" for v in seen))
    assert not dist.is_initialized()  # train() left the group it joined


def test_two_gloo_replicas_hold_identical_weights(tmp_path):
    # fork: the workers inherit the imported modules (spawn would re-import torch twice);
    # building an Adam once here imports torch._dynamo before the fork, not in each worker.
    import conceptebm.train  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the ranks drew different batches (different per-rank seeds), so DDP really averaged
    assert (tmp_path / "stats0.txt").read_text() != (tmp_path / "stats1.txt").read_text()
    # and only rank 0 wrote the checkpoint
    assert (tmp_path / "run" / "last.safetensors").exists()


def _failing_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from conceptebm.train import smoke_config, train

    def fail(it, row):
        if rank == 1 and it == 2:
            raise ValueError("bad labels on this process")

    cfg = smoke_config(concept="position", image_size=16, iterations=6, eval_every=0,
                       out_dir=os.path.join(out, "run"))
    try:
        train(cfg, dataset=SquaresDataset(64), progress=False, callback=fail)
        outcome = "finished"
    except Exception as err:  # noqa: BLE001 - the test reads what each process raised
        outcome = f"{type(err).__name__}: {err}"
    with open(os.path.join(out, f"outcome{rank}.txt"), "w") as f:
        f.write(f"{outcome}\ninitialized={dist.is_initialized()}")


def test_a_failing_process_stops_the_other_naming_it(tmp_path):
    import conceptebm.train  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    mp.start_processes(_failing_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                       join=True, start_method="fork")
    own = (tmp_path / "outcome1.txt").read_text()
    other = (tmp_path / "outcome0.txt").read_text()
    assert own.startswith("ValueError: bad labels on this process"), own
    assert other.startswith("RankFailed: process 1 of 2 failed (ValueError: bad labels"), other
    assert "initialized=False" in own and "initialized=False" in other

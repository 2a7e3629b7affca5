"""A converted model trains under DistributedDataParallel (gloo, two processes, loopback) to the
parameters single-process training reaches on the same global batches (the smooth members in
the memory modes: GELU keeping its output, SiLU 3 bits)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import relukit.nn as rn

WORLD = 2
STEPS = 5


def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(12, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.PReLU(32),
        nn.Linear(32, 32),
        nn.LeakyReLU(0.1),
        nn.Linear(32, 32),
        nn.GELU(),
        nn.Linear(32, 32),
        nn.SiLU(),
        nn.Linear(32, 3),
    )
    net = rn.convert(net, backward="output").model
    net[9].backward = "bits"  # both memory modes of the smooth members
    return net


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 12, generator=g), torch.randn(16, 3, generator=g)) for _ in range(STEPS)
    ]


def train(net: nn.Module, rank: int, world: int) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches():
        # Equal shards: DDP's mean of the shard gradients is the global batch's gradient.
        loss = F.mse_loss(net(x.chunk(world)[rank]), y.chunk(world)[rank])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def worker(rank: int, store: str, path: str) -> None:
    torch.set_num_threads(1)
    # rendezvous through a file, not a TCP port: a port found free and then released could be
    # taken by another process before the store bound it (EADDRINUSE, seen once in CI)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        net = model()
        train(DistributedDataParallel(net), rank, WORLD)
        if rank == 0:
            torch.save(net.state_dict(), path)
        # Both ranks done before either tears gloo down: a rank destroying the group while
        # the other's gloo threads are still in use aborted the process now and then
        # ("terminate called without an active exception") on a loaded machine.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_single_process_training(tmp_path):
    path = str(tmp_path / "ddp.pt")
    mp.spawn(worker, args=(str(tmp_path / "store"), path), nprocs=WORLD, join=True)
    distributed = torch.load(path)

    single = model()
    train(single, 0, 1)
    initial = model().state_dict()
    for name, value in single.state_dict().items():
        assert not torch.equal(value, initial[name]), name  # training moved it
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6)

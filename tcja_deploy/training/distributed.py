"""Data-parallel training across processes and machines with PyTorch's own engine (torchrun + DDP).

``torchrun`` starts one process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` joins the process group (NCCL on CUDA, gloo on CPU). Without those
variables the run is a single process and nothing here changes its arithmetic.

How a run is split (``--batch-size`` is the global batch):

- the training split is shuffled by ``DistributedSampler(seed=seed, shuffle=True)``, advanced with
  ``set_epoch`` every epoch; rank r takes the samples r, r + W, r + 2W, … of that permutation, so the k-th
  batch of size B/W of every rank together are the samples kB … kB + B − 1: the same global batch as a
  single process sees (with W = 1 the sampler is the same class);
- the gradients are averaged by ``DistributedDataParallel``; the loss of each rank is scaled by its share of
  the global batch, so an uneven last batch is averaged over its samples as one process would;
- metrics (loss sums, correct counts, sample counts) are all-reduced: every rank logs the true totals;
- the test split is sharded without padding (rank r: samples r, r + W, …) and its metrics all-reduced;
- rank 0 writes every file of the run directory (atomically); the other ranks wait at a barrier.

When the training split is not a multiple of W, ``DistributedSampler`` repeats the first samples of the
permutation to even out the ranks (PyTorch's padding): the last global batch then differs from a single
process's. The reference recipe's ``drop_last`` avoids this.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Subset

from tcja_deploy.errors import UserError

#: What torchrun sets for every worker; all or none must be present.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 … world_size − 1). local_rank: rank on this machine (its CUDA device index).
        world_size: number of processes. backend: ``"nccl"`` | ``"gloo"`` | None (single process).
        restart: torchrun's restart count (``TORCHELASTIC_RESTART_COUNT``): > 0 after a failed rank restarted
            the group.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    restart: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int_env(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def context_from_env() -> DistContext:
    """The rank layout torchrun announced (single process when it announced none); writes nothing."""
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not present:
        return DistContext()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise UserError(f"partial torchrun environment: {', '.join(present)} set but {', '.join(missing)} missing; "
                        f"start distributed runs with torchrun (or unset {', '.join(present)})")
    rank, world, local = _int_env("RANK"), _int_env("WORLD_SIZE"), _int_env("LOCAL_RANK")
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UserError(f"torchrun environment is inconsistent: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    return DistContext(rank=rank, local_rank=local, world_size=world, restart=restart)


def check_batch(ctx: DistContext, batch_size: int) -> int:
    """Samples per rank of a global batch; a batch the world size does not divide raises UserError."""
    if batch_size % ctx.world_size:
        raise UserError(f"--batch-size {batch_size}: the global batch must be a multiple of the world size "
                        f"{ctx.world_size} (each rank takes batch_size / world_size samples)")
    return batch_size // ctx.world_size


def init_process_group(ctx: DistContext, device: torch.device) -> DistContext:
    """Join torchrun's process group: NCCL for CUDA devices, gloo otherwise. Single processes join nothing."""
    if ctx.world_size == 1 and "WORLD_SIZE" not in os.environ:
        return ctx
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "gloo":
        use_loopback_if_single_node()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(ctx.rank, ctx.local_rank, ctx.world_size, backend, ctx.restart)


def loopback_interface() -> str | None:
    """The name of this machine's loopback network interface (``lo`` on Linux, ``lo0`` on macOS), if any."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((name for name in names if name.startswith("lo")), None)


def use_loopback_if_single_node() -> None:
    """Let gloo talk over loopback when every rank runs on this machine.

    Without ``GLOO_SOCKET_IFNAME`` gloo binds the address that this machine's host name resolves to; on a
    machine whose host name does not resolve (a container, a CI runner without DNS) its connect then waits
    for the whole process-group timeout. When ``LOCAL_WORLD_SIZE`` equals ``WORLD_SIZE`` (one node) the
    loopback interface always works; a value the user set is kept, and multi-node jobs are left alone.
    """
    if "GLOO_SOCKET_IFNAME" in os.environ or os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
        return
    name = loopback_interface()
    if name is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = name


def shutdown(ctx: DistContext) -> None:
    if ctx.backend is not None and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ctx.backend is not None:
        dist.barrier()


def _reduce_device(ctx: DistContext) -> torch.device:
    return torch.device("cuda", ctx.local_rank) if ctx.backend == "nccl" else torch.device("cpu")


def all_reduce_sums(ctx: DistContext, values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64; exact for counts below 2⁵³)."""
    if ctx.backend is None:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_reduce_device(ctx))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def train_sampler(dataset, ctx: DistContext, seed: int, drop_last: bool) -> DistributedSampler:
    """The training sampler of every world size (see the module docstring); call ``set_epoch`` each epoch."""
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed,
                              drop_last=drop_last)


def test_shard(dataset, ctx: DistContext):
    """This rank's share of the test split: samples rank, rank + W, … (no padding, no repetition)."""
    if ctx.world_size == 1:
        return dataset
    return Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))


def wrap(model: torch.nn.Module, ctx: DistContext, device: torch.device, sync_bn: bool) -> torch.nn.Module:
    """The model as ``DistributedDataParallel`` (with SyncBatchNorm when ``sync_bn``); unchanged when single."""
    if sync_bn:
        if ctx.backend is None:
            return model  # one process: its BatchNorm already sees the whole batch
        if device.type != "cuda":
            raise UserError("--sync-bn: torch's SyncBatchNorm runs on CUDA only; drop --sync-bn on CPU")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if ctx.backend is None:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)

"""``train-step --nproc N``: data-parallel scaling of our training step (torchrun + DistributedDataParallel).

The same global batch is split over 1 and over N processes on this machine (strong scaling), each
process with ``threads // N`` intra-op threads so that both runs use the same cores; one step is
zero_grad, forward, MSE rate loss, backward (DDP's gradient all-reduce: gloo on CPU, NCCL on CUDA) and
Adam. Reported: samples/s of each and the scaling efficiency (samples/s with N) / (N · samples/s with 1).

Worker: ``python -m tcja_deploy.bench.ddp_scaling '<json spec>'`` under torchrun; rank 0 prints one JSON
line ``{"step_s": [...]}`` with the wall seconds of each timed step (the slowest rank sets the pace,
as the all-reduce waits for it).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def run_scaling(case: dict[str, Any], nproc: int, device: str, repeats: int, threads: int, seed: int,
                timeout_s: float = 1800) -> dict:
    """samples/s with 1 and with ``nproc`` processes, and the scaling efficiency."""
    out = {}
    for n in (1, nproc):
        spec = {"case": case, "device": device, "repeats": repeats, "seed": seed}
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // n)))
        # a static rendezvous on loopback: --standalone (c10d) hands the workers this machine's host name as
        # MASTER_ADDR, and on a machine whose host name does not resolve they wait for the whole timeout
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--nnodes", "1", "--nproc-per-node", str(n),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               "-m", "tcja_deploy.bench.ddp_scaling", json.dumps(spec)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"torchrun with {n} process(es) did not finish within {timeout_s} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun with {n} process(es) failed: {stderr.strip().splitlines()[-1:]}")
        steps = json.loads(stdout.strip().splitlines()[-1])["step_s"]
        median = statistics.median(steps)
        out[n] = {"processes": n, "threads_per_process": max(1, threads // n), "median_step_s": median,
                  "samples_per_s": case["batch"] / median, "step_s": steps}
    one, many = out[1]["samples_per_s"], out[nproc]["samples_per_s"]
    return {"runs": [out[1], out[nproc]], "speedup": many / one, "efficiency": many / (nproc * one),
            "backend": "nccl" if device.startswith("cuda") else "gloo"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(spec: dict[str, Any]) -> None:
    import torch.distributed as dist

    from tcja_deploy.bench import train_step
    from tcja_deploy.models.network import TCJASNN, rate_loss
    from tcja_deploy.training.distributed import use_loopback_if_single_node

    cuda = spec["device"].startswith("cuda")
    if not cuda:
        use_loopback_if_single_node()
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=5))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    case = spec["case"]
    config = train_step.model_config(case)
    torch.manual_seed(spec["seed"])
    model = TCJASNN(config).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    per_rank = case["batch"] // world
    g = torch.Generator().manual_seed(spec["seed"] + rank)
    x = (torch.rand((case["T"], per_rank, *config.input_shape), generator=g) < 0.1).float().to(device)
    y = torch.randint(0, config.num_classes, (per_rank,), generator=g).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        rate_loss(ddp(x), y, "mse", config.num_classes).backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(2):
        step()
    times = []
    for _ in range(spec["repeats"]):
        dist.barrier()
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    worst = torch.tensor(times, dtype=torch.float64)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    if rank == 0:
        print(json.dumps({"step_s": worst.tolist()}), flush=True)
    dist.barrier()
    # Leave without tearing the process group down. In torch 2.3 ProcessGroupGloo's destructor joins its worker
    # threads while holding the GIL, and a worker that is still freeing the last all-reduce's tensor waits for
    # the GIL: an intermittent deadlock at exit (pytorch/pytorch#56297, #75097) that left rank 1 hanging and
    # torchrun waiting for it. Every collective has completed on every rank (the barrier), the result is
    # printed and flushed, so nothing is lost by skipping the destructors.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))

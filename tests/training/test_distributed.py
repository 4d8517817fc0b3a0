"""torchrun + DistributedDataParallel on CPU (gloo): 2 ranks equal 1 process, a killed rank restarts and resumes,
a 2-rank run resumes on 1 process, and bad distributed set-ups are one line. Runs on the fake dataset."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tcja_deploy.training import distributed as D
from tcja_deploy.errors import UserError

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CLI = str(HERE / "fake_train_cli.py")
FLAGS = ["--preset", "digits", "--T", "4", "--lr", "0.02", "--batch-size", "8", "--epochs", "2", "--device", "cpu",
         "--seed", "3", "--no-augment"]
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env(delay: float = 0.0) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in D.TORCHRUN_VARIABLES}
    e.update(PYTHONPATH=f"{ROOT}{os.pathsep}{HERE}", OMP_NUM_THREADS="1", FAKE_ITEM_DELAY=str(delay), FAKE_NO_NORM="1")
    return e


def start(args: list[str], ranks: int = 1, delay: float = 0.0, restarts: int = 0) -> subprocess.Popen:
    # torch 2.3's --standalone (c10d rendezvous) closes its rendezvous when a group restarts
    # (RendezvousClosedError); the static rendezvous of --nnodes 1 --master-port restarts as documented.
    head = [sys.executable, CLI] if ranks == 1 else [TORCHRUN, "--nnodes", "1", "--nproc-per-node", str(ranks),
                                                      "--master-port", str(free_port()), "--max-restarts",
                                                      str(restarts), CLI]
    return subprocess.Popen([*head, *args], cwd=ROOT, env=env(delay), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 150) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def lines(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def close(a: dict, b: dict, tol: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=tol, rtol=0) for k in a)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_for(run: Path, epochs: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while len(lines(run)) < epochs:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "no progress"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted run on 1 process and one on 2 ranks (started together)."""
    root = tmp_path_factory.mktemp("dist")
    single, double = root / "single", root / "double"
    procs = [start([*FLAGS, "--out", str(single)]), start([*FLAGS, "--out", str(double)], ranks=2)]
    for p in procs:
        finish(p)
    return single, double


@pytest.mark.slow
def test_two_ranks_equal_one_process(runs):
    single, double = runs
    assert close(weights(single), weights(double))
    a, b = lines(single), lines(double)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert x["train_accuracy"] == y["train_accuracy"] and x["test_accuracy"] == y["test_accuracy"]
        assert abs(x["train_loss"] - y["train_loss"]) < 1e-5 and abs(x["test_loss"] - y["test_loss"]) < 1e-5
    assert json.loads((double / "metrics.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_a_killed_rank_restarts_the_group_which_resumes(runs, tmp_path):
    _, double = runs
    run = tmp_path / "run"
    proc = start([*FLAGS, "--out", str(run)], ranks=2, delay=0.05, restarts=1)
    wait_for(run, 1, proc)
    time.sleep(0.3)  # inside epoch 2 (≈1.2 s per epoch)
    workers = children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGKILL)
    _, err = finish(proc)
    assert "resuming" in err
    assert lines(run) == lines(double)
    assert torch.equal(torch.cat([v.flatten() for v in weights(run).values()]),
                       torch.cat([v.flatten() for v in weights(double).values()]))


@pytest.mark.slow
def test_a_two_rank_run_resumes_on_one_process(runs, tmp_path):
    single, double = runs
    run = tmp_path / "run"
    proc = start([*FLAGS, "--out", str(run)], ranks=2, delay=0.05)
    wait_for(run, 1, proc)
    for pid in [*children(proc.pid), proc.pid]:  # both ranks (torchrun gives them sessions of their own), torchrun
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(lines(run)) == 1 and not (run / "model.safetensors").exists()
    _, err = finish(start(["--resume", str(run)]))
    assert "resuming" in err
    assert close(weights(run), weights(single)) and close(weights(run), weights(double))
    assert lines(run)[0] == lines(double)[0]


def test_partial_torchrun_environment_is_one_line(monkeypatch):
    for name in D.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="partial torchrun environment.*LOCAL_RANK"):
        D.context_from_env()


def test_batch_not_divisible_by_world_size():
    with pytest.raises(UserError, match="multiple of the world size 3"):
        D.check_batch(D.DistContext(world_size=3), 8)
    assert D.check_batch(D.DistContext(world_size=2), 8) == 4


def test_bad_distributed_setups_exit_2_with_one_line():
    e = env()
    e.update(RANK="0", WORLD_SIZE="3", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29599")
    proc = subprocess.run([sys.executable, CLI, *FLAGS, "--out", "/tmp/never-written"], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --batch-size 8: the global batch must be")
    assert not Path("/tmp/never-written").exists()
    e.pop("LOCAL_RANK")
    proc = subprocess.run([sys.executable, CLI, *FLAGS], cwd=ROOT, env=e, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "partial torchrun environment" in proc.stderr and "Traceback" not in proc.stderr


def test_sync_bn_needs_cuda():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert D.wrap(model, D.DistContext(), torch.device("cpu"), sync_bn=True) is model  # one process: nothing to do
    with pytest.raises(UserError, match="CUDA only"):
        D.wrap(model, D.DistContext(world_size=2, backend="gloo"), torch.device("cpu"), sync_bn=True)

"""Killing ``python -m tcja_deploy.train`` mid-epoch (SIGINT, SIGKILL) and resuming gives a valid run equal to an
uninterrupted one. Training runs in a subprocess on the fake dataset (``fake_train_cli.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tcja_deploy.training.state import STATE_FILE, load_train_state

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
FLAGS = ["--preset", "digits", "--T", "4", "--lr", "0.05", "--batch-size", "8", "--epochs", "3", "--device", "cpu",
         "--augment", "--seed", "1"]


def cli(args: list[str], delay: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{HERE}", OMP_NUM_THREADS="1", FAKE_ITEM_DELAY=str(delay))
    # SIGINT back to its default in the child: a test run started in the background (``cmd &`` in a script)
    # inherits an ignored SIGINT, and Python only turns SIGINT into KeyboardInterrupt when it is not ignored
    return subprocess.Popen([sys.executable, str(HERE / "fake_train_cli.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def lines(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]


def wait_for_epochs(run: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while len(lines(run)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "training made no progress"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of FLAGS."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = cli([*FLAGS, "--out", str(out)])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)])
def test_kill_mid_epoch_then_resume(sig, code, reference, tmp_path):
    run = tmp_path / "run"
    proc = cli([*FLAGS, "--out", str(run)], delay=0.05)  # ≈3 s per epoch: a busy machine still lands inside epoch 2
    wait_for_epochs(run, 1, proc)
    time.sleep(0.3)  # inside epoch 2
    assert proc.poll() is None, "the run finished before the signal could land (machine too slow for this test)"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if sig == signal.SIGINT:
        assert "--resume" in err and "interrupted" in err
    assert not (run / "metrics.json").exists() and not (run / "model.safetensors").exists()
    done = load_train_state(run / STATE_FILE).epoch
    assert 1 <= done < 3 and len(lines(run)) == done

    resumed = cli(["--resume", str(run)])
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "test accuracy" in out
    assert lines(run) == lines(reference) and len(lines(run)) == 3
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (run, reference))
    assert metrics["test_accuracy"] == expected["test_accuracy"] and metrics["epochs"] == 3
    weights, expected_weights = (load_file(str(d / "model.safetensors")) for d in (run, reference))
    assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no stale temporaries

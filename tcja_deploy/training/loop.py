"""The training loop: Adam + cosine annealing over the epochs, rate loss, per-epoch checkpoints.

A run directory holds, all written atomically:

- ``config.json``: model config + resolved train config (written when the run starts);
- ``metrics.jsonl``: one JSON line per completed epoch (``epoch``, ``train_loss``, ``train_accuracy``,
  ``test_loss``, ``test_accuracy``, ``lr``, ``seconds``);
- ``train_state.safetensors``: the resume checkpoint of the last completed epoch (:mod:`.state`);
- ``model.safetensors``: the model after the **last** epoch (not the best one: choosing by test
  accuracy would tune on the test split); written when the run finishes;
- ``metrics.json``: the run's summary, written last: its presence means the run is complete.

Accuracies are fractions in [0, 1]; losses are means over samples; times are wall-clock seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from tcja_deploy import atomic
from tcja_deploy.errors import UserError
from tcja_deploy.models.lif import LIFSequence
from tcja_deploy.models.network import TCJASNN, rate_loss
from tcja_deploy.training import checkpoint
from tcja_deploy.training import distributed as D
from tcja_deploy.training.config import TrainConfig
from tcja_deploy.training.data import make_loader, time_major
from tcja_deploy.training.lock import run_lock
from tcja_deploy.training.plan import RunPlan, prepare
from tcja_deploy.training.state import STATE_FILE, TrainState, save_train_state

METRICS_LINES_FILE = "metrics.jsonl"
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch`` (0-based) of a run with ``seed``: a fixed, distinct value per (seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % (2**63 - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms where torch has them (warn where it has not); restores the settings after."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when ``enabled``; otherwise a null context."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_epoch(model: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scaler: torch.cuda.amp.GradScaler, *, device: torch.device, amp: bool, loss_name: str,
                num_classes: int, progress: bool, desc: str) -> tuple[float, int, int]:
    """One pass over ``loader`` (batches [N, T, C, H, W]); returns (summed loss, correct, samples) of this
    process (sums, so that ranks can add them up)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch", dynamic_ncols=True)
    for frames, labels in bar:
        x = time_major(frames.to(device, non_blocking=True))
        labels = labels.to(device, non_blocking=True)
        with autocast(device, amp):
            scores = model(x)
        loss = rate_loss(scores.float(), labels, loss_name, num_classes)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n = labels.numel()
        total_loss += loss.item() * n
        correct += int((scores.argmax(1) == labels).sum())
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.1%}")
    return total_loss, correct, seen


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, *, device: torch.device, amp: bool, loss_name: str,
             num_classes: int, progress: bool = False) -> tuple[float, int, int]:
    """(summed loss, correct, samples) of ``model`` in eval mode over ``loader``."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for frames, labels in tqdm(loader, desc="test", leave=False, disable=not progress, unit="batch",
                               dynamic_ncols=True):
        x = time_major(frames.to(device, non_blocking=True))
        labels = labels.to(device, non_blocking=True)
        with autocast(device, amp):
            scores = model(x).float()
        total_loss += rate_loss(scores, labels, loss_name, num_classes).item() * labels.numel()
        correct += int((scores.argmax(1) == labels).sum())
        seen += labels.numel()
    return total_loss, correct, seen


def mean_metrics(ctx: D.DistContext, loss_sum: float, correct: int, seen: int) -> tuple[float, float]:
    """(mean loss, accuracy) over the samples of every rank."""
    loss_sum, correct, seen = D.all_reduce_sums(ctx, [loss_sum, correct, seen])
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def write_metrics_lines(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically: one JSON line per completed epoch."""
    atomic.write_text(run_dir / METRICS_LINES_FILE, "".join(json.dumps(record) + "\n" for record in history))


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (MiB; Linux ``ru_maxrss``) and peak CUDA allocation (MiB)."""
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def summarize(plan: RunPlan, history: list[dict[str, Any]], amp: bool, world_size: int = 1) -> dict[str, Any]:
    """The ``metrics.json`` document of a finished run."""
    config, last = plan.config, history[-1]
    best = max(history, key=lambda r: r["test_accuracy"])
    seconds = sum(r["seconds"] for r in history)
    device = plan.device
    return {
        "preset": config.preset,
        "run_dir": str(plan.run_dir),
        "dataset": plan.data.name,
        "epochs": config.epochs,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "train_accuracy": last["train_accuracy"],
        "train_loss": last["train_loss"],
        "final_model": "last_epoch",
        "best_epoch": best["epoch"],
        "best_test_accuracy": best["test_accuracy"],
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(history),
        "num_train": len(plan.data.train),  # type: ignore[arg-type]
        "num_test": len(plan.data.test),  # type: ignore[arg-type]
        "T": plan.model_config.T,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "loss": config.loss,
        "seed": config.seed,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "amp": amp,
        "compile": config.compile,
        "recipe": config.recipe,
        "drop_last": config.drop_last,
        "world_size": world_size,
        "torch_version": torch.__version__,
        **peak_memory(),
    }


#: torch.compile backend of ``--compile`` (tests swap in "eager" to trace without generating code).
COMPILE_BACKEND = "inductor"


def _compiled(model: TCJASNN, enabled: bool) -> torch.nn.Module:
    """``torch.compile(model)`` when ``enabled``, with the LIF layers left to run eagerly.

    Dynamo cannot trace Norse 1.1's LIF step (it fails to guard its ``LIFParameters`` namedtuple), and a
    fused LIF is a TorchScript autograd function, so each LIF layer is a graph break: convolutions,
    BatchNorm, pooling, TCJA and linears are compiled between them. The wrapper shares ``model``'s
    parameters; checkpoints keep saving ``model.state_dict()`` (no ``_orig_mod.`` prefix).
    """
    if not enabled:
        return model
    for module in model.modules():
        if isinstance(module, LIFSequence):
            module.forward = torch._dynamo.disable(module.forward)  # type: ignore[method-assign]
    try:
        return torch.compile(model, backend=COMPILE_BACKEND)  # type: ignore[return-value]
    except RuntimeError as e:  # e.g. a Python version torch.compile does not support
        raise UserError(f"--compile: torch.compile is unavailable here ({e}); run without --compile") from None


def _restore(state: TrainState, path: Path, model: TCJASNN, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.cuda.amp.GradScaler) -> None:
    """Load a checkpoint into freshly built objects (``prepare`` checked that its weights and optimizer state
    fit the model); a scheduler or scaler state that does not load raises UserError."""
    model.load_state_dict(state.model)
    try:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: optimizer state does not fit the model ({e})") from None
    if scaler.is_enabled() and state.scaler:  # AMP may be switched on or off between sessions
        scaler.load_state_dict(state.scaler)


def _run(plan: RunPlan, progress: bool, log: Log, ctx: D.DistContext = D.DistContext()) -> dict[str, Any]:
    """Train ``plan`` from its first incomplete epoch to the end; rank 0 writes the run directory."""
    config, device, run_dir = plan.config, plan.device, plan.run_dir
    main = ctx.is_main
    progress = progress and main
    # resolve() filled these in
    epochs, batch_size = int(config.epochs), int(config.batch_size)  # type: ignore[arg-type]
    lr0, loss_name = float(config.lr), str(config.loss)  # type: ignore[arg-type]
    amp = config.amp and device.type == "cuda"
    if config.amp and not amp and main:
        log(f"warning: --amp has no effect on {device.type}; training in float32")
    seed_everything(config.seed)  # initial weights
    model = TCJASNN(plan.model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    scaler = torch.cuda.amp.GradScaler(enabled=amp)
    history: list[dict[str, Any]] = []
    if plan.state is not None:
        _restore(plan.state, run_dir / STATE_FILE, model, optimizer, scheduler, scaler)
        history = list(plan.state.history)
        if main:
            log(f"resuming {run_dir} after epoch {len(history)}/{epochs}")
    elif main:
        checkpoint.save_run_config(run_dir, plan.model_config, config.to_dict())
    if main:
        write_metrics_lines(run_dir, history)  # drops lines of an epoch whose checkpoint was never written
    D.barrier(ctx)

    net = _compiled(D.wrap(model, ctx, device, config.sync_bn), config.compile)
    generator = torch.Generator()
    pin = device.type == "cuda"
    per_rank = D.check_batch(ctx, batch_size)
    sampler = D.train_sampler(plan.data.train, ctx, config.seed, bool(config.drop_last))
    train_loader = make_loader(plan.data.train, per_rank, sampler=sampler, workers=config.workers,
                               pin_memory=pin, generator=generator, drop_last=bool(config.drop_last))
    test_loader = make_loader(D.test_shard(plan.data.test, ctx), per_rank, workers=config.workers,
                              pin_memory=pin, generator=torch.Generator().manual_seed(config.seed))
    common: dict[str, Any] = dict(device=device, amp=amp, loss_name=loss_name,
                                  num_classes=plan.model_config.num_classes, progress=progress)
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        seed = epoch_seed(config.seed, epoch)
        seed_everything(seed)  # dropout, augmentation
        generator.manual_seed(seed)  # worker seeds
        sampler.set_epoch(epoch)  # data order
        lr = optimizer.param_groups[0]["lr"]
        desc = f"epoch {epoch + 1}/{epochs}"
        train_loss, train_acc = mean_metrics(ctx, *train_epoch(net, train_loader, optimizer, scaler, desc=desc,
                                                               **common))
        test_loss, test_acc = mean_metrics(ctx, *evaluate(net, test_loader, **common))
        scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
                  "test_accuracy": test_acc, "lr": lr, "seconds": time.perf_counter() - t0}
        history.append(record)
        if main:
            save_train_state(run_dir / STATE_FILE, TrainState(
                epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), config=config.to_dict(),
                history=history))
            write_metrics_lines(run_dir, history)
            log(f"{desc}: train loss {train_loss:.4f} acc {train_acc:.1%} | test loss {test_loss:.4f} "
                f"acc {test_acc:.1%} | lr {lr:.2e} | {record['seconds']:.1f} s")
        D.barrier(ctx)

    metrics = summarize(plan, history, amp, ctx.world_size)
    if main:
        checkpoint.save_model(run_dir, model, config.to_dict())
        atomic.write_json(run_dir / checkpoint.METRICS_FILE, metrics)  # last: its presence marks a finished run
    D.barrier(ctx)
    return metrics


def _clean_stale_temporaries(run_dir: Path) -> None:
    """Remove temporary files a killed process left behind (``.<artifact>.<random>`` next to an artifact)."""
    names = (STATE_FILE, METRICS_LINES_FILE, checkpoint.CONFIG_FILE, checkpoint.MODEL_FILE, checkpoint.METRICS_FILE)
    for name in names:
        for stale in run_dir.glob(f".{name}.*"):
            stale.unlink(missing_ok=True)


def train(config: TrainConfig, *, progress: bool = True, log: Log = _stderr) -> dict[str, Any]:
    """Train (or, with ``config.resume``, continue) a run; returns the ``metrics.json`` document.

    Bad input raises UserError before anything is written. A new run that is stopped before its first
    epoch completes leaves no run directory behind. Under torchrun every rank calls this; rank 0 writes
    (see :mod:`tcja_deploy.training.distributed`). When torchrun restarts a failed group
    (``--max-restarts``), the run continues from its last completed epoch by itself.

    Args:
        config: what to train (see :class:`TrainConfig`).
        progress: show tqdm bars (per epoch: running loss and accuracy; rank 0 only).
        log: receives one line per epoch and warnings (default: stderr; rank 0 only).
    """
    ctx = D.context_from_env()
    plan = prepare(_after_restart(config, ctx))
    D.check_batch(ctx, int(plan.config.batch_size))  # type: ignore[arg-type]
    plan = _rank_device(plan, ctx)
    ctx = D.init_process_group(ctx, plan.device)
    created = not plan.run_dir.exists()
    try:
        with contextlib.ExitStack() as stack:
            if ctx.is_main:
                plan.run_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(run_lock(plan.run_dir))
                _clean_stale_temporaries(plan.run_dir)
            D.barrier(ctx)
            return _train_locked(plan, progress, log, ctx, created)
    finally:
        D.shutdown(ctx)


def _train_locked(plan: RunPlan, progress: bool, log: Log, ctx: D.DistContext, created: bool) -> dict[str, Any]:
    """Train with the run directory's lock held (rank 0); clean up what a run that completed no epoch wrote."""
    try:
        with deterministic(plan.device):
            return _run(plan, progress, log if ctx.is_main else (lambda message: None), ctx)
    except BaseException as e:
        if ctx.is_main and plan.state is None and not (plan.run_dir / STATE_FILE).exists():
            _remove_unfinished(plan.run_dir, created)
        elif ctx.is_main and isinstance(e, KeyboardInterrupt):
            log(f"stopped; completed epochs are kept: continue with --resume {plan.run_dir}")
        if _is_compile_error(e):
            raise UserError(f"--compile: torch.compile failed ({str(e).splitlines()[0][:300]}); "
                            f"run without --compile") from None
        raise


def _after_restart(config: TrainConfig, ctx: D.DistContext) -> TrainConfig:
    """A group torchrun restarted continues its own run from its checkpoint (a resume); when no epoch had
    completed, the new run takes over the run directory (:func:`tcja_deploy.training.plan.stranded`)."""
    if ctx.restart == 0 or config.resume is not None or config.out is None:
        return config
    out = Path(config.out)
    return replace(config, resume=str(out)) if (out / STATE_FILE).is_file() else config


def _rank_device(plan: RunPlan, ctx: D.DistContext) -> RunPlan:
    """Each rank of a CUDA run on its own GPU (``cuda:LOCAL_RANK`` unless a device index was given)."""
    if ctx.world_size == 1 or plan.device.type != "cuda" or plan.device.index is not None:
        return plan
    device = torch.device("cuda", ctx.local_rank)
    torch.cuda.set_device(device)
    return replace(plan, device=device, config=replace(plan.config, device=str(device)))


def _remove_unfinished(run_dir: Path, created: bool) -> None:
    """Delete what a run that completed no epoch wrote (the folder itself if this run created it)."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in (checkpoint.CONFIG_FILE, METRICS_LINES_FILE):
        (run_dir / name).unlink(missing_ok=True)


def _is_compile_error(e: BaseException) -> bool:
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # pragma: no cover - torch without dynamo
        return False
    return isinstance(e, TorchDynamoException)

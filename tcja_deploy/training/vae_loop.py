"""Training loop of the spiking VAE (``python -m tcja_deploy.train --preset vae_*``).

The classifier's conventions and helpers (:mod:`tcja_deploy.training.loop`): the same run directory
(``config.json`` first, ``metrics.jsonl`` and ``train_state.safetensors`` after every epoch,
``model.safetensors`` and ``metrics.json`` last), the same lock, the same per-(seed, epoch) reseeding (so
``--resume`` continues bit-identically), deterministic algorithms, tqdm bars. What differs is FSVAE's
recipe: AdamW at a constant learning rate with weight decay, the loss of :func:`~tcja_deploy.models.vae.vae_loss`
and the scheduled-sampling probability p rising from 0.1 to 0.3 over the epochs.

Per epoch ``metrics.jsonl`` holds ``epoch``, ``train_loss``, ``train_reconstruction``, ``train_distance``,
``test_loss``, ``test_reconstruction`` (MSE on [−1, 1] images), ``test_distance``, ``p``, ``lr``, ``seconds``.
Single process only (no torchrun).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset, TensorDataset
from tqdm import tqdm

from tcja_deploy import atomic
from tcja_deploy.errors import UserError
from tcja_deploy.models.presets.vae import VAEPreset, get_vae_preset, is_vae_preset
from tcja_deploy.models.vae import SpikingVAE, VAEConfig, scheduled_p, vae_loss
from tcja_deploy.training import checkpoint
from tcja_deploy.training.config import TrainConfig, merge_resumed, validate
from tcja_deploy.training.data import limit
from tcja_deploy.training.lock import run_lock
from tcja_deploy.training.loop import (Log, _clean_stale_temporaries, _remove_unfinished, _stderr, deterministic,
                                       epoch_seed, peak_memory, seed_everything, write_metrics_lines)
from tcja_deploy.training.plan import check_free, check_state_belongs, default_run_dir, resolve_device, resume_dir
from tcja_deploy.training.state import STATE_FILE, TrainState, check_optimizer_state, load_train_state, save_train_state
from tcja_deploy.training.vae_run import load_vae_config, save_vae_config

#: Classifier-only flags, refused for VAE presets (field, default).
CLASSIFIER_ONLY = (("amp", False), ("compile", False), ("augment", None), ("encoding", None), ("recipe", "ours"),
                   ("drop_last", None), ("sync_bn", False))
BETAS = (0.9, 0.999)  # FSVAE's AdamW betas


@dataclass
class VAEPlan:
    """A validated VAE run: complete config, device, architecture, data tensors, run directory, resume state."""

    config: TrainConfig
    preset: VAEPreset
    device: torch.device
    vae: VAEConfig
    train_images: torch.Tensor
    test_images: torch.Tensor
    run_dir: Path
    state: TrainState | None = None


def check_vae_flags(config: TrainConfig) -> None:
    """Refuse classifier-only flags and distributed launches for VAE runs (one-line UserError)."""
    for name, default in CLASSIFIER_ONLY:
        if getattr(config, name) != default:
            raise UserError(f"--{name.replace('_', '-')}: not available for spiking-VAE presets")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("spiking-VAE presets train in one process; run without torchrun")


def resolve_vae(config: TrainConfig) -> tuple[TrainConfig, VAEPreset, VAEConfig]:
    """Fill epochs, batch size, lr, T and loss from the VAE preset; the architecture with the run's flags."""
    validate(config)
    check_vae_flags(config)
    try:
        preset = get_vae_preset(str(config.preset), config.T)
    except ValueError as e:
        raise UserError(f"--preset {config.preset!r}: {e}") from None
    config = replace(config, epochs=config.epochs or preset.epochs, batch_size=config.batch_size or preset.batch_size,
                     lr=config.lr or preset.lr, T=preset.model.T, loss=config.loss or preset.loss)
    blocks = preset.model.tcja_blocks
    if config.tcja_blocks is not None:
        if config.no_tcja:
            raise UserError("--tcja-blocks: contradicts --no-tcja; give one of them")
        blocks = tuple(b.strip() for b in config.tcja_blocks.split(",") if b.strip())
        if not blocks:
            raise UserError(f"--tcja-blocks {config.tcja_blocks!r}: name at least one block (or use --no-tcja)")
    try:
        vae = replace(preset.model, use_tcja=not config.no_tcja, tcja_blocks=blocks, causal=bool(config.causal),
                      gate_function=str(config.gate_function))
    except ValueError as e:
        raise UserError(f"--tcja-blocks {config.tcja_blocks}: {e}" if config.tcja_blocks is not None
                        else f"--preset {config.preset}: {e}") from None
    return config, preset, vae


def load_images(vae: VAEConfig, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) images [N, C, H, W] in [−1, 1] of the run's dataset, after ``--max-samples``."""
    from tcja_deploy.data.image_sets import IMAGE_SHAPES, load_image_set

    splits = []
    for split, offset in (("train", 0), ("test", 1)):
        images, labels = load_image_set(vae.dataset, split, Path(config.data_dir) if config.data_dir else None,
                                        download=config.download)
        subset = limit(TensorDataset(images, labels), config.max_samples, config.seed + offset)
        if isinstance(subset, Subset):
            images = images[torch.as_tensor(subset.indices)]
        splits.append(images)
    shape = (vae.in_channels, vae.image_size, vae.image_size)
    if tuple(IMAGE_SHAPES[vae.dataset]) != shape:
        raise UserError(f"image set {vae.dataset!r} gives {IMAGE_SHAPES[vae.dataset]} images, the network takes {shape}")
    if min(len(s) for s in splits) == 0:
        raise UserError(f"image set {vae.dataset!r}: empty split")
    return splits[0], splits[1]


def prepare_vae(config: TrainConfig) -> VAEPlan:
    """Validate a new or resumed VAE run and load its data; writes nothing."""
    device = resolve_device(config.device)
    state = None
    if config.resume:
        run_dir = resume_dir(config)
        config_path = run_dir / checkpoint.CONFIG_FILE
        saved_vae, saved_dict = load_vae_config(run_dir)
        saved = TrainConfig.from_dict(saved_dict, source=str(config_path))
        config, preset, vae = resolve_vae(merge_resumed(saved, config, source=str(config_path)))
        if vae != saved_vae:
            raise UserError(f"{config_path}: its network differs from preset {config.preset!r}'s (code changed?)")
        state = load_train_state(run_dir / STATE_FILE)
        model = SpikingVAE(vae)
        checkpoint.check_state_matches(model, state.model, run_dir / STATE_FILE)
        check_optimizer_state(state.optimizer, model, run_dir / STATE_FILE)
        check_state_belongs(state, saved, int(config.epochs), run_dir)  # type: ignore[arg-type]
    else:
        config, preset, vae = resolve_vae(config)
        suffix = "-no-tcja" if config.no_tcja else ("-tcja-" + "-".join(vae.attention_blocks)
                                                     if config.tcja_blocks is not None else "")
        run_dir = Path(config.out) if config.out else default_run_dir(str(config.preset) + suffix)
        check_free(run_dir)
    train, test = load_images(vae, config)
    config = replace(config, out=str(run_dir), device=str(device), resume=None)
    return VAEPlan(config=config, preset=preset, device=device, vae=vae, train_images=train, test_images=test,
                   run_dir=run_dir, state=state)


def _batches(images: torch.Tensor, batch_size: int, order: torch.Tensor | None = None):
    n = len(images)
    idx = order if order is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield images[idx[start: start + batch_size]]


class LossMeans:
    """Sample-weighted means of the loss terms (``loss``, ``reconstruction``, ``distance``) over batches."""

    TERMS = ("loss", "reconstruction", "distance")

    def __init__(self) -> None:
        self.sums, self.seen = dict.fromkeys(self.TERMS, 0.0), 0

    def add(self, losses: dict[str, torch.Tensor], n: int) -> None:
        for key in self.TERMS:
            self.sums[key] += float(losses[key]) * n
        self.seen += n

    def means(self) -> dict[str, float]:
        return {key: value / max(self.seen, 1) for key, value in self.sums.items()}


def train_epoch(model: SpikingVAE, images: torch.Tensor, optimizer: torch.optim.Optimizer, *, batch_size: int,
                p: float, loss_name: str, device: torch.device, generator: torch.Generator, progress: bool,
                desc: str) -> dict[str, float]:
    """One pass over ``images`` [N, C, H, W] in a random order; mean loss terms over samples."""
    model.train()
    meter = LossMeans()
    order = torch.randperm(len(images), generator=generator)
    n_batches = -(-len(images) // batch_size)
    bar = tqdm(_batches(images, batch_size, order), total=n_batches, desc=desc, leave=False, disable=not progress,
               unit="batch", dynamic_ncols=True)
    for batch in bar:
        batch = batch.to(device)
        out = model(batch, p=p)
        losses = vae_loss(batch, out["recon"], out["q_z"], out["p_z"], loss_name)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        meter.add(losses, len(batch))
        means = meter.means()
        bar.set_postfix(loss=f"{means['loss']:.4f}", mse=f"{means['reconstruction']:.4f}")
    return meter.means()


@torch.no_grad()
def evaluate(model: SpikingVAE, images: torch.Tensor, *, batch_size: int, loss_name: str, device: torch.device,
             seed: int) -> dict[str, float]:
    """Mean loss terms over ``images`` in eval mode (posterior draws seeded by ``seed``: the same every epoch)."""
    model.eval()
    torch.manual_seed(seed)
    meter = LossMeans()
    for batch in _batches(images, batch_size):
        batch = batch.to(device)
        out = model(batch)
        meter.add(vae_loss(batch, out["recon"], out["q_z"], out["p_z"], loss_name), len(batch))
    return meter.means()


def summarize(plan: VAEPlan, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``metrics.json`` document of a finished VAE run."""
    config, last = plan.config, history[-1]
    seconds = sum(r["seconds"] for r in history)
    return {
        "kind": "vae",
        "preset": config.preset,
        "run_dir": str(plan.run_dir),
        "dataset": plan.vae.dataset,
        "use_tcja": plan.vae.use_tcja,
        "tcja_blocks": list(plan.vae.attention_blocks),
        "epochs": config.epochs,
        "test_reconstruction_mse": last["test_reconstruction"],
        "test_distance": last["test_distance"],
        "test_loss": last["test_loss"],
        "train_loss": last["train_loss"],
        "train_reconstruction_mse": last["train_reconstruction"],
        "final_model": "last_epoch",
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(history),
        "num_train": len(plan.train_images),
        "num_test": len(plan.test_images),
        "T": plan.vae.T,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "weight_decay": plan.preset.weight_decay,
        "loss": config.loss,
        "seed": config.seed,
        "device": str(plan.device),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in SpikingVAE(plan.vae).parameters()),
        "torch_version": torch.__version__,
        **peak_memory(),
    }


def _run(plan: VAEPlan, progress: bool, log: Log) -> dict[str, Any]:
    config, device, run_dir = plan.config, plan.device, plan.run_dir
    epochs, batch_size = int(config.epochs), int(config.batch_size)  # type: ignore[arg-type]
    seed_everything(config.seed)  # initial weights
    model = SpikingVAE(plan.vae).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(config.lr), betas=BETAS,  # type: ignore[arg-type]
                                  weight_decay=plan.preset.weight_decay)
    history: list[dict[str, Any]] = []
    if plan.state is not None:
        model.load_state_dict(plan.state.model)
        try:
            optimizer.load_state_dict(plan.state.optimizer)
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{run_dir / STATE_FILE}: optimizer state does not fit the model ({e})") from None
        history = list(plan.state.history)
        log(f"resuming {run_dir} after epoch {len(history)}/{epochs}")
    else:
        save_vae_config(run_dir, plan.vae, config.to_dict(),
                        {"name": "AdamW", "betas": list(BETAS), "weight_decay": plan.preset.weight_decay,
                         "lr_schedule": "constant"})
    write_metrics_lines(run_dir, history)
    generator = torch.Generator()
    train_images, test_images = plan.train_images, plan.test_images
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        seed = epoch_seed(config.seed, epoch)
        seed_everything(seed)  # posterior draws, scheduled sampling
        generator.manual_seed(seed)  # data order
        p = scheduled_p(epoch, epochs)
        desc = f"epoch {epoch + 1}/{epochs}"
        train = train_epoch(model, train_images, optimizer, batch_size=batch_size, p=p, loss_name=str(config.loss),
                            device=device, generator=generator, progress=progress, desc=desc)
        test = evaluate(model, test_images, batch_size=batch_size, loss_name=str(config.loss), device=device,
                        seed=config.seed)
        record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train.items()},
                  **{f"test_{k}": v for k, v in test.items()}, "p": p, "lr": float(config.lr),  # type: ignore[arg-type]
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        save_train_state(run_dir / STATE_FILE, TrainState(
            epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler={}, scaler={},
            config=config.to_dict(), history=history))
        write_metrics_lines(run_dir, history)
        log(f"{desc}: train loss {train['loss']:.4f} (mse {train['reconstruction']:.4f}) | test mse "
            f"{test['reconstruction']:.4f} distance {test['distance']:.4f} | p {p:.3f} | {record['seconds']:.1f} s")
    metrics = summarize(plan, history)
    checkpoint.save_state_dict(run_dir / checkpoint.MODEL_FILE, model.state_dict())
    atomic.write_json(run_dir / checkpoint.METRICS_FILE, metrics)  # last: its presence marks a finished run
    return metrics


def train_vae(config: TrainConfig, *, progress: bool = True, log: Log = _stderr) -> dict[str, Any]:
    """Train (or, with ``config.resume``, continue) a spiking-VAE run; returns its ``metrics.json`` document.

    Bad input raises UserError before anything is written; a new run stopped before its first epoch
    completes leaves no run directory behind; a kill keeps the last completed epoch (``--resume``).
    """
    plan = prepare_vae(config)
    created = not plan.run_dir.exists()
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(run_lock(plan.run_dir))
        _clean_stale_temporaries(plan.run_dir)
        try:
            with deterministic(plan.device):
                return _run(plan, progress, log)
        except BaseException as e:
            if plan.state is None and not (plan.run_dir / STATE_FILE).exists():
                _remove_unfinished(plan.run_dir, created)
            elif isinstance(e, KeyboardInterrupt):
                log(f"stopped; completed epochs are kept: continue with --resume {plan.run_dir}")
            raise


def wants_vae(config: TrainConfig) -> bool:
    """Whether ``config`` trains a spiking VAE: a ``vae_*`` preset, or ``--resume`` of a VAE run."""
    if is_vae_preset(config.preset):
        return True
    if config.resume and config.preset is None:
        from tcja_deploy.training.vae_run import is_vae_run

        return is_vae_run(Path(config.resume))
    return False

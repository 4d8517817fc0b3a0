"""Everything a run needs, checked before anything is written: config, device, model, data, run directory.

:func:`prepare` turns a user :class:`TrainConfig` into a :class:`RunPlan` or raises a one-line
UserError (unknown preset or device, bad value, missing/corrupted checkpoint on ``--resume``, a run
directory from another preset, an occupied ``--out``). It creates no file or folder.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tcja_deploy import outputs
from tcja_deploy.errors import UserError
from tcja_deploy.models.specs import ModelConfig
from tcja_deploy.training import checkpoint
from tcja_deploy.training.config import (RUN_FIELDS, TrainConfig, dataset_name, load_preset, merge_resumed,
                                         reference_recipe, resolve, validate, with_attention)
from tcja_deploy.training.data import RunData, load_run_data
from tcja_deploy.training.state import STATE_FILE, TrainState, check_optimizer_state, load_train_state

RUN_FILES = (checkpoint.CONFIG_FILE, checkpoint.MODEL_FILE, checkpoint.METRICS_FILE, STATE_FILE)


@dataclass
class RunPlan:
    """A validated run.

    Attributes:
        config: the complete train config (preset defaults filled in; ``out`` is the run directory,
            ``device`` the resolved device, ``resume`` None).
        device: the torch device to train on.
        model_config: the network (input shape taken from the dataset).
        data: train and test splits.
        run_dir: output folder.
        state: the checkpoint to continue from (``--resume``), else None.
    """

    config: TrainConfig
    device: torch.device
    model_config: ModelConfig
    data: RunData
    run_dir: Path
    state: TrainState | None = None


def resolve_device(name: str | None) -> torch.device:
    """``None``/``auto`` → CUDA if available else CPU; unknown or unavailable devices raise UserError."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r}: unknown device; use cpu, cuda, cuda:<index> or auto") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name!r}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    raise UserError(f"--device {name!r}: unsupported device type {device.type!r}; use cpu or cuda")


def default_run_dir(preset: str, root: Path = Path("runs")) -> Path:
    """``runs/<preset>-<YYYYmmdd-HHMMSS>`` (with a numeric suffix if that folder exists)."""
    base = root / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def stranded(run_dir: Path) -> bool:
    """A run directory whose run completed no epoch (killed in its first epoch): config.json, no checkpoint,
    no model, no summary. Nothing in it is worth keeping; a new run may take it over."""
    return (run_dir / checkpoint.CONFIG_FILE).is_file() and not any(
        (run_dir / name).exists() for name in (STATE_FILE, checkpoint.MODEL_FILE, checkpoint.METRICS_FILE))


def check_free(run_dir: Path) -> None:
    """A new run may write ``run_dir``: ``--out`` holds no run (a run that completed no epoch is taken over, see :func:`stranded`)."""
    outputs.check_out_dir(run_dir, "run")
    names = [n for n in RUN_FILES if not (n == checkpoint.CONFIG_FILE and stranded(run_dir))]
    taken = [name for name in names if (run_dir / name).exists()]
    if taken:
        raise UserError(f"--out {run_dir}: already holds a run ({taken[0]}); continue it with --resume {run_dir} "
                        f"or choose another --out")


def activation_bytes(model_config: ModelConfig, batch_size: int) -> int:
    """A lower bound on a training step's activation memory: every layer's float32 output over the window,
    kept for the backward pass."""
    from tcja_deploy.models.network import infer_shapes

    per_step = sum(math.prod(shape) for shape in [tuple(model_config.input_shape), *infer_shapes(model_config)])
    return int(per_step) * int(model_config.T) * int(batch_size) * 4


def check_memory(model_config: ModelConfig, batch_size: int, device: torch.device) -> None:
    """Refuse a run whose activations alone exceed the memory of ``device`` (before allocating anything)."""
    need = activation_bytes(model_config, batch_size)
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device.index or 0).total_memory
    else:
        try:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
            return
    if need > have:
        raise UserError(f"--T {model_config.T} / --batch-size {batch_size}: one training step needs at least "
                        f"{need / 2**30:.1f} GiB of activations, {device.type} has {have / 2**30:.1f} GiB; "
                        f"lower --T or --batch-size")


def _load_data(config: TrainConfig, model_config: ModelConfig, name: str, resumed: bool) -> tuple[RunData, ModelConfig]:
    data = load_run_data(name, model_config.T, data_dir=config.data_dir, augment=config.augment,
                         download=config.download, seed=config.seed, workers=config.workers,
                         max_samples=config.max_samples)
    if data.num_classes != model_config.num_classes:
        raise UserError(f"dataset {name!r} has {data.num_classes} classes but preset {model_config.preset!r} "
                        f"outputs {model_config.num_classes}")
    if data.input_shape != tuple(model_config.input_shape):
        if resumed:
            raise UserError(f"dataset {name!r} gives {data.input_shape} frames but the resumed model expects "
                            f"{tuple(model_config.input_shape)}")
        model_config = replace(model_config, input_shape=data.input_shape)
    return data, model_config


def _prepare_new(config: TrainConfig, device: torch.device) -> RunPlan:
    config = resolve(config)
    preset = load_preset(config.preset, config.T)  # type: ignore[arg-type]
    run_dir = Path(config.out) if config.out else default_run_dir(preset.model.preset)
    check_free(run_dir)
    model = reference_recipe(preset).apply(preset.model) if config.recipe == "reference" else preset.model
    model = with_attention(model, bool(config.causal), str(config.gate_function))
    check_memory(model, int(config.batch_size), device)  # type: ignore[arg-type]
    data, model_config = _load_data(config, model, dataset_name(preset, config.encoding), resumed=False)
    config = replace(config, out=str(run_dir), device=str(device), resume=None)
    return RunPlan(config=config, device=device, model_config=model_config, data=data, run_dir=run_dir)


def resume_dir(config: TrainConfig) -> Path:
    """The run directory of ``--resume``: it exists, and ``--out`` (if given) names the same folder."""
    run_dir = Path(config.resume)  # type: ignore[arg-type]
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: run directory not found")
    if config.out is not None and Path(config.out).resolve() != run_dir.resolve():
        raise UserError(f"--out {config.out}: a resumed run continues in its own directory ({run_dir}); drop --out")
    return run_dir


def check_state_belongs(state: TrainState, saved: TrainConfig, epochs: int, run_dir: Path) -> None:
    """The checkpoint was written by the run of ``saved`` (config.json) and its epoch count is consistent."""
    in_state = TrainConfig.from_dict(state.config, source=str(run_dir / STATE_FILE))
    if any(getattr(in_state, name) != getattr(saved, name) for name in RUN_FIELDS):
        raise UserError(f"{run_dir / STATE_FILE}: checkpoint belongs to another run than "
                        f"{run_dir / checkpoint.CONFIG_FILE}")
    if state.epoch > epochs or len(state.history) != state.epoch:
        raise UserError(f"{run_dir / STATE_FILE}: inconsistent checkpoint (epoch {state.epoch}, "
                        f"{len(state.history)} history entries, {epochs} epochs planned)")


def _prepare_resume(config: TrainConfig, device: torch.device) -> RunPlan:
    run_dir = resume_dir(config)
    config_path = run_dir / checkpoint.CONFIG_FILE
    model_config, saved_dict = checkpoint.load_run_config(run_dir)
    saved = TrainConfig.from_dict(saved_dict, source=str(config_path))
    merged = merge_resumed(saved, config, source=str(config_path))
    if model_config.preset != merged.preset:
        raise UserError(f"{config_path}: model preset {model_config.preset!r} differs from train preset "
                        f"{merged.preset!r}")
    state = load_train_state(run_dir / STATE_FILE)
    _check_state_fits(state, model_config, run_dir / STATE_FILE)
    check_state_belongs(state, saved, merged.epochs or 0, run_dir)
    preset = load_preset(merged.preset, merged.T)  # type: ignore[arg-type]
    data, model_config = _load_data(merged, model_config, dataset_name(preset, merged.encoding), resumed=True)
    merged = replace(merged, out=str(run_dir), device=str(device), resume=None)
    return RunPlan(config=merged, device=device, model_config=model_config, data=data, run_dir=run_dir, state=state)


def _check_state_fits(state: TrainState, model_config: ModelConfig, path: Path) -> None:
    """The checkpoint's weights and optimizer state fit the run's network (before any data is loaded)."""
    from tcja_deploy.models.network import TCJASNN

    model = TCJASNN(model_config)
    checkpoint.check_state_matches(model, state.model, path)
    check_optimizer_state(state.optimizer, model, path)


def prepare(config: TrainConfig) -> RunPlan:
    """Validate ``config``, load the data and (on ``--resume``) the checkpoint; write nothing."""
    validate(config)
    if config.preset is not None:
        load_preset(config.preset)  # an unknown preset is reported first, with or without --resume
    device = resolve_device(config.device)
    return _prepare_resume(config, device) if config.resume else _prepare_new(config, device)

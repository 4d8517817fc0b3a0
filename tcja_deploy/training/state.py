"""Training-state checkpoint for ``--resume``: one safetensors file with a JSON header.

``<run>/train_state.safetensors`` is rewritten (atomically) after every completed epoch. It holds

- tensors ``model.<name>``: the TCJASNN state dict (BatchNorm statistics included);
- tensors ``optimizer.state.<param index>.<key>``: the optimizer's per-parameter tensors (Adam:
  ``step``, ``exp_avg``, ``exp_avg_sq``);
- metadata ``train_state``: a JSON document with the completed ``epoch`` count, the optimizer's
  structure (param groups, non-tensor state values, the names of its tensors), the LR scheduler's and the
  AMP gradient scaler's state dicts, the train config and the per-epoch metrics so far (``history``).

Tensors and JSON live in one file so that one rename publishes both: a kill at any moment leaves
either the previous epoch's state or the new one, never a mix. Random state needs no saving: the
loop reseeds every generator from (seed, epoch) at the start of each epoch (see ``loop.seed_epoch``).
Loading reads tensors and JSON only; nothing in the file is ever executed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tcja_deploy import atomic
from tcja_deploy.errors import UserError

STATE_FILE = "train_state.safetensors"
FORMAT = "tcja_deploy.train_state/1"
_MODEL_PREFIX = "model."
_OPTIM_PREFIX = "optimizer.state."


@dataclass
class TrainState:
    """Everything needed to continue a run after ``epoch`` completed epochs.

    Attributes:
        epoch: number of completed epochs (the next epoch to run has 0-based index ``epoch``).
        model: TCJASNN state dict (CPU tensors).
        optimizer: ``torch.optim.Optimizer.state_dict()``.
        scheduler: ``torch.optim.lr_scheduler.LRScheduler.state_dict()`` (plain values).
        scaler: ``torch.cuda.amp.GradScaler.state_dict()`` (plain values; empty when AMP is off).
        config: the resolved train config (``TrainConfig.to_dict()``).
        history: one metrics dict per completed epoch (the lines of ``metrics.jsonl``).
    """

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into named tensors and a JSON-serializable structure.

    Returns:
        (tensors, structure): tensors named ``optimizer.state.<param index>.<key>``; the structure
        ``{"param_groups": [...], "state": {index: {key: {"tensor": name} | {"value": v}}}}``.
    """
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        state[str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                name = f"{_OPTIM_PREFIX}{index}.{key}"
                tensors[name] = value
                state[str(index)][key] = {"tensor": name}
            else:
                state[str(index)][key] = {"value": value}
    return tensors, {"param_groups": state_dict["param_groups"], "state": state}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state` (JSON lists in param groups become tuples, e.g. Adam's betas)."""
    state = {
        int(index): {key: tensors[ref["tensor"]] if "tensor" in ref else ref["value"] for key, ref in entries.items()}
        for index, entries in structure["state"].items()
    }
    groups = [
        {key: (list(value) if key == "params" else tuple(value) if isinstance(value, list) else value)
         for key, value in group.items()}
        for group in structure["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_train_state(path: Path, state: TrainState) -> None:
    """Write ``state`` to one safetensors file atomically (tensors + JSON metadata)."""
    optim_tensors, optim_structure = flatten_optimizer_state(state.optimizer)
    tensors = {f"{_MODEL_PREFIX}{k}": v for k, v in state.model.items()}
    tensors.update(optim_tensors)
    document = {
        "format": FORMAT,
        "epoch": state.epoch,
        "optimizer": optim_structure,
        "scheduler": state.scheduler,
        "scaler": state.scaler,
        "config": state.config,
        "history": state.history,
    }
    metadata = {"format": FORMAT, "train_state": json.dumps(document)}
    with atomic.atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_train_state(path: Path) -> TrainState:
    """Read a checkpoint written by :func:`save_train_state`.

    A missing, truncated or foreign file raises a one-line UserError naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no training-state checkpoint (no epoch of this run completed); start a new run")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: corrupted or not a safetensors file ({str(e).splitlines()[0]})") from None
    if metadata.get("format") != FORMAT or "train_state" not in metadata:
        raise UserError(f"{path}: not a tcja_deploy training-state checkpoint (format {metadata.get('format')!r})")
    try:
        document = json.loads(metadata["train_state"])
        model = {k[len(_MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)}
        optimizer = unflatten_optimizer_state(tensors, document["optimizer"])
        return TrainState(
            epoch=int(document["epoch"]),
            model=model,
            optimizer=optimizer,
            scheduler=dict(document["scheduler"]),
            scaler=dict(document.get("scaler") or {}),
            config=dict(document["config"]),
            history=list(document["history"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: damaged training-state metadata ({e.__class__.__name__}: {e})") from None


def check_optimizer_state(optimizer_state: dict, model: torch.nn.Module, path: Path) -> None:
    """Adam's saved state fits ``model``: one group with numeric, finite hyper-parameters; per parameter a
    step and moments of the parameter's shape, finite. Anything else → one-line UserError naming ``path``."""
    params = list(model.parameters())
    groups = optimizer_state.get("param_groups")
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise UserError(f"{path}: optimizer state has no single parameter group")
    group = groups[0]
    for key in ("lr", "eps", "weight_decay"):
        v = group.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(f"{path}: optimizer {key} must be a finite number ≥ 0, got {v!r}")
    betas = group.get("betas")
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
        raise UserError(f"{path}: optimizer betas must be two numbers in [0, 1), got {betas!r}")
    if list(group.get("params", [])) != list(range(len(params))):
        raise UserError(f"{path}: optimizer state covers {len(group.get('params', []))} parameters, the model has "
                        f"{len(params)}")
    for index, entry in optimizer_state.get("state", {}).items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(entry, dict):
            raise UserError(f"{path}: optimizer state for unknown parameter {index!r}")
        for key in ("exp_avg", "exp_avg_sq"):
            t = entry.get(key)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(params[index].shape):
                raise UserError(f"{path}: optimizer {key} of parameter {index} does not match its shape "
                                f"{tuple(params[index].shape)}")
            if not bool(torch.isfinite(t).all()):
                raise UserError(f"{path}: optimizer {key} of parameter {index} holds NaN or infinite values")
        step = entry.get("step")
        if not (isinstance(step, torch.Tensor) and step.numel() == 1) and not isinstance(step, (int, float)):
            raise UserError(f"{path}: optimizer step of parameter {index} is not a number")

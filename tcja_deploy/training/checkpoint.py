"""Run directories: ``model.safetensors`` + ``config.json`` (+ ``metrics.json``), loaded without running code.

Layout of a run directory (all written atomically):
- ``config.json``: ``{"model": ModelConfig.to_dict(), "train": {...TrainConfig fields...}}``;
- ``model.safetensors``: the TCJASNN state dict (float32, BatchNorm running statistics included);
- ``metrics.json``: at least ``test_accuracy``, ``epochs``, ``preset``, ``seconds``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tcja_deploy import atomic
from tcja_deploy.errors import UserError
from tcja_deploy.models.network import TCJASNN
from tcja_deploy.models.specs import ModelConfig

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises a one-line UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e.__class__.__name__}: {e})") from None


def save_state_dict(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write tensors to a safetensors file atomically."""
    with atomic.atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; missing or corrupted files raise a one-line UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: corrupted or not a safetensors file ({str(e).splitlines()[0]})") from None


def save_run_config(run_dir: Path, model_config: ModelConfig, train_config: dict[str, Any]) -> None:
    """Write ``config.json``: ``{"model": ..., "train": ...}``."""
    atomic.write_json(Path(run_dir) / CONFIG_FILE, {"model": model_config.to_dict(), "train": train_config})


def save_model(run_dir: Path, model: TCJASNN, train_config: dict[str, Any]) -> None:
    """Write ``config.json`` and ``model.safetensors`` into ``run_dir``."""
    run_dir = Path(run_dir)
    save_state_dict(run_dir / MODEL_FILE, model.state_dict())
    save_run_config(run_dir, model.config, train_config)


def load_run_config(run_dir: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """(model config, train config dict) of a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    raw = read_json(path)
    if not isinstance(raw, dict) or "model" not in raw:
        raise UserError(f"{path}: not a tcja_deploy run config (no 'model' entry)")
    try:
        model_config = ModelConfig.from_dict(raw["model"])
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{path}: {e}") from None
    return model_config, raw.get("train", {})


def load_model(run_dir: Path, map_location: str | torch.device = "cpu") -> TCJASNN:
    """Rebuild the trained TCJASNN of ``run_dir`` in eval mode. Mismatching weights raise UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    model_config, _ = load_run_config(run_dir)
    state = load_state_dict(run_dir / MODEL_FILE)
    model = TCJASNN(model_config)
    check_state_matches(model, state, run_dir / MODEL_FILE)
    model.load_state_dict(state)
    return model.to(map_location).eval()


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise a one-line UserError naming the first tensor of ``state`` with NaN or infinite values."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{path}: {name} holds NaN or infinite values (a diverged training?); "
                            f"retrain with a lower --lr")


def check_state_matches(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise a one-line UserError if ``state`` does not fit ``model`` (names or shapes)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise UserError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(
                f"{path}: weights do not match the config ({name} has shape {tuple(state[name].shape)}, "
                f"expected {tuple(tensor.shape)})"
            )
        if state[name].dtype != tensor.dtype and (state[name].is_floating_point() != tensor.is_floating_point()):
            raise UserError(f"{path}: {name} has dtype {state[name].dtype}, expected {tensor.dtype}")
    check_finite(state, path)

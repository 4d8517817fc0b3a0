"""Spiking-VAE run directories: ``config.json`` with ``"kind": "vae"``, ``model.safetensors``, loaded without code.

A VAE run directory has the classifier's layout (docs/FORMATS.md): ``config.json``, ``model.safetensors``,
``train_state.safetensors``, ``metrics.jsonl`` and ``metrics.json`` (last: the run is complete). Its
``config.json`` is ``{"kind": "vae", "vae": VAEConfig.to_dict(), "train": TrainConfig fields,
"optimizer": {...}}``; a classifier's has ``"model"`` and no ``"kind"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tcja_deploy import atomic
from tcja_deploy.errors import UserError
from tcja_deploy.models.vae import SpikingVAE, VAEConfig
from tcja_deploy.training import checkpoint

VAE_KIND = "vae"


def is_vae_run(run_dir: Path) -> bool:
    """Whether ``run_dir``'s config.json (if readable) belongs to a spiking-VAE run."""
    path = Path(run_dir) / checkpoint.CONFIG_FILE
    try:
        raw = checkpoint.read_json(path)
    except UserError:
        return False
    return isinstance(raw, dict) and raw.get("kind") == VAE_KIND


def save_vae_config(run_dir: Path, vae: VAEConfig, train: dict[str, Any], optimizer: dict[str, Any]) -> None:
    """Write ``config.json`` of a VAE run (atomically)."""
    atomic.write_json(Path(run_dir) / checkpoint.CONFIG_FILE,
                      {"kind": VAE_KIND, "vae": vae.to_dict(), "train": train, "optimizer": optimizer})


def load_vae_config(run_dir: Path) -> tuple[VAEConfig, dict[str, Any]]:
    """(VAE config, train config dict) of a VAE run; a classifier run or a bad file raises UserError."""
    path = Path(run_dir) / checkpoint.CONFIG_FILE
    raw = checkpoint.read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a tcja_deploy run config")
    if raw.get("kind") != VAE_KIND:
        what = "a classifier run (TCJA-SNN)" if "model" in raw else "not a spiking-VAE run"
        raise UserError(f"{path}: {what}; this needs a run trained with --preset vae_*")
    try:
        vae = VAEConfig.from_dict(raw.get("vae"))  # type: ignore[arg-type]
    except ValueError as e:
        raise UserError(f"{path}: vae: {e}") from None
    train = raw.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{path}: train: not a JSON object")
    return vae, train


def load_vae(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[SpikingVAE, dict[str, Any]]:
    """(trained SpikingVAE in eval mode, train config dict) of a finished VAE run; bad input → UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    vae, train = load_vae_config(run_dir)
    if not (run_dir / checkpoint.METRICS_FILE).is_file():
        raise UserError(f"{run_dir}: unfinished run (no {checkpoint.METRICS_FILE}); finish it with "
                        f"python -m tcja_deploy.train --resume {run_dir}")
    state = checkpoint.load_state_dict(run_dir / checkpoint.MODEL_FILE)
    model = SpikingVAE(vae)
    checkpoint.check_state_matches(model, state, run_dir / checkpoint.MODEL_FILE)
    model.load_state_dict(state)
    return model.to(map_location).eval(), train

"""A tiny TCJA-SNN with nonzero activity in every layer, for fast end-to-end conversion tests.

Input 2×8×8 event counts, T = 4: Conv4-BN-LIF-MaxPool, Conv6-BN-LIF-TCJA-MaxPool (the gate moves past
the pool), Conv6-BN-LIF-TCJA (a gate with no pool after it), Flatten, Dropout, Linear20-LIF, Vote(10).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tcja_deploy.models import TCJASNN
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, ModelConfig, \
    TCJAAttention, Vote
from tcja_deploy.training.checkpoint import save_model

T = 4
INPUT_SHAPE = (2, 8, 8)


def tiny_config(layers=None, T: int = T, input_shape=INPUT_SHAPE, num_classes: int = 2) -> ModelConfig:
    layers = layers or (
        Conv(4), BatchNorm(), LIF(), MaxPool(2),
        Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=2, kernel_cla=3), MaxPool(2),
        Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=3, kernel_cla=2),
        Flatten(), Dropout(0.2), Linear(20), LIF(), Vote(10),
    )
    return ModelConfig(preset="tiny", input_shape=input_shape, T=T, num_classes=num_classes, layers=tuple(layers))


def tiny_model(seed: int = 0, config: ModelConfig | None = None) -> TCJASNN:
    """Random weights with BatchNorm statistics set so that every layer spikes at a moderate rate."""
    torch.manual_seed(seed)
    model = TCJASNN(config or tiny_config()).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.02, 0.08)
                m.weight.uniform_(0.8, 1.6)
                m.bias.uniform_(0.5, 1.5)
            if isinstance(m, torch.nn.Conv1d):  # TCJA: a gate that is not ~0.5 everywhere
                m.weight.mul_(4.0)
            if isinstance(m, torch.nn.Linear):  # no BatchNorm before the last LIF: drive it harder
                m.weight.mul_(8.0)
    return model


def tiny_input(n: int, seed: int = 1, T: int = T, shape=INPUT_SHAPE) -> torch.Tensor:
    """Event counts [T, N, C, H, W] in {0, 1, 2, 3}."""
    g = torch.Generator().manual_seed(seed)
    shape = (T, n) + tuple(shape)
    return torch.randint(0, 4, shape, generator=g).float() * (torch.rand(shape, generator=g) < 0.4)


def tiny_run(path: Path, seed: int = 0) -> Path:
    """A run directory (config.json + model.safetensors) of the tiny model."""
    save_model(Path(path), tiny_model(seed), {"preset": "tiny"})
    return Path(path)

"""TCJA-SNN: a torch module built from a :class:`~tcja_deploy.models.specs.ModelConfig`.

Input [T, N, C, H, W] (event frames or repeated images); output class scores [N, K] = the mean over T
of the last layer's output (firing rate when it is a LIF), averaged over voter groups.
Module ``layers.{i}`` corresponds to ``config.layers[i]``; layers without parameters are identities
in the state dict's naming so indices always line up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tcja_deploy.models import specs
from tcja_deploy.models.lif import LIFConfig, LIFSequence
from tcja_deploy.models.tcja import TCJA


class PerStep(nn.Module):
    """Apply a stateless module to every time step: [T, N, ...] → [T, N, ...]."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, N = x.shape[:2]
        y = self.module(x.reshape(T * N, *x.shape[2:]))
        return y.reshape(T, N, *y.shape[1:])


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn per sample and shared across time: [T, N, ...]."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.bernoulli(torch.full_like(x[0:1], 1 - self.p)) / (1 - self.p)
        return x * mask


class Voting(nn.Module):
    """[..., K·voters] → [..., K] by averaging groups of consecutive outputs."""

    def __init__(self, voters: int):
        super().__init__()
        self.voters = voters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape[:-1], -1, self.voters).mean(-1)


class Flatten(nn.Module):
    """[T, N, C, H, W] → [T, N, C·H·W] (C-major, as torch's Flatten)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


def infer_shapes(config: specs.ModelConfig) -> list[tuple[int, ...]]:
    """Per-step feature shape after every layer (index i: output of layer i), without the T, N dims."""
    shape: tuple[int, ...] = tuple(config.input_shape)
    out = []
    for layer in config.layers:
        if isinstance(layer, specs.Conv):
            c, h, w = shape
            k, p, s = layer.kernel_size, layer.padding, layer.stride
            shape = (layer.out_channels, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif isinstance(layer, (specs.MaxPool, specs.AvgPool)):
            c, h, w = shape
            shape = (c, h // layer.kernel_size, w // layer.kernel_size)
        elif isinstance(layer, specs.Flatten):
            n = 1
            for d in shape:
                n *= d
            shape = (n,)
        elif isinstance(layer, specs.Linear):
            shape = (layer.out_features,)
        elif isinstance(layer, specs.Vote):
            shape = (shape[0] // layer.voters,)
        out.append(shape)
    return out


def build_layer(layer: specs.LayerSpec, in_shape: tuple[int, ...], T: int) -> nn.Module:
    """Torch module for one spec, given the per-step input shape."""
    if isinstance(layer, specs.Conv):
        return PerStep(nn.Conv2d(in_shape[0], layer.out_channels, layer.kernel_size,
                                 stride=layer.stride, padding=layer.padding, bias=layer.bias))
    if isinstance(layer, specs.BatchNorm):
        bn = nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])
        return PerStep(bn)
    if isinstance(layer, specs.LIF):
        return LIFSequence(LIFConfig(layer.tau_mem, layer.tau_syn, layer.v_th, layer.surrogate, layer.alpha,
                                     layer.detach_reset))
    if isinstance(layer, specs.TCJAAttention):
        if len(in_shape) != 3:
            raise ValueError(f"TCJA needs [C, H, W] features, got {in_shape}")
        return TCJA(T, in_shape[0], layer.kernel_tla, layer.kernel_cla, layer.causal, layer.gate_function)
    if isinstance(layer, specs.MaxPool):
        return PerStep(nn.MaxPool2d(layer.kernel_size))
    if isinstance(layer, specs.AvgPool):
        return PerStep(nn.AvgPool2d(layer.kernel_size))
    if isinstance(layer, specs.Dropout):
        return SharedDropout(layer.p)
    if isinstance(layer, specs.Flatten):
        return Flatten()
    if isinstance(layer, specs.Linear):
        return PerStep(nn.Linear(in_shape[0], layer.out_features, bias=layer.bias))
    if isinstance(layer, specs.Vote):
        return Voting(layer.voters)
    raise ValueError(f"unsupported layer {layer!r}")


class TCJASNN(nn.Module):
    """The network of a :class:`ModelConfig`; ``forward`` maps [T, N, C, H, W] → scores [N, K]."""

    def __init__(self, config: specs.ModelConfig):
        super().__init__()
        self.config = config
        shapes = [tuple(config.input_shape)] + infer_shapes(config)
        self.layers = nn.ModuleList(build_layer(layer, shapes[i], config.T) for i, layer in enumerate(config.layers))

    def forward_sequence(self, x: torch.Tensor, record: bool = False):
        """Run all layers over the window; returns the last output [T, N, ...] (and every layer's if record)."""
        expected = (self.config.T, *self.config.input_shape)
        if x.dim() != 5 or (x.shape[0], *x.shape[2:]) != expected:
            raise ValueError(f"expected input [T, N, C, H, W] with T, C, H, W = {expected}, got {tuple(x.shape)}")
        outputs = []
        for module in self.layers:
            x = module(x)
            if record:
                outputs.append(x)
        return (x, outputs) if record else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_sequence(x).mean(0)


def rate_loss(scores: torch.Tensor, labels: torch.Tensor, loss: str, num_classes: int) -> torch.Tensor:
    """MSE between scores and one-hot labels (reference), or cross-entropy on the scores."""
    if loss == "mse":
        return F.mse_loss(scores, F.one_hot(labels, num_classes).to(scores.dtype))
    if loss == "ce":
        return F.cross_entropy(scores, labels)
    raise ValueError(f"unknown loss {loss!r}; choose mse or ce")

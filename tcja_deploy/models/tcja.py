"""Temporal-Channel Joint Attention (Zhu et al., IEEE TNNLS 2024).

Semantics follow the reference code (ridgerchu/TCJA ``src/layers.py``). The reference names its two
convolutions against the paper; ours follow the paper:

- **TLA** (temporal-wise local attention): Conv1d over Zᵀ [N, C, T] with C in/out channels and a
  kernel of ``kernel_tla`` steps: mixes all channels, local in time. (Reference: ``conv_c``,
  ``kernel_size_c``.)
- **CLA** (channel-wise local attention): Conv1d over Z [N, T, C] with T in/out channels and a kernel
  of ``kernel_cla`` channels: mixes all time steps, local across channels. (Reference: ``conv``,
  ``kernel_size_t``.)
- **CCF**: ``gate = sigmoid(TLA ⊙ CLA)``, a [T, N, C] map that scales the spikes.

``gate_function="pwl"`` replaces the sigmoid by the piecewise-linear one the neuro-core gate computes
(:func:`pwl_sigmoid`, ours): a model trained with it is trained for what the chip does.

The pure functions here are what the conversion stage and the tests call; :class:`TCJA` only carries
the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(kernel_size: int) -> tuple[int, int]:
    """(left, right) padding of PyTorch's ``padding='same'``: the extra pad of an even kernel goes right."""
    total = kernel_size - 1
    left = total // 2
    return left, total - left


def causal_time_mask(T: int) -> torch.Tensor:
    """[T, T] lower-triangular mask: output step t may read input steps ≤ t."""
    return torch.tril(torch.ones(T, T))


#: The chip's sigmoid knots (gate input CLA ⊙ TLA): 13 knots, 1 apart (ours; see conversion/neurocore_gate.py).
PWL_KNOTS = tuple(float(x) for x in range(-6, 7))
GATE_FUNCTIONS = ("sigmoid", "pwl")


def pwl_knot_values(knots: tuple[float, ...] = PWL_KNOTS) -> list[float]:
    """Gate values at the knots: 0 at the first, 1 at the last, the sigmoid in between."""
    import math

    return [0.0] + [1.0 / (1.0 + math.exp(-k)) for k in knots[1:-1]] + [1.0]


def pwl_sigmoid(x: torch.Tensor, knots: tuple[float, ...] = PWL_KNOTS) -> torch.Tensor:
    """Linear between :func:`pwl_knot_values`, flat outside the knots (max |Δ| to the sigmoid 0.012)."""
    values = pwl_knot_values(knots)
    out = torch.full_like(x, values[0])
    for j in range(len(knots) - 1):
        slope = (values[j + 1] - values[j]) / (knots[j + 1] - knots[j])
        out = out + slope * (torch.clamp(x, knots[j], knots[j + 1]) - knots[j])
    return out


def gate_activation(fused: torch.Tensor, gate_function: str = "sigmoid") -> torch.Tensor:
    """The CCF's squashing: ``"sigmoid"`` (the paper) or ``"pwl"`` (the chip's)."""
    if gate_function == "sigmoid":
        return torch.sigmoid(fused)
    if gate_function == "pwl":
        return pwl_sigmoid(fused)
    raise ValueError(f"gate_function must be one of {GATE_FUNCTIONS}, got {gate_function!r}")


def squeeze_spikes(x: torch.Tensor) -> torch.Tensor:
    """Spatial mean of [T, N, C, H, W] spikes → Z as [N, T, C]."""
    return x.mean(dim=(3, 4)).permute(1, 0, 2)


def tcja_gate(z: torch.Tensor, w_tla: torch.Tensor, w_cla: torch.Tensor, causal: bool = False,
              gate_function: str = "sigmoid") -> torch.Tensor:
    """Attention gate from the squeezed spikes.

    Args:
        z: [N, T, C] spatial means of the spikes.
        w_tla: [C, C, kernel_tla] TLA weights (kernel runs over time).
        w_cla: [T, T, kernel_cla] CLA weights (kernel runs over channels).
        causal: when True, step t uses only steps ≤ t (left-only TLA padding, lower-triangular CLA).
        gate_function: ``"sigmoid"`` or ``"pwl"`` (:func:`gate_activation`).

    Returns:
        [T, N, C] gate in (0, 1).
    """
    k_tla = w_tla.shape[-1]
    k_cla = w_cla.shape[-1]
    # CLA: Z as [N, T(channels), C(length)]
    cla_in = F.pad(z, same_padding(k_cla))
    if causal:
        w_cla = w_cla * causal_time_mask(w_cla.shape[0]).to(w_cla)[:, :, None]
    cla = F.conv1d(cla_in, w_cla)  # [N, T, C]
    # TLA: Zᵀ as [N, C(channels), T(length)]
    tla_pad = (k_tla - 1, 0) if causal else same_padding(k_tla)
    tla = F.conv1d(F.pad(z.transpose(1, 2), tla_pad), w_tla)  # [N, C, T]
    fused = cla * tla.transpose(1, 2)  # [N, T, C]
    return gate_activation(fused, gate_function).permute(1, 0, 2)


def apply_gate(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Scale [T, N, C, H, W] spikes by a [T, N, C] gate."""
    return x * gate[..., None, None]


class TCJA(nn.Module):
    """TCJA attention on [T, N, C, H, W] spikes; returns graded spikes of the same shape.

    Args:
        T: time steps the CLA convolution mixes (its in/out channels). Inputs must have this T.
        channels: C, the TLA convolution's in/out channels.
        kernel_tla: TLA kernel length in time steps.
        kernel_cla: CLA kernel length in channels.
        causal: streaming-deployable variant (see :func:`tcja_gate`).
        gate_function: ``"sigmoid"`` (the paper) or ``"pwl"`` (the neuro-core gate's sigmoid).
    """

    def __init__(self, T: int, channels: int, kernel_tla: int = 4, kernel_cla: int = 4, causal: bool = False,
                 gate_function: str = "sigmoid"):
        super().__init__()
        if gate_function not in GATE_FUNCTIONS:
            raise ValueError(f"gate_function must be one of {GATE_FUNCTIONS}, got {gate_function!r}")
        self.T, self.channels, self.causal, self.gate_function = T, channels, causal, gate_function
        self.tla = nn.Conv1d(channels, channels, kernel_tla, bias=False)
        self.cla = nn.Conv1d(T, T, kernel_cla, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, C] gate for [T, N, C, H, W] spikes."""
        if x.dim() != 5:
            raise ValueError(f"TCJA expects [T, N, C, H, W] spikes, got shape {tuple(x.shape)}")
        if x.shape[0] != self.T or x.shape[2] != self.channels:
            raise ValueError(
                f"TCJA was built for T={self.T}, C={self.channels} but got T={x.shape[0]}, C={x.shape[2]}"
            )
        return tcja_gate(squeeze_spikes(x), self.tla.weight, self.cla.weight, self.causal, self.gate_function)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_gate(x, self.gate(x))

    def extra_repr(self) -> str:
        return (f"T={self.T}, channels={self.channels}, kernel_tla={self.tla.kernel_size[0]}, "
                f"kernel_cla={self.cla.kernel_size[0]}, causal={self.causal}, gate_function={self.gate_function}")

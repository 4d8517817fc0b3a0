"""Leaky integrate-and-fire neurons over a time window, on Norse.

The neuron is Norse's current-based LIF (``lif_feed_forward_step``), which is Loihi's CUBA neuron
(see ``shared/DESIGN.md`` §3): with time step ``dt`` = 1,

    i ← i + x;  v ← v + (i − v)/τ_mem;  i ← i·(1 − 1/τ_syn);  spike if v > v_th;  v ← 0 on spike.

Time constants are in time steps. τ_syn = 1 clears the current every step, which gives the reference
code's LIF (SpikingJelly ``LIFNode(tau=2)``, decay_input, hard reset to 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from norse.torch import LIF as NorseLIF
from norse.torch import LIFParameters
from torch import nn


@dataclass(frozen=True)
class LIFConfig:
    """LIF parameters; times in time steps, voltages in units of the threshold scale."""

    tau_mem: float = 2.0
    tau_syn: float = 1.0
    v_th: float = 1.0
    surrogate: str = "super"  # a Norse threshold method: super, tanh, triangle, circ, heavi_erfc
    alpha: float = 10.0  # surrogate sharpness (Norse's alpha)

    def norse_parameters(self) -> LIFParameters:
        return LIFParameters(
            tau_syn_inv=torch.as_tensor(1.0 / self.tau_syn),
            tau_mem_inv=torch.as_tensor(1.0 / self.tau_mem),
            v_leak=torch.as_tensor(0.0),
            v_th=torch.as_tensor(self.v_th),
            v_reset=torch.as_tensor(0.0),
            method=self.surrogate,
            alpha=torch.as_tensor(self.alpha),
        )


class LIFSequence(nn.Module):
    """Norse LIF over a window: [T, N, ...] input current → [T, N, ...] spikes in {0, 1}.

    State starts at zero for every call (each sample is an independent window).
    """

    def __init__(self, config: LIFConfig = LIFConfig()):
        super().__init__()
        self.config = config
        self.lif = NorseLIF(p=config.norse_parameters(), dt=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.lif(x)
        return spikes

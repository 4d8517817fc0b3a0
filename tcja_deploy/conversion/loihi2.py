"""Loihi 2 fixed-point constants and integer primitives: one home for every number of docs/DESIGN.md §3.

Used by the quantization pass, the fixed-point semantics of the ``q_*`` nodes, the NetX export and the
graph's field checks. Sources: Lava ``lava/proc/lif/models.py`` (``PyLifModelBitAcc``), ``lava/proc/conv``
(``signed_clamp``), lava-dl slayer ``neuron/cuba.py`` and ``netx/hdf5.py``.
"""

from __future__ import annotations

import torch

#: Synaptic input and threshold are shifted left by this many bits (slayer's ``w_scale`` = 2⁶ = 64).
WEIGHT_EXP = 6
WEIGHT_SCALE = 1 << WEIGHT_EXP
#: slayer's 8-bit weights at w_scale 64: even integers in [−256, 254].
WEIGHT_MAX, WEIGHT_MIN = 254, -256
#: Decays are 12-bit: a decay d ∈ [0, 1] is written as round(d·4096).
DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS
#: u and v are 24-bit signed states.
STATE_BITS = 24
STATE_MAX = (1 << (STATE_BITS - 1)) - 1
STATE_WRAP = 1 << (STATE_BITS - 1)
#: Threshold mantissa (17 bits) and v-bias mantissa (13-bit signed).
VTH_MAX = (1 << 17) - 1
BIAS_MAX = (1 << 12) - 1
#: Graded spikes carry at most 24 bits; the gate's payload must fit.
MAX_PAYLOAD_BITS = 23


def trunc_decay(x: torch.Tensor, keep: int) -> torch.Tensor:
    """``trunc(x·keep / 4096)`` for int64 x: the 12-bit decay, rounding toward zero (Lava, slayer's
    ``right_shift_to_zero``); ``keep`` = 4096 − decay."""
    return torch.div(x * keep, DECAY_UNITY, rounding_mode="trunc")


def trunc_shift12(x: torch.Tensor) -> torch.Tensor:
    """sign(x)·(|x| >> 12) for int64 x (rounding toward zero)."""
    return torch.div(x, DECAY_UNITY, rounding_mode="trunc")


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava's 24-bit wrap of the current u: values > 2²³ lose 2²⁴, values ≤ −2²³ gain 2²⁴."""
    w = torch.where(u > STATE_WRAP, u - 2 * STATE_WRAP, u)
    return torch.where(w <= -STATE_WRAP, u + 2 * STATE_WRAP, w)


def clip_voltage(v: torch.Tensor) -> torch.Tensor:
    """Lava clips the voltage to ±(2²³ − 1)."""
    return torch.clamp(v, -STATE_MAX, STATE_MAX)


def signed_clamp24(x: torch.Tensor) -> torch.Tensor:
    """Lava conv's ``signed_clamp(x, 24)``: modular wrap into [−2²³, 2²³)."""
    return torch.remainder(x + STATE_WRAP, 2 * STATE_WRAP) - STATE_WRAP

#: lava-nc 0.10's Conv process models keep ``groups`` in an int8 (``LavaPyType(np.ndarray, np.int8)``), so a
#: grouped conv of 128 or more groups wraps to a negative count and sends nothing. Grouped convs with more
#: groups are written as ``groups = 1`` with block-diagonal weights (the same sums).
LAVA_MAX_CONV_GROUPS = 127

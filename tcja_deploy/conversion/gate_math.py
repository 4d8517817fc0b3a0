"""The TCJA gate's arithmetic, float and fixed point: one source of truth for the Lava gate process
(:mod:`tcja_deploy.hardware.lava_procs`) and the bit-exact emulator.

The gate is computed from spike *counts*: ``counts[t, c]`` = number of spikes of channel c at step t,
summed over the H×W pixels the TCJA squeeze averages over, so ``Z = counts / (H·W)``. Semantics are
those of :func:`tcja_deploy.models.tcja.tcja_gate` (paper names: TLA mixes all channels, local in
time; CLA mixes all steps, local across channels; ``gate = sigmoid(TLA ⊙ CLA)``), laid out [T, C]
instead of [T, N, C] (batched functions take any leading dims, ``[..., T, C]``).

Modes:
- ``"window"``: the reference, non-causal TCJA ('same' padding, the extra pad of an even kernel on
  the right; CLA mixes all T steps). The gate of a window needs all T steps.
- ``"streaming"``: the causal variant (``TCJA(causal=True)``): CLA weights masked lower-triangular in
  time, TLA padded on the left only; the gate row of step t reads counts of steps ≤ t only
  (:func:`gate_fixed_step`, :func:`gate_float_step`).

Fixed point (:func:`gate_fixed`), integer operations only, identical on every platform:

1. weights: symmetric per-tensor quantization to ``weight_bits`` (int8 by default):
   ``w ≈ w_q · scale`` with ``w_q ∈ [−(2^(B−1)−1), 2^(B−1)−1]`` and a *float* scale
   ``max|w| / (2^(B−1)−1)``. The float scales never reach the integer datapath: they are folded
   with ``2^F / (H·W)`` into an integer multiplier and shift (below).
2. accumulate (int64): ``cla_acc = Σ w_cla_q · counts``, ``tla_acc = Σ w_tla_q · counts``.
3. requantize each to F fraction bits (``frac_bits``, default 16):
   ``cla_fx = (cla_acc · cla_mult + 2^(cla_shift−1)) >> cla_shift`` where
   ``cla_mult · 2^−cla_shift ≈ w_cla_scale · 2^F / (H·W)``, ``2^30 ≤ cla_mult < 2^31``
   (relative error ≤ 2^−31); the same for TLA. ``>>`` is an arithmetic shift (floor), so this is
   round-half-up.
4. fuse: ``prod = cla_fx · tla_fx`` (2F fraction bits), LUT index
   ``idx = (prod + 2^(2F−L−1)) >> (2F − L)`` with L = ``lut_bits``, clipped to
   ``[−lut_half, lut_half]``, ``lut_half = lut_range · 2^L``.
5. sigmoid table: ``lut[i] = min(floor(sigmoid((i − lut_half) / 2^L) · 2^b + 1/2), 2^b − 1)``,
   ``2·lut_half + 1`` entries, resolution 2^−L, input range ``[−lut_range, lut_range]`` with
   ``lut_range = floor(ln(2^(b+1) − 1)) + 1`` (7 for b = 8: beyond it the rounded sigmoid is
   saturated, so clipping the index loses nothing). Defaults b = L = 8: 3,585 entries.
6. payload: ``p = lut[idx + lut_half]``, an unsigned integer of ``payload_bits`` = b bits,
   ``p ∈ [0, 2^b − 1]``; **the gate value is p · 2^−b** (``QuantizedGate.gate_scale``). A gated
   graded spike carries ``spike · p`` (binary spike, so 0 or p); the receiving synapse multiplies
   by its weight and must scale by 2^−b (a shift: ``weight_exp −= b``, or fold into the weights).

Error bound (:func:`error_bound`, tested): with ``g`` the float gate with the float weights,
``z = counts/(H·W)`` and ``⊛`` the CLA / TLA convolution,

    |p·2^−b − g| ≤ e_out + (2^−(L+1) + e_fused) / 4
    e_out   = 2^−(b+1)   (2^−b where p = 2^b − 1, the clipped top code)
    e_fused = A_cla·e_tla + (A_tla + e_tla)·e_cla,    A = |w| ⊛ |z|   (bounds |CLA|, |TLA|)
    e_cla   = |w_cla − w_cla_q·s| ⊛ |z|  +  (|w_cla_q|·s ⊛ |z|)·ε_mult  +  2^−(F+1)

(1/4 is the Lipschitz constant of the sigmoid). The first term of e_cla is the weight
quantization; without it (``against="quantized"``: vs the float gate with the dequantized
weights) the arithmetic alone gives ≈ 2^−(b+1) + 2^−(L+3) + (|CLA| + |TLA|)·2^−(F+3), i.e.
0.625·2^−8 + ε for the defaults (1.125·2^−8 + ε on the clipped top code), ε ≈ 1e−5 for
|CLA|, |TLA| ≲ 10. The weight term dominates the error against the float weights; it shrinks
by 2^−(B−8) with wider ``weight_bits`` (the gate runs on a processor, not in 8-bit synapses).

Overflow: :func:`quantize_gate` checks the worst case (all counts = H·W) against int64 (and the
accumulators against 2^53, so the torch path may accumulate exactly in float64, which also runs on
GPUs that lack int64 matmul) and raises ``ValueError`` if any intermediate could overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("window", "streaming")

_INT64_LIMIT = 1 << 62  # headroom below 2^63 for the rounding offsets
_FLOAT64_EXACT = 1 << 53


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


def _frozen_array(a: Any, dtype) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class GateParams:
    """A TCJA gate in float.

    Attributes:
        T: steps per window (the CLA convolution's in/out channels).
        C: channels.
        H, W: spatial size the squeeze averages over (counts are divided by H·W).
        w_tla: [C, C, kernel_tla] TLA weights (kernel over time), float64.
        w_cla: [T, T, kernel_cla] CLA weights (kernel over channels), float64, unmasked as trained
            (streaming mode masks them, exactly as ``tcja_gate(causal=True)``).
        mode: ``"window"`` (non-causal reference) or ``"streaming"`` (causal variant).
    """

    T: int
    C: int
    H: int
    W: int
    w_tla: np.ndarray
    w_cla: np.ndarray
    mode: str = "window"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("T", "C", "H", "W"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
            object.__setattr__(self, name, int(getattr(self, name)))
        w_tla = _frozen_array(self.w_tla, np.float64)
        w_cla = _frozen_array(self.w_cla, np.float64)
        if w_tla.ndim != 3 or w_tla.shape[:2] != (self.C, self.C):
            raise ValueError(f"w_tla must be [C, C, k] = [{self.C}, {self.C}, k], got {w_tla.shape}")
        if w_cla.ndim != 3 or w_cla.shape[:2] != (self.T, self.T):
            raise ValueError(f"w_cla must be [T, T, k] = [{self.T}, {self.T}, k], got {w_cla.shape}")
        object.__setattr__(self, "w_tla", w_tla)
        object.__setattr__(self, "w_cla", w_cla)

    @property
    def kernel_tla(self) -> int:
        return int(self.w_tla.shape[-1])

    @property
    def kernel_cla(self) -> int:
        return int(self.w_cla.shape[-1])

    @property
    def causal(self) -> bool:
        return self.mode == "streaming"

    @property
    def area(self) -> int:
        """H·W, the number of pixels a count is summed over."""
        return self.H * self.W

    @property
    def w_cla_effective(self) -> np.ndarray:
        """The CLA weights the gate uses: masked lower-triangular in time in streaming mode."""
        if not self.causal:
            return self.w_cla
        return self.w_cla * np.tril(np.ones((self.T, self.T)))[:, :, None]

    @classmethod
    def from_module(cls, module: Any, H: int, W: int, mode: str | None = None) -> "GateParams":
        """From a :class:`tcja_deploy.models.tcja.TCJA` (mode defaults to its ``causal`` flag)."""
        mode = mode or ("streaming" if module.causal else "window")
        return cls(T=module.T, C=module.channels, H=H, W=W,
                   w_tla=module.tla.weight.detach().double().cpu().numpy(),
                   w_cla=module.cla.weight.detach().double().cpu().numpy(), mode=mode)


@dataclass(frozen=True, eq=False)
class QuantizedGate:
    """A TCJA gate in fixed point (see the module docstring for the datapath).

    Attributes:
        params: the float gate it was quantized from.
        weight_bits: B, signed weight width; weights lie in [−(2^(B−1)−1), 2^(B−1)−1].
        w_tla_q: [C, C, kernel_tla] int32 TLA weights.
        w_cla_q: [T, T, kernel_cla] int32 CLA weights (already masked in streaming mode).
        w_tla_scale, w_cla_scale: float per-tensor scales, ``w ≈ w_q · scale``.
        frac_bits: F, fraction bits of the requantized CLA / TLA values.
        tla_mult, tla_shift, cla_mult, cla_shift: integer rescale ``acc·mult >> shift`` from the
            int accumulators to F fraction bits (mult·2^−shift ≈ scale·2^F/(H·W)).
        lut_bits: L, fraction bits of the sigmoid table's input (resolution 2^−L).
        lut_range: the table covers inputs [−lut_range, lut_range] (integer).
        lut: [2·lut_range·2^L + 1] int32 sigmoid table, payload codes in [0, 2^b − 1].
        payload_bits: b; a payload p ∈ [0, 2^b − 1] stands for the gate value p·2^−b.
    """

    params: GateParams
    weight_bits: int
    w_tla_q: np.ndarray
    w_cla_q: np.ndarray
    w_tla_scale: float
    w_cla_scale: float
    frac_bits: int
    tla_mult: int
    tla_shift: int
    cla_mult: int
    cla_shift: int
    lut_bits: int
    lut_range: int
    lut: np.ndarray
    payload_bits: int

    @property
    def lut_half(self) -> int:
        """Index offset of input 0 in :attr:`lut` (= lut_range · 2^L)."""
        return self.lut_range << self.lut_bits

    @property
    def lut_size(self) -> int:
        return int(self.lut.shape[0])

    @property
    def gate_scale(self) -> float:
        """Gate value of one payload unit, 2^−payload_bits."""
        return 2.0 ** -self.payload_bits

    @property
    def payload_max(self) -> int:
        return (1 << self.payload_bits) - 1

    def dequantized(self) -> GateParams:
        """The float gate with the quantized weights (w_q · scale)."""
        p = self.params
        return GateParams(T=p.T, C=p.C, H=p.H, W=p.W, mode=p.mode,
                          w_tla=self.w_tla_q * self.w_tla_scale, w_cla=self.w_cla_q * self.w_cla_scale)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """All fields as numpy arrays (for ``np.savez``); inverse: :meth:`from_arrays`."""
        p = self.params
        out = {"T": p.T, "C": p.C, "H": p.H, "W": p.W, "mode": p.mode, "w_tla": p.w_tla, "w_cla": p.w_cla}
        for name in ("weight_bits", "w_tla_q", "w_cla_q", "w_tla_scale", "w_cla_scale", "frac_bits",
                     "tla_mult", "tla_shift", "cla_mult", "cla_shift", "lut_bits", "lut_range", "lut",
                     "payload_bits"):
            out[name] = getattr(self, name)
        return {k: np.asarray(v) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: Any) -> "QuantizedGate":
        a = {k: np.asarray(arrays[k]) for k in arrays.keys()}
        params = GateParams(T=int(a["T"]), C=int(a["C"]), H=int(a["H"]), W=int(a["W"]), mode=str(a["mode"]),
                            w_tla=a["w_tla"], w_cla=a["w_cla"])
        ints = ("weight_bits", "frac_bits", "tla_mult", "tla_shift", "cla_mult", "cla_shift", "lut_bits",
                "lut_range", "payload_bits")
        kw = {k: int(a[k]) for k in ints}
        return cls(params=params, w_tla_q=_frozen_array(a["w_tla_q"], np.int32),
                   w_cla_q=_frozen_array(a["w_cla_q"], np.int32), w_tla_scale=float(a["w_tla_scale"]),
                   w_cla_scale=float(a["w_cla_scale"]), lut=_frozen_array(a["lut"], np.int32), **kw)


def _quantize_tensor(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    qmax = (1 << (bits - 1)) - 1
    m = float(np.abs(w).max()) if w.size else 0.0
    scale = m / qmax if m > 0 else 1.0
    q = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int32)
    return q, scale


def _multiplier(real: float) -> tuple[int, int]:
    """(mult, shift) with mult·2^−shift ≈ real, 2^30 ≤ mult < 2^31 (0, 1 for real = 0)."""
    if real <= 0:
        return 0, 1
    mant, exp = math.frexp(real)  # real = mant·2^exp, 0.5 ≤ mant < 1
    mult, shift = round(mant * (1 << 31)), 31 - exp
    if mult == 1 << 31:
        mult, shift = mult >> 1, shift - 1
    if not 1 <= shift <= 62:
        raise ValueError(f"rescale factor {real:g} out of range for a 31-bit multiplier and shift")
    return mult, shift


def lut_range_for(payload_bits: int) -> int:
    """Smallest integer x_max with round(sigmoid(±x)·2^b) saturated (0 or ≥ 2^b) for all |x| ≥ x_max."""
    return int(math.floor(math.log((1 << (payload_bits + 1)) - 1))) + 1


def sigmoid_lut(lut_bits: int, payload_bits: int) -> tuple[np.ndarray, int]:
    """(table, lut_range): payload codes of sigmoid on the grid i·2^−L, |i·2^−L| ≤ lut_range."""
    rng = lut_range_for(payload_bits)
    half = rng << lut_bits
    x = np.arange(-half, half + 1, dtype=np.float64) / (1 << lut_bits)
    codes = np.floor(_sigmoid(x) * (1 << payload_bits) + 0.5)
    return np.minimum(codes, (1 << payload_bits) - 1).astype(np.int32), rng


def quantize_gate(params: GateParams, weight_bits: int = 8, lut_bits: int = 8, payload_bits: int = 8,
                  frac_bits: int = 16) -> QuantizedGate:
    """Quantize a float gate (see the module docstring for what each width means).

    Raises:
        ValueError: a width out of range, or an intermediate of the worst case (all counts = H·W)
            would overflow int64 (accumulators: 2^53).
    """
    if not 2 <= weight_bits <= 16:
        raise ValueError(f"weight_bits must be in [2, 16], got {weight_bits}")
    if not 1 <= payload_bits <= 23:
        raise ValueError(f"payload_bits must be in [1, 23] (Loihi 2 graded spikes: 24 bit), got {payload_bits}")
    if not 0 <= lut_bits < 2 * frac_bits:
        raise ValueError(f"need 0 ≤ lut_bits < 2·frac_bits, got lut_bits={lut_bits}, frac_bits={frac_bits}")
    w_tla_q, s_tla = _quantize_tensor(params.w_tla, weight_bits)
    w_cla_q, s_cla = _quantize_tensor(params.w_cla_effective, weight_bits)
    tla_mult, tla_shift = _multiplier(s_tla * 2.0 ** frac_bits / params.area)
    cla_mult, cla_shift = _multiplier(s_cla * 2.0 ** frac_bits / params.area)
    lut, lut_range = sigmoid_lut(lut_bits, payload_bits)

    # worst case: every count = H·W
    tla_acc = params.area * int(np.abs(w_tla_q).astype(np.int64).sum(axis=(1, 2)).max())
    cla_acc = params.area * int(np.abs(w_cla_q).astype(np.int64).sum(axis=(1, 2)).max())
    tla_fx = ((tla_acc * tla_mult) >> tla_shift) + 1
    cla_fx = ((cla_acc * cla_mult) >> cla_shift) + 1
    if max(tla_acc, cla_acc) >= _FLOAT64_EXACT or max(tla_acc * tla_mult, cla_acc * cla_mult) >= _INT64_LIMIT \
            or tla_fx * cla_fx >= _INT64_LIMIT:
        raise ValueError(f"gate T={params.T} C={params.C} H·W={params.area} could overflow int64 with "
                         f"frac_bits={frac_bits}, weight_bits={weight_bits}: lower frac_bits")
    return QuantizedGate(params=params, weight_bits=weight_bits, w_tla_q=_frozen_array(w_tla_q, np.int32),
                         w_cla_q=_frozen_array(w_cla_q, np.int32), w_tla_scale=s_tla, w_cla_scale=s_cla,
                         frac_bits=frac_bits, tla_mult=tla_mult, tla_shift=tla_shift, cla_mult=cla_mult,
                         cla_shift=cla_shift, lut_bits=lut_bits, lut_range=lut_range,
                         lut=_frozen_array(lut, np.int32), payload_bits=payload_bits)


# ---------------------------------------------------------------------------------------------
# convolutions (numpy, any leading dims)
# ---------------------------------------------------------------------------------------------


def same_padding(kernel_size: int) -> tuple[int, int]:
    """PyTorch ``padding='same'`` (left, right): the extra pad of an even kernel goes right.

    Mirrors :func:`tcja_deploy.models.tcja.same_padding` (a test checks they agree); repeated here so
    that the Lava process does not import the training stack.
    """
    total = kernel_size - 1
    return total // 2, total - total // 2


def tla_padding(kernel_size: int, causal: bool) -> tuple[int, int]:
    """(left, right) padding over time of the TLA convolution."""
    return (kernel_size - 1, 0) if causal else same_padding(kernel_size)


def _pad_axis(a: np.ndarray, axis: int, left: int, right: int) -> np.ndarray:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (left, right)
    return np.pad(a, widths)


def _cla(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """CLA [..., T, C] = Σ_{t', j} w[t, t', j] · z[..., t', c + j − left] (zero padded over C)."""
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(_pad_axis(z, -1, *same_padding(k)), k, axis=-1)
    return np.einsum("tuj,...ucj->...tc", w, win)  # win [..., T, C, k]


def _tla(z: np.ndarray, w: np.ndarray, causal: bool) -> np.ndarray:
    """TLA [..., T, C] = Σ_{c', j} w[c, c', j] · z[..., t + j − left, c'] (zero padded over T)."""
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(_pad_axis(z, -2, *tla_padding(k, causal)), k, axis=-2)
    return np.einsum("cdj,...tdj->...tc", w, win)  # win [..., T, C, k]


def _cla_row(z_hist: np.ndarray, w_row: np.ndarray) -> np.ndarray:
    """CLA row of the last step of z_hist [..., t+1, C], w_row = w[t, :t+1] [t+1, k] → [..., C]."""
    k = w_row.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(_pad_axis(z_hist, -1, *same_padding(k)), k, axis=-1)
    return np.einsum("uj,...ucj->...c", w_row, win)


def _tla_row_causal(z_hist: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Causal TLA row of the last step of z_hist [..., t+1, C] → [..., C]."""
    k = w.shape[-1]
    rows = _pad_axis(z_hist, -2, k - 1, 0)[..., -k:, :]  # steps t−k+1 … t, [..., k, C]
    return np.einsum("cdj,...jd->...c", w, rows)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# ---------------------------------------------------------------------------------------------
# float gate
# ---------------------------------------------------------------------------------------------


def gate_float(counts: Any, params: GateParams) -> np.ndarray:
    """Float gate [..., T, C] in (0, 1) from spike counts [..., T, C] summed over H×W.

    Equals ``tcja_gate(counts/(H·W) as [N, T, C], w_tla, w_cla, causal)`` permuted to [..., T, C].
    """
    z = np.asarray(counts, dtype=np.float64) / params.area
    _check_shape(z, params)
    return _sigmoid(_cla(z, params.w_cla_effective) * _tla(z, params.w_tla, params.causal))


def gate_float_step(history: Any, t: int, params: GateParams) -> np.ndarray:
    """Streaming mode: float gate row [..., C] of step t from counts [..., ≥ t+1, C] (rows > t unused)."""
    _check_step(params, t, history)
    z = np.asarray(history, dtype=np.float64)[..., : t + 1, :] / params.area
    return _sigmoid(_cla_row(z, params.w_cla_effective[t, : t + 1]) * _tla_row_causal(z, params.w_tla))


# ---------------------------------------------------------------------------------------------
# fixed-point gate
# ---------------------------------------------------------------------------------------------


def _rshift_round(x, shift: int):
    """Round-half-up ``x · 2^−shift`` for int64 numpy arrays or torch tensors (shift ≥ 1)."""
    return (x + (1 << (shift - 1))) >> shift


def _finish_fixed(cla_acc, tla_acc, q: QuantizedGate, lut, clamp):
    """Integer accumulators → payload codes (numpy or torch; ``clamp(x, lo, hi)`` and ``lut`` match)."""
    cla_fx = _rshift_round(cla_acc * q.cla_mult, q.cla_shift)
    tla_fx = _rshift_round(tla_acc * q.tla_mult, q.tla_shift)
    idx = _rshift_round(cla_fx * tla_fx, 2 * q.frac_bits - q.lut_bits)
    return lut[clamp(idx, -q.lut_half, q.lut_half) + q.lut_half]


def _np_clamp(x, lo, hi):
    return np.clip(x, lo, hi)


def _int_counts(counts: Any, params: GateParams) -> np.ndarray:
    c = np.asarray(counts)
    if c.dtype.kind == "f":
        if not np.all(c == np.rint(c)):
            raise ValueError("counts must be integers")
    c = c.astype(np.int64)
    if c.size and (c.min() < 0 or c.max() > params.area):
        raise ValueError(f"counts must lie in [0, H·W = {params.area}], got [{c.min()}, {c.max()}]")
    return c


def _check_shape(counts: np.ndarray, params: GateParams) -> None:
    if counts.ndim < 2 or counts.shape[-2:] != (params.T, params.C):
        raise ValueError(f"counts must be [..., T, C] = [..., {params.T}, {params.C}], got {counts.shape}")


def _check_step(params: GateParams, t: int, history: Any) -> None:
    if not params.causal:
        raise ValueError("a per-step gate exists in streaming mode only (window mode needs all T steps)")
    if not 0 <= t < params.T:
        raise ValueError(f"step t must be in [0, T = {params.T}), got {t}")
    shape = np.shape(history)
    if len(shape) < 2 or shape[-2] < t + 1 or shape[-1] != params.C:
        raise ValueError(f"history must be [..., ≥ t+1 = {t + 1}, C = {params.C}], got {shape}")


def gate_fixed(counts: Any, qgate: QuantizedGate) -> np.ndarray:
    """Payload codes [..., T, C] (int64 in [0, 2^b − 1]; gate ≈ code·2^−b) from int counts [..., T, C].

    Integer arithmetic only; leading dims (e.g. N) are vectorized.
    """
    c = _int_counts(counts, qgate.params)
    _check_shape(c, qgate.params)
    w_cla = qgate.w_cla_q.astype(np.int64)
    w_tla = qgate.w_tla_q.astype(np.int64)
    return _finish_fixed(_cla(c, w_cla), _tla(c, w_tla, qgate.params.causal), qgate,
                         qgate.lut.astype(np.int64), _np_clamp)


def gate_fixed_step(history: Any, t: int, qgate: QuantizedGate) -> np.ndarray:
    """Streaming mode: payload row [..., C] of step t from int counts [..., ≥ t+1, C] (rows > t unused).

    Equals ``gate_fixed(counts)[..., t, :]`` for any counts agreeing on steps ≤ t.
    """
    _check_step(qgate.params, t, history)
    c = _int_counts(np.asarray(history)[..., : t + 1, :], qgate.params)
    cla = _cla_row(c, qgate.w_cla_q[t, : t + 1].astype(np.int64))
    tla = _tla_row_causal(c, qgate.w_tla_q.astype(np.int64))
    return _finish_fixed(cla, tla, qgate, qgate.lut.astype(np.int64), _np_clamp)


def gate_fixed_torch(counts, qgate: QuantizedGate):
    """:func:`gate_fixed` in torch, bit-identical, for the emulator: counts [..., T, C] (int or
    integral float, any device) → int64 payload codes [..., T, C] on the same device.

    The two convolutions accumulate in float64, exact because every partial sum is an integer
    below 2^53 (checked by :func:`quantize_gate`); the rest is int64.
    """
    import torch
    import torch.nn.functional as F

    p = qgate.params
    if counts.dim() < 2 or tuple(counts.shape[-2:]) != (p.T, p.C):
        raise ValueError(f"counts must be [..., T, C] = [..., {p.T}, {p.C}], got {tuple(counts.shape)}")
    dev = counts.device
    z = counts.to(torch.float64)
    if z.numel() and (z.min() < 0 or z.max() > p.area or not torch.equal(z, z.round())):
        raise ValueError(f"counts must be integers in [0, H·W = {p.area}]")
    w_cla = torch.from_numpy(qgate.w_cla_q.astype(np.float64)).to(dev)
    w_tla = torch.from_numpy(qgate.w_tla_q.astype(np.float64)).to(dev)
    k_cla, k_tla = w_cla.shape[-1], w_tla.shape[-1]
    win_c = F.pad(z, same_padding(k_cla)).unfold(-1, k_cla, 1)  # [..., T, C, k]
    cla = torch.einsum("tuj,...ucj->...tc", w_cla, win_c)
    win_t = F.pad(z.transpose(-1, -2), tla_padding(k_tla, p.causal)).unfold(-1, k_tla, 1)  # [..., C, T, k]
    tla = torch.einsum("cdj,...dtj->...tc", w_tla, win_t)
    lut = torch.from_numpy(qgate.lut.astype(np.int64)).to(dev)
    return _finish_fixed(cla.round().to(torch.int64), tla.round().to(torch.int64), qgate, lut, torch.clamp)


# ---------------------------------------------------------------------------------------------
# error bound
# ---------------------------------------------------------------------------------------------


def error_bound(qgate: QuantizedGate, counts: Any = None, against: str = "float") -> np.ndarray:
    """Upper bound [..., T, C] on ``|gate_fixed(counts)·2^−b − gate_float(counts, ref)|``.

    Args:
        counts: [..., T, C] int counts; None: the worst case over all inputs (per (t, c)).
        against: ``"float"``: ref = the float weights (includes the weight quantization);
            ``"quantized"``: ref = the dequantized weights (the fixed-point arithmetic alone).
    """
    if against not in ("float", "quantized"):
        raise ValueError(f"against must be 'float' or 'quantized', got {against!r}")
    p = qgate.params
    if counts is None:
        z = np.ones((p.T, p.C))  # every term is monotone in |z| ≤ 1
        e_out = np.full((p.T, p.C), 2.0 ** -qgate.payload_bits)
    else:
        c = _int_counts(counts, p)
        _check_shape(c, p)
        z = c / p.area
        code = gate_fixed(c, qgate)
        e_out = np.where(code == qgate.payload_max, 2.0 ** -qgate.payload_bits, 2.0 ** -(qgate.payload_bits + 1))

    def branch(w_float, w_q, scale, mult, shift, conv):
        w_deq = w_q * scale
        eps = abs(mult * 2.0 ** -shift / (scale * 2.0 ** qgate.frac_bits / p.area) - 1.0) if mult else 0.0
        a_deq = conv(z, np.abs(w_deq))
        e = a_deq * eps + 2.0 ** -(qgate.frac_bits + 1)
        if against == "float":
            e = e + conv(z, np.abs(w_float - w_deq))
            return conv(z, np.abs(w_float)), e
        return a_deq, e

    a_cla, e_cla = branch(p.w_cla_effective, qgate.w_cla_q, qgate.w_cla_scale, qgate.cla_mult, qgate.cla_shift,
                          _cla)
    a_tla, e_tla = branch(p.w_tla, qgate.w_tla_q, qgate.w_tla_scale, qgate.tla_mult, qgate.tla_shift,
                          lambda zz, w: _tla(zz, w, p.causal))
    e_fused = a_cla * e_tla + (a_tla + e_tla) * e_cla
    bound = e_out + 0.25 * (2.0 ** -(qgate.lut_bits + 1) + e_fused) + 1e-12
    return np.minimum(bound, 1.0)

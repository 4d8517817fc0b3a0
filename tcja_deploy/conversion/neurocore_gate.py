"""The TCJA gate rewritten for neuro cores: integer stages that Lava's standard processes compute.

``--gate neurocore`` places every stage of the gate on neuro cores as a sub-network of lava-nc 0.10
standard processes (the builder is :mod:`tcja_deploy.hardware.lava_gate`). This module fixes the
arithmetic of each stage, exactly as those processes' ``fixed_pt`` models compute it (read from
lava-nc 0.10.0's ``lava/proc/{sparse,graded,prodneuron,lif}/models.py`` and ``lava/utils/weightutils.py``),
and runs it in numpy or torch for the emulator. Layout: counts ``[..., T, C]`` (T steps of a window, C
channels); a *row* is one (t, c) pair, flattened as ``t·C + c``.

Stages of one window (``>>`` is an arithmetic shift, i.e. floor division by a power of two):

1. **squeeze** (``Sparse`` C·H·W → C, weight 1, ``weight_exp = −r``; ``GradedVec``):
   ``sq[t, c] = counts[t, c] >> r``, with ``r`` chosen so that ``sq ≤ 2^8``.
2. **select** (``ProdNeuron``, fan-out ``Sparse`` C → T·C times a phase pulse through ``DelaySparse``):
   row (t', c) carries ``sq[t', c]`` at the step of window step t', zero at every other step.
3. **CLA and TLA** (two ``DelaySparse`` T·C → T·C, mixed-sign 8-bit weights ``2·q`` (Loihi keeps even
   values only), ``weight_exp = −(1 + shift)``; the delay ``v_t − t'`` makes every source step arrive at
   the step ``v_t`` of row t, ``v_t = T − 1`` in window mode, ``t`` in streaming mode)::

       A[t, c] = Σ_t' ( Σ_c' Mcla[t, c, t', c'] · sq[t', c'] ) >> a_shift
       B[t, c] = Σ_t' ( Σ_c' Mtla[t, c, t', c'] · sq[t', c'] ) >> b_shift

   (Lava shifts each delay slot's sum, i.e. once per source step t'.) ``M`` are the 1-D convolutions of
   :mod:`gate_math` written as matrices over rows, with int8 kernels ``q ∈ [−127, 127]``.
4. **fuse** (``ProdNeuron``, the two branches on its two inputs): ``P = (A · B) >> prod_shift``.
   Bounds (checked here on the worst case, all counts = H·W): ``|A|, |B| < 2^15`` (the Python model
   multiplies in int32) and ``|P| + K < 2^23`` (24-bit graded spikes).
5. **sigmoid** as a piecewise-linear function of P. Knots ``K[j]`` (integers, symmetric:
   ``K[0] = −K[n−1]``) stand for the gate inputs ``x_j`` (:data:`KNOTS_X`); the phase pulse injects
   every constant, split into an 8-bit high part (``<< 8``) and an 8-bit low part so that it is exact::

       clamp relus (GradedReluVec 2·T·C):  lo = max(0, P + K[n−1]),  hi = max(0, P − K[n−1])
       clamp       (GradedVec T·C):        c  = lo − hi  ∈ [0, 2·K[n−1]]      (weights ±2, >> 1)
       knot relus  (GradedReluVec (n−2)·T·C):  R[j] = max(0, c − (K[j] + K[n−1])),  j = 1 … n−2
       sum         (GradedVec T·C):        G  = slope[0]·c + Σ_j slope[j]·R[j] + 2^(out_shift − 1)

   ``2·K[n−1] ≤ 2^15`` keeps every ``slope·R`` below 2^23. The knots interpolate the sigmoid at
   ``x_j`` (0 at the first, 1 at the last); the clamp makes G flat outside them.
6. **replay and scale** (``DelaySparse`` T·C → C with delay per row, ``Sparse`` broadcast C → C·H'·W',
   ``ProdNeuron`` per gated position; the spikes x are held by an identity ``DelaySparse``)::

       payload = (x · G) >> out_shift ∈ [0, 2^8 − 1],   gate value = payload / (2^8 − 1)

The training side can use the same function (:func:`tcja_deploy.models.tcja.pwl_sigmoid`,
``python -m tcja_deploy.train --gate-function pwl``) so a model is trained for what the chip computes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcja_deploy.conversion.gate_math import GateParams, same_padding, tla_padding
from tcja_deploy.models.tcja import PWL_KNOTS, pwl_knot_values
from tcja_deploy.models.tcja import pwl_sigmoid as torch_pwl_sigmoid

#: Sigmoid knots (in units of the gate's input CLA ⊙ TLA), shared with the training side's pwl sigmoid.
KNOTS_X = PWL_KNOTS
#: Widths of the chip's datapath (Loihi 2 graded spikes: 24-bit signed; Lava's ProdNeuron: int32 product).
SIGNED24 = 1 << 23
BRANCH_LIMIT = 1 << 15
#: 2·K[n−1] (the clamped range) must not exceed this, so that slope · relu < 2^23.
CLAMP_RANGE = 1 << 15
#: Constants injected by the phase pulse: high part << PULSE_SPLIT plus low part, 8 bits each.
PULSE_SPLIT = 8
PAYLOAD_BITS = 8
#: Lava's delay limit (NetX: 62; DelaySparse's model accepts 63).
MAX_DELAY = 62


class GatePlacementError(ValueError):
    """The gate cannot be placed on neuro cores (a limit of the datapath); the message names the limit."""


def knot_values(knots: tuple[float, ...] = KNOTS_X) -> np.ndarray:
    """Gate values at the knots: 0 at the first, 1 at the last, the sigmoid in between."""
    return np.asarray(pwl_knot_values(knots), dtype=np.float64)


def pwl_sigmoid(x, knots: tuple[float, ...] = KNOTS_X):
    """The chip's sigmoid in float: :func:`tcja_deploy.models.tcja.pwl_sigmoid` for tensors, numpy otherwise."""
    if hasattr(x, "detach"):
        return torch_pwl_sigmoid(x, knots)
    return np.interp(np.asarray(x, dtype=np.float64), knots, knot_values(knots))


# ----------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True, eq=False)
class NeurocoreGate:
    """A TCJA gate as neuro-core integer stages (module docstring).

    Attributes:
        T, C, H, W: window length, channels, squeezed map (counts lie in [0, H·W]).
        mode: ``"window"`` | ``"streaming"``.
        squeeze_shift: r.
        q_cla: [T, T, k_cla] int CLA kernel (masked lower-triangular in streaming mode); q_tla: [C, C, k_tla].
        w_cla_scale, w_tla_scale: float scales, w ≈ q · scale.
        a_shift, b_shift, prod_shift: shifts of stages 3 and 4.
        knot: [n] int knot positions K in units of P (symmetric, |K| ≤ 2^14).
        slope: [n − 1] int slopes (|slope| ≤ 255): slope[0] on the clamp c, slope[j] on R[j]; out_shift: g ≥ 1.
        x_unit: the gate input (CLA ⊙ TLA) that one unit of P stands for.
    """

    T: int
    C: int
    H: int
    W: int
    mode: str
    squeeze_shift: int
    q_cla: np.ndarray
    q_tla: np.ndarray
    w_cla_scale: float
    w_tla_scale: float
    a_shift: int
    b_shift: int
    prod_shift: int
    knot: np.ndarray
    slope: np.ndarray
    out_shift: int
    x_unit: float

    @property
    def area(self) -> int:
        return self.H * self.W

    @property
    def rows(self) -> int:
        return self.T * self.C

    @property
    def knots(self) -> np.ndarray:
        """[n] int64 knot positions K in units of P."""
        return self.knot.astype(np.int64)

    @property
    def offsets(self) -> np.ndarray:
        """[n − 2] the knot relus' offsets K[j] + K[n−1] (j = 1 … n−2), in [1, 2·K[n−1]]."""
        K = self.knots
        return K[1:-1] + K[-1]

    @property
    def payload_bits(self) -> int:
        return PAYLOAD_BITS

    @property
    def payload_max(self) -> int:
        return (1 << PAYLOAD_BITS) - 1

    @property
    def payload_scale(self) -> float:
        """Gate value of one payload unit (1/255: code 255 is the gate 1.0)."""
        return 1.0 / self.payload_max

    def valid_step(self) -> np.ndarray:
        """[T] v_t: the in-window step at which row t's stages hold their value (T − 1, or t streaming)."""
        return np.full(self.T, self.T - 1) if self.mode == "window" else np.arange(self.T)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {name: np.asarray(getattr(self, name)) for name in _FIELDS}
        out["placement"] = np.asarray("neurocore")
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> "NeurocoreGate":
        a = {k: np.asarray(arrays[k]) for k in _FIELDS}
        kw: dict[str, Any] = {k: int(a[k]) for k in _INT_FIELDS}
        kw.update(mode=str(a["mode"]), w_cla_scale=float(a["w_cla_scale"]), w_tla_scale=float(a["w_tla_scale"]),
                  x_unit=float(a["x_unit"]))
        for k in ("q_cla", "q_tla", "knot", "slope"):
            kw[k] = a[k].astype(np.int64)
        return cls(**kw)


_INT_FIELDS = ("T", "C", "H", "W", "squeeze_shift", "a_shift", "b_shift", "prod_shift", "out_shift")
_FIELDS = _INT_FIELDS + ("mode", "q_cla", "q_tla", "w_cla_scale", "w_tla_scale", "knot", "slope", "x_unit")
#: The keys a ``q_gate`` node with ``placement = "neurocore"`` stores in ``params``.
PARAM_KEYS = _FIELDS


def _quantize_kernel(w: np.ndarray) -> tuple[np.ndarray, float]:
    m = float(np.abs(w).max()) if w.size else 0.0
    scale = m / 127 if m > 0 else 1.0
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int64), scale


def _shift_matrices(k: int, n: int, left: int) -> np.ndarray:
    """[k, n, n] 0/1: ``S[j, i, i'] = 1`` where i' = i + j − left (a 1-D kernel tap as a matrix)."""
    s = np.zeros((k, n, n), dtype=np.int64)
    for j in range(k):
        s[j] = np.eye(n, k=j - left, dtype=np.int64)
    return s


def cla_matrix(q_cla: np.ndarray, C: int) -> np.ndarray:
    """[T, C, T, C] ``M[t, c, t', c'] = q[t, t', j]`` with c' = c + j − left ('same' padding over channels)."""
    T, _, k = q_cla.shape
    left, _ = same_padding(k)
    return np.einsum("tuj,jcd->tcud", np.asarray(q_cla, dtype=np.int64), _shift_matrices(k, C, left))


def tla_matrix(q_tla: np.ndarray, T: int, causal: bool) -> np.ndarray:
    """[T, C, T, C] ``M[t, c, t', c'] = q[c, c', j]`` with t' = t + j − left (zero padded over time)."""
    C, _, k = q_tla.shape
    left, _ = tla_padding(k, causal)
    return np.einsum("cdj,jtu->tcud", np.asarray(q_tla, dtype=np.int64), _shift_matrices(k, T, left))


def linear_maps(ng: NeurocoreGate) -> tuple[np.ndarray, np.ndarray]:
    """(Mcla, Mtla), each [T, C, T, C] int64."""
    return cla_matrix(ng.q_cla, ng.C), tla_matrix(ng.q_tla, ng.T, ng.mode == "streaming")


@functools.lru_cache(maxsize=4)
def _torch_linear_maps(q_cla: bytes, cla_shape: tuple, q_tla: bytes, tla_shape: tuple, C: int, T: int, mode: str,
                       device: str):
    """:func:`linear_maps` as float64 torch tensors [T', T·C, C'] on ``device``, built once per gate (the emulator calls a
    gate once per batch; each map is T·C·T·C entries, 52 MB at T = 20, C = 128). Keyed by the kernels' bytes."""
    import torch

    cla = np.frombuffer(q_cla, dtype=np.int64).reshape(cla_shape)
    tla = np.frombuffer(q_tla, dtype=np.int64).reshape(tla_shape)
    maps = cla_matrix(cla, C), tla_matrix(tla, T, mode == "streaming")
    # [T, C, T', C'] → [T', T·C, C']: the layout of one matrix product per source step
    return tuple(torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1, 3).reshape(T, T * C, C),
                                                       dtype=np.float64)).to(device) for m in maps)


def _branch_bound(m: np.ndarray, sq_max: int, shift: int) -> int:
    """max |Σ_t' (Σ_c' m·sq) >> shift| over sq ∈ [0, sq_max] (the per-slot floor included)."""
    pos = (np.clip(m, 0, None).sum(axis=3) * sq_max) >> shift  # [T, C, T']
    neg = (np.clip(m, None, 0).sum(axis=3) * sq_max) >> shift
    return int(max(pos.sum(axis=2).max(initial=0), -neg.sum(axis=2).min(initial=0)))


def _min_shift(m: np.ndarray, sq_max: int, limit: int) -> int:
    for shift in range(0, 40):
        if _branch_bound(m, sq_max, shift) < limit:
            return shift
    raise GatePlacementError("a branch sum does not fit 2^15 even after shifting 40 bits")


def quantize_neurocore(params: GateParams, knots: tuple[float, ...] = KNOTS_X) -> NeurocoreGate:
    """Choose every integer of the neuro-core gate from the float gate (module docstring).

    Raises:
        GatePlacementError: a stage cannot meet its limit (names the limit); or the window does not fit
            Lava's delays (T + latency > 62).
    """
    T, C = params.T, params.C
    window = params.mode == "window"
    if window and T + 8 > MAX_DELAY:
        raise GatePlacementError(f"a window of T = {T} steps plus the gate's 8-step latency exceeds Lava's "
                                 f"{MAX_DELAY}-step delay limit")
    q_cla, s_cla = _quantize_kernel(params.w_cla_effective)
    q_tla, s_tla = _quantize_kernel(params.w_tla)
    r = max(0, params.area.bit_length() - 9)
    sq_max = params.area >> r
    m_cla = cla_matrix(q_cla, C)
    m_tla = tla_matrix(q_tla, T, params.causal)
    a_shift = _min_shift(m_cla, sq_max, BRANCH_LIMIT)
    b_shift = _min_shift(m_tla, sq_max, BRANCH_LIMIT)
    ab_max = _branch_bound(m_cla, sq_max, a_shift) * _branch_bound(m_tla, sq_max, b_shift)
    # one unit of A (B) stands for 2^shift · scale · 2^r / (H·W) of CLA (TLA)
    alpha = (s_cla * 2.0 ** (a_shift + r) / params.area) * (s_tla * 2.0 ** (b_shift + r) / params.area)
    if len(knots) < 3 or any(abs(k + knots[-1 - j]) > 1e-12 for j, k in enumerate(knots)):
        raise GatePlacementError("the sigmoid knots must be symmetric around 0, at least 3")
    for prod_shift in range(0, 62):
        x_unit = alpha * 2.0 ** prod_shift
        K = np.array([int(round(k / x_unit)) for k in knots], dtype=np.int64)
        K = (K - K[::-1]) // 2  # exactly symmetric
        if 2 * int(K[-1]) <= CLAMP_RANGE and (ab_max >> prod_shift) + 1 + int(K[-1]) < SIGNED24:
            break
    else:
        raise GatePlacementError("the fused product does not fit 24 bits")
    if np.any(np.diff(K) <= 0):
        raise GatePlacementError(f"the product's resolution ({x_unit:.3g} per unit) is too coarse for "
                                 f"{len(knots)} distinct sigmoid knots")
    slope, out_shift = _slopes(K, knot_values(knots))
    return NeurocoreGate(T=T, C=C, H=params.H, W=params.W, mode=params.mode, squeeze_shift=r, q_cla=q_cla,
                         q_tla=q_tla, w_cla_scale=s_cla, w_tla_scale=s_tla, a_shift=a_shift, b_shift=b_shift,
                         prod_shift=prod_shift, knot=K, slope=slope, out_shift=out_shift, x_unit=x_unit)


def _sigmoid_sum(K: np.ndarray, slope: np.ndarray, half: int, P: np.ndarray) -> np.ndarray:
    """G of the sigmoid stage for products P (int64), as the processes compute it."""
    c = np.maximum(0, P + K[-1]) - np.maximum(0, P - K[-1])
    R = np.maximum(0, c[..., None] - (K[1:-1] + K[-1]))
    return slope[0] * c + (R * slope[1:]).sum(-1) + half


def _slopes(K: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer slopes (|·| ≤ 255) and the output shift g, the largest g ≤ 15 that fits."""
    dK = np.diff(K).astype(np.float64)
    for g in range(15, 0, -1):
        top = float(((1 << PAYLOAD_BITS) - 1) << g)
        s = np.diff(values) * top / dK  # G per unit of P on each segment
        d = np.round(np.concatenate([[s[0]], np.diff(s)])).astype(np.int64)
        if np.abs(d).max() > 255:
            continue
        G = _sigmoid_sum(K, d, 1 << (g - 1), np.concatenate([K, [K[-1] + 1]]))
        if G.min() >= 0 and G.max() < (256 << g):
            return d, g
    raise GatePlacementError("the sigmoid's slopes do not fit 8-bit synapse weights")


# ------------------------------------------------------------------------------------------- stages
def stages(counts, ng: NeurocoreGate) -> dict[str, Any]:
    """Every stage's value per window, numpy or torch (int64), counts [..., T, C] (ints in [0, H·W]).

    Returns {"squeeze": [..., T, C], "cla", "tla", "product", "clamp_relu": [..., 2, T, C] (lo, hi),
    "clamp", "relu": [..., n − 2, T, C], "sum": [..., T, C] (G), "code": G >> out_shift}.
    """
    torch_mode = not isinstance(counts, np.ndarray)
    if torch_mode:
        import torch

        dev = counts.device
        c = counts.to(torch.int64)
        q_cla, q_tla = (np.ascontiguousarray(q, dtype=np.int64) for q in (ng.q_cla, ng.q_tla))
        m_cla, m_tla = _torch_linear_maps(q_cla.tobytes(), q_cla.shape, q_tla.tobytes(), q_tla.shape, ng.C, ng.T,
                                          ng.mode, str(dev))

        def branch(m, shift):  # per-slot sums [..., T, C, T'] exact in float64 (< 2^53)
            # m: [T', T·C, C'] (source step first); one matrix product per source step t'
            T, C = sq.shape[-2:]
            src = sq.reshape(-1, T, C).to(torch.float64).permute(1, 2, 0)  # [T', C', B]
            slots = torch.matmul(m, src).reshape(T, T, C, -1).permute(3, 1, 2, 0)  # [B, T, C, T']
            sums = (slots.round().to(torch.int64) >> shift).sum(-1)
            return sums.reshape(*sq.shape[:-2], T, C)

        def const(a):
            return torch.from_numpy(np.asarray(a, dtype=np.int64)).to(dev)

        relu = lambda v: torch.clamp(v, min=0)  # noqa: E731
        stack = torch.stack
    else:
        c = np.asarray(counts).astype(np.int64)
        m_cla, m_tla = linear_maps(ng)

        def branch(m, shift):
            return (np.einsum("tcud,...ud->...tcu", m, sq) >> shift).sum(-1)

        def const(a):
            return np.asarray(a, dtype=np.int64)

        relu = lambda v: np.maximum(v, 0)  # noqa: E731
        stack = np.stack
    sq = c >> ng.squeeze_shift
    a = branch(m_cla, ng.a_shift)
    b = branch(m_tla, ng.b_shift)
    p = (a * b) >> ng.prod_shift
    k_top = int(ng.knots[-1])
    lo, hi = relu(p + k_top), relu(p - k_top)
    clamp = lo - hi
    r = relu(clamp[..., None, :, :] - const(ng.offsets).reshape(-1, 1, 1))
    slope = const(ng.slope)
    G = slope[0] * clamp + (slope[1:].reshape(-1, 1, 1) * r).sum(-3) + (1 << (ng.out_shift - 1))
    return {"squeeze": sq, "cla": a, "tla": b, "product": p, "clamp_relu": stack([lo, hi], -3), "clamp": clamp,
            "relu": r, "sum": G, "code": G >> ng.out_shift}


def gate_codes(counts, ng: NeurocoreGate):
    """Payload codes [..., T, C] in [0, 255] (gate ≈ code / 255), numpy or torch."""
    return stages(counts, ng)["code"]


def gate_value(counts, ng: NeurocoreGate) -> np.ndarray:
    """The gate in (0, 1) the chip computes, as float64 (numpy)."""
    return np.asarray(gate_codes(np.asarray(counts), ng), dtype=np.float64) * ng.payload_scale


# ----------------------------------------------------------------------------------------- timing
#: Lava step (after the squeezed spikes leave their layer, window step v_t) at which each stage holds row t:
#: squeeze 1 (+t), select 2 (+t'), product 3, clamp relus 4, clamp 5, knot relus 6, sum 7.
STAGE_STEP = {"squeeze": 1, "select": 2, "product": 3, "clamp_relu": 4, "clamp": 5, "relu": 6, "sum": 7}
SUM_STEP = STAGE_STEP["sum"]
def replay_delay(ng: NeurocoreGate, skew: int) -> tuple[int, np.ndarray]:
    """(D_x, ρ[T]): the delay of the gated spikes and of each gate row, for a squeeze source that leaves
    its layer ``skew`` steps before the gated spikes do (1 behind a max pool, else 0).

    The gate row t reaches the final product at ``Ls + SUM_STEP + 2 + v_t + ρ_t`` and spike step t at
    ``Lx + t + 1 + D_x`` (``Lx = Ls + skew``); both are equal by construction.
    """
    v = ng.valid_step()
    d_x = max(0, int((v - np.arange(ng.T)).max()) + SUM_STEP + 1 - skew)
    rho = skew + np.arange(ng.T) - v + d_x - SUM_STEP - 1
    if d_x > MAX_DELAY or rho.min() < 0 or rho.max() > MAX_DELAY:
        raise GatePlacementError(f"gate delays {d_x}, {rho.tolist()} outside Lava's [0, {MAX_DELAY}]")
    return d_x, rho


def latency_steps(ng_mode: str, T: int, skew: int) -> int:
    """Steps from a spike entering the gate to its gated payload leaving it (1 + D_x)."""
    v_minus_t = T - 1 if ng_mode == "window" else 0
    return 1 + max(0, v_minus_t + SUM_STEP + 1 - skew)


# ------------------------------------------------------------------------------------------ counting
def _pulse_parts(values: np.ndarray) -> int:
    """Synapses a constant injection takes: one per nonzero 8-bit part of each |value|."""
    mag = np.abs(np.asarray(values, dtype=np.int64))
    return int(np.count_nonzero(mag >> PULSE_SPLIT) + np.count_nonzero(mag & 255))


def structure(ng: NeurocoreGate, gated_positions: int) -> dict[str, dict[str, int]]:
    """Neurons and synapses of every stage of the sub-network (the clock's one neuron not included).

    Args:
        gated_positions: C·H'·W', the positions the gate scales.

    Returns {stage: {"neurons", "synapses"}}; a stage's synapses are those into its neurons.
    """
    C, rows, area = ng.C, ng.rows, ng.area
    m_cla, m_tla = linear_maps(ng)
    n_in = len(ng.offsets)
    k_top = int(ng.knots[-1])
    return {
        "squeeze": {"neurons": C, "synapses": C * area},
        "select": {"neurons": rows, "synapses": 2 * rows},  # fan-out + clock pulse
        "product": {"neurons": rows, "synapses": int(np.count_nonzero(m_cla) + np.count_nonzero(m_tla))},
        "clamp_relu": {"neurons": 2 * rows, "synapses": 2 * rows + 2 * rows * _pulse_parts([k_top])},
        "clamp": {"neurons": rows, "synapses": 2 * rows},
        "relu": {"neurons": n_in * rows, "synapses": n_in * rows + rows * _pulse_parts(ng.offsets)},
        "sum": {"neurons": rows, "synapses": rows * (1 + int(np.count_nonzero(ng.slope[1:])) + 1)},
        "replay": {"neurons": C, "synapses": rows},
        "out": {"neurons": gated_positions, "synapses": 2 * gated_positions},  # broadcast + held spike
    }


def events(ng: NeurocoreGate, counts: np.ndarray, x_events: np.ndarray, squeeze_events: np.ndarray,
           pixels: int) -> dict[str, np.ndarray]:
    """Synaptic events of the sub-network per sample, exactly as its processes send them.

    A graded neuron sends a message when its value is nonzero; every message, and every spike of the
    clock (once per window), crosses each synapse leaving its source.

    Args:
        counts: [N, T, C] the squeezed spike counts of each window.
        x_events: [N] spikes the gate scales (each crosses its one hold synapse).
        squeeze_events: [N] spikes squeezed (each crosses one squeeze synapse).
        pixels: H'·W', the gated positions per channel (the replay's broadcast fan-out).

    Returns {"graded": [N] events carrying a graded payload, "binary": [N] events of binary spikes,
    "messages": [N] graded messages the stages' neurons send (the gate's output not included)}.
    """
    s = stages(np.asarray(counts, dtype=np.int64), ng)
    rows, T = ng.rows, ng.T
    m_cla, m_tla = linear_maps(ng)
    out_degree = np.count_nonzero(m_cla, axis=(0, 1)) + np.count_nonzero(m_tla, axis=(0, 1))  # [T', C']

    def nz(a):
        a = np.asarray(a)
        return np.count_nonzero(a.reshape(a.shape[0], -1), axis=1).astype(np.int64)

    n_in = len(ng.offsets)
    sq, prod, lohi, clamp, total = (nz(s[k]) for k in ("squeeze", "product", "clamp_relu", "clamp", "sum"))
    sel = ((np.asarray(s["squeeze"]) != 0) * out_degree[None]).sum(axis=(1, 2))
    relu_used = nz(np.asarray(s["relu"])[:, np.flatnonzero(ng.slope[1:])])
    graded = sq * T + sel + 2 * prod + lohi + clamp * (n_in + 1) + relu_used + total + total * pixels
    pulses = rows + 2 * rows * _pulse_parts([int(ng.knots[-1])]) + rows * _pulse_parts(ng.offsets) + rows
    binary = np.asarray(squeeze_events, dtype=np.int64) + np.asarray(x_events, dtype=np.int64) + pulses
    messages = 2 * sq + prod + lohi + clamp + nz(s["relu"]) + 2 * total
    return {"graded": graded.astype(np.int64), "binary": binary.astype(np.int64), "messages": messages}

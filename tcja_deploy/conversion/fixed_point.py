"""Fixed-point semantics of the ``q_*`` nodes: the integer arithmetic of Lava's ``fixed_pt`` models.

These are slayer's quantized CUBA forward (docs/DESIGN.md §3) plus the limits slayer leaves out
(exact rules, with sources, in docs/FORMATS.md):

- input: payload = clip(round(x / scale), 0, 2^bits − 1) (``torch.round``: halves to even);
- synapse: ``a = Σ w·p`` over input payloads p (0/1 spikes or graded codes); a conv's sum wraps at
  24 bits (Lava ``PyConvModelFixed``), a dense sum does not;
- CUBA (Lava ``PyLifModelBitAcc``; NetX writes ``du = iDecay − 1``, Lava adds 1 back)::

      u ← wrap24( trunc(u·(4096 − i_decay) / 4096) + (a << 6) )
      v ← clip24( trunc(v·(4096 − v_decay) / 4096) + u + (bias << 6) )
      spike = v > vth_mant << 6;  v ← 0 where spike

- gate: the per-(t, c) spike counts of the squeezed spikes through the neuro-core stages
  (:func:`tcja_deploy.conversion.neurocore_gate.gate_codes`) or the host gate
  (:func:`tcja_deploy.conversion.gate_math.gate_fixed_torch`); payload = spike · code.

Payload tensors are integer-valued float64; synapse outputs are int64. Each sample starts from zero
state (the chip's neurons reset at every window of T steps).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from tcja_deploy.conversion import gate_math, neurocore_gate
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import loihi2 as L
from tcja_deploy.conversion.recurrence import cuba_recurrence

#: Integers below this are exact in float32 sums with a bit to spare (24-bit significand).
FLOAT32_EXACT = 1 << 23


def cuba_fixed(a: torch.Tensor, i_decay: int, v_decay: int, vth_mant: int,
               bias_mant: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Integer CUBA over a window: synaptic input a [T, N, ...] (int64, or a float tensor holding exact
    integers, as :func:`qconv` returns) → spikes [T, N, ...] (float32 0/1: exact, and half the bytes of the
    float64 payloads elsewhere).

    The arithmetic of :func:`cuba_fixed_reference` (Lava's ``PyLifModelBitAcc``), computed in place in
    float64, which holds every state exactly: |u|, |v| < 2²⁴ and a decay is a multiplication by
    ``keep / 4096`` (a binary fraction, so the product is exact) followed by ``trunc`` — or v in float32
    where that is exact too (no clip, and a decay that divides by a power of two). The 24-bit wrap
    of u and the clip of v are skipped only where a bound proves they cannot act: a truncating decay
    never grows |x|, so |u| ≤ 64·max|a| / (1 − keep_u/4096) and |v| ≤ (max|u| + max|bias|) /
    (1 − keep_v/4096). A current that never decays (``i_decay = 4096``) is computed for all steps at once
    and, when it cannot wrap, not stored at all (v adds 64·a directly); a voltage that keeps nothing
    (``v_decay = 4096``, the OR pools) is one comparison for all steps: v = 64·a + bias > threshold.
    """
    T = a.shape[0]
    dt = torch.float64
    keep_u = (L.DECAY_UNITY - int(i_decay)) / L.DECAY_UNITY
    keep_v = (L.DECAY_UNITY - int(v_decay)) / L.DECAY_UNITY
    threshold = float(int(vth_mant) << L.WEIGHT_EXP)
    out = torch.empty(a.shape, dtype=torch.float32, device=a.device)
    if a.numel() == 0:
        return out
    shape = (1, -1, *([1] * (a.dim() - 3))) if a.dim() >= 3 else (1, -1)
    bias = None if bias_mant is None else \
        (bias_mant.to(a.device, torch.float64) * L.WEIGHT_SCALE).reshape(shape)
    lo, hi = torch.aminmax(a)
    a_max = max(-float(lo), float(hi)) * L.WEIGHT_SCALE
    u_bound = a_max / (1.0 - keep_u) if keep_u < 1 else float("inf")
    wrap = u_bound >= L.STATE_WRAP
    if keep_u == 0.0 and not wrap:
        src, scale = a, float(L.WEIGHT_SCALE)  # u_t = 64·a_t exactly: v reads a itself
    else:
        src, scale = _currents(a, keep_u, wrap), 1.0  # u of all steps, [T, N, ...] float64
    u_max = min(u_bound, float(L.STATE_WRAP))
    b_max = 0.0 if bias is None else float(bias.abs().max())
    v_bound = (u_max + b_max) / (1.0 - keep_v) if keep_v < 1 else float("inf")
    clip = v_bound > L.STATE_MAX
    if keep_v == 0.0 and threshold < L.STATE_MAX:
        # v_t = clip(u_t + bias); clipping to ±STATE_MAX cannot move v across a threshold inside that range.
        # u_t + bias > threshold ⇔ u_t / scale > (threshold − bias) / scale, exact: both are multiples of 64.
        level = threshold / scale if bias is None else (threshold - bias) / scale
        return out.copy_(torch.gt(src, level))
    # float32 holds every v exactly when v stays below 2²⁴ (no clip: |v| ≤ STATE_MAX) and the decay is a
    # division by a power of two (v·2^−m is exact at any magnitude); otherwise float64 (exact below 2⁵³).
    halvings = _power_of_two_divisor(keep_v)
    vdt = torch.float32 if not clip and halvings is not None else dt
    v = torch.zeros(a.shape[1:], dtype=vdt, device=a.device)
    step_bias = None if bias is None else bias[0].to(vdt)
    for t in range(T):
        if halvings is not None and halvings > 1:
            v.div_(float(halvings), rounding_mode="trunc")
        elif halvings is None:
            v.mul_(keep_v).trunc_()
        v.add_(src[t], alpha=scale)  # exact in vdt: every partial sum is within the bound v_bound
        if step_bias is not None:
            v.add_(step_bias)
        if clip:
            v.clamp_(-L.STATE_MAX, L.STATE_MAX)
        torch.gt(v, threshold, out=out[t])
        v.addcmul_(v, out[t], value=-1.0)  # reset: v − v·1 = 0 where it fired, v − v·0 = v elsewhere (exact)
    return out


def _power_of_two_divisor(keep: float) -> Optional[int]:
    """2^m when ``keep`` = 2^−m (1 when nothing decays), else None."""
    if keep <= 0.0:
        return None
    inv = 1.0 / keep
    return int(inv) if inv == int(inv) and int(inv) & (int(inv) - 1) == 0 else None


def _currents(a: torch.Tensor, keep_u: float, wrap: bool) -> torch.Tensor:
    """u of every step, [T, N, ...] float64: u_t = wrap(trunc(u_{t−1}·keep_u) + 64·a_t), wrapping only when
    ``wrap`` (the caller's bound says it can act)."""
    drive = a.to(torch.float64, copy=True).mul_(L.WEIGHT_SCALE)  # copy: never scale the caller's sums
    if keep_u == 0.0:
        return _wrap_current_(drive) if wrap else drive
    u = torch.zeros_like(drive[0])
    for t in range(a.shape[0]):
        u.mul_(keep_u).trunc_().add_(drive[t])
        if wrap:
            _wrap_current_(u)
        drive[t].copy_(u)
    return drive


def _wrap_current_(u: torch.Tensor) -> torch.Tensor:
    """:func:`loihi2.wrap_current` in place on a float64 tensor of integers."""
    u.sub_((u > L.STATE_WRAP).to(u.dtype).mul_(2 * L.STATE_WRAP))
    u.add_((u <= -L.STATE_WRAP).to(u.dtype).mul_(2 * L.STATE_WRAP))
    return u


def cuba_fixed_reference(a: torch.Tensor, i_decay: int, v_decay: int, vth_mant: int,
                         bias_mant: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The definition :func:`cuba_fixed` computes: the shared CUBA recurrence with int64 states."""
    bias = 0 if bias_mant is None else \
        bias_mant.to(a.device).reshape(1, -1, *([1] * (a.dim() - 3))) << L.WEIGHT_EXP
    keep_u, keep_v = L.DECAY_UNITY - int(i_decay), L.DECAY_UNITY - int(v_decay)
    return cuba_recurrence(
        a, decay_u=lambda u: L.trunc_decay(u, keep_u), decay_v=lambda v: L.trunc_decay(v, keep_v),
        inject=lambda x: x << L.WEIGHT_EXP, bias=bias, threshold=int(vth_mant) << L.WEIGHT_EXP,
        wrap_u=L.wrap_current, clip_v=L.clip_voltage, out_dtype=torch.float64)


def _exact_dtype(weight: np.ndarray, p_max: float, device: torch.device) -> torch.dtype:
    """float32 on CPU when every partial sum Σ|w|·p stays below 2²³ (exact with a bit to spare), else
    float64 (exact below 2⁵³). GPUs always get float64: cuDNN's fast float32 algorithms (Winograd, FFT,
    TF32) are not exact on integers."""
    if device.type != "cpu":
        return torch.float64
    w = np.abs(np.asarray(weight, dtype=np.float64)).reshape(np.asarray(weight).shape[0], -1)
    return torch.float32 if float(w.sum(1).max()) * p_max < FLOAT32_EXACT else torch.float64


def depthwise_form(weight: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    """A grouped conv whose weights are diagonal across channels within each group ([C, C/groups, k, k], output
    channel o reading only input channel o: an OR pool of more than ``loihi2.LAVA_MAX_CONV_GROUPS`` channels,
    :func:`~tcja_deploy.conversion.passes.lava_groups`) as the depthwise conv it equals ([C, 1, k, k], C groups):
    the same sums with 1/(C/groups) of the work. Anything else is returned unchanged."""
    w = np.asarray(weight)
    if w.ndim != 4 or w.shape[1] < 2 or w.shape[1] * groups != w.shape[0]:
        return w, groups
    c, m = w.shape[0], w.shape[1]
    own = np.arange(c) % m  # the input channel of output o within its group
    diag = w[np.arange(c), own]  # [C, k, k]
    off = np.abs(w).sum() - np.abs(diag).sum()
    if off != 0:
        return w, groups
    return diag[:, None], c


#: A one-group conv with at most this many taps per output (C_in·k·k) runs as unfold + matmul: the input
#: layer of the DVS presets (2 polarities, 3×3: 18 taps) runs 1.6× faster that way than as oneDNN's conv.
MATMUL_CONV_TAPS = 32


def _conv_as_matmul(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """conv2d of x [B, C, H, W] with w [O, C, kh, kw] as a matrix product of w with x's patches: the same
    integer sums (exact in float32 below 2²³ in any order of summation)."""
    O, _, kh, kw = w.shape
    H = (x.shape[2] + 2 * padding - kh) // stride + 1
    W = (x.shape[3] + 2 * padding - kw) // stride + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # [B, C·kh·kw, H·W]
    return torch.matmul(w.reshape(O, -1), cols).reshape(x.shape[0], O, H, W)


def qconv(p: torch.Tensor, weight: np.ndarray, stride: int, padding: int, groups: int) -> torch.Tensor:
    """Integer conv of payloads [T, N, C, H, W] (integer-valued, ≥ 0) → sums wrapped at 24 bits, as exact
    integers in the float dtype they were summed in (float32 where every partial sum stays below 2²³, else
    float64; :func:`_exact_dtype`): :func:`cuba_fixed` reads them without a conversion pass.

    Diagonal one-group weights run as the depthwise conv they equal (:func:`depthwise_form`).
    """
    weight, groups = depthwise_form(weight, groups)
    p_max = float(p.max()) if p.numel() else 0.0
    dt = _exact_dtype(weight, p_max, p.device)
    w = torch.as_tensor(np.asarray(weight), dtype=dt, device=p.device)
    T, N = p.shape[:2]
    images = p.reshape(T * N, *p.shape[2:]).to(dt)
    if groups == 1 and w.shape[1] * w.shape[2] * w.shape[3] <= MATMUL_CONV_TAPS:
        y = _conv_as_matmul(images, w, stride, padding)
    else:
        y = F.conv2d(images, w, stride=stride, padding=padding, groups=groups)
    y = y.reshape(T, N, *y.shape[1:]).round_()
    if y.numel():
        lo, hi = torch.aminmax(y)
        if float(hi) >= L.STATE_WRAP or float(lo) < -L.STATE_WRAP:
            y = L.signed_clamp24(y.to(torch.int64)).to(dt)
    return y


def qlinear(p: torch.Tensor, weight: np.ndarray) -> torch.Tensor:
    """Integer dense sums of payloads [T, N, in] → int64 [T, N, out] (no wrap, as Lava's Dense)."""
    dt = _exact_dtype(weight, float(p.max()) if p.numel() else 0.0, p.device)
    w = torch.as_tensor(np.asarray(weight), dtype=dt, device=p.device)
    return (p.to(dt) @ w.T).round().to(torch.int64)


def input_payload(x: torch.Tensor, node: g.QInput) -> torch.Tensor:
    """Input values → payload codes: clip(round(x / scale), 0, 2^bits − 1); binary when bits = 0."""
    top = 1 if node.payload_bits == 0 else (1 << node.payload_bits) - 1
    return torch.clamp(torch.round(x.to(torch.float64) / node.scale), 0, top)


def spike_counts(s: torch.Tensor) -> torch.Tensor:
    """[T, N, C, H, W] spikes → [N, T, C] counts summed over H×W."""
    return s.sum(dim=(3, 4)).permute(1, 0, 2)


def gate_fixed(x: torch.Tensor, s: torch.Tensor, node: g.QGate) -> torch.Tensor:
    """Gated payloads [T, N, C, H', W']: binary x times the code of the gate computed from s's counts
    (neuro-core stages or the host gate, by the node's ``placement``)."""
    if node.placement == "neurocore":
        codes = neurocore_gate.gate_codes(spike_counts(s).to(torch.int64), neurocore_gate.NeurocoreGate.from_arrays(
            node.params))
    else:
        codes = gate_math.gate_fixed_torch(spike_counts(s), gate_math.QuantizedGate.from_arrays(node.params))
    return x * codes.permute(1, 0, 2).to(torch.float64)[..., None, None]


def qcuba(node: g.QCubaLIF, a: torch.Tensor) -> torch.Tensor:
    """A ``q_cuba_lif`` node on synaptic sums a [T, N, ...] (int64)."""
    bias = None if node.bias_mant is None else torch.as_tensor(np.asarray(node.bias_mant), dtype=torch.int64)
    return cuba_fixed(a, node.i_decay, node.v_decay, node.vth_mant, bias)

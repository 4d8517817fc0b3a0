"""Leaky integrate-and-fire neurons over a time window, on Norse.

The neuron is Norse's current-based LIF (``lif_feed_forward_step``), which is Loihi's CUBA neuron
(see ``docs/DESIGN.md`` §3): with time step ``dt`` = 1,

    i ← i + x;  v ← v + (i − v)/τ_mem;  i ← i·(1 − 1/τ_syn);  spike if v > v_th;  v ← 0 on spike.

Time constants are in time steps. τ_syn = 1 clears the current every step, which gives the reference
code's LIF (SpikingJelly ``LIFNode(tau=2)``, decay_input, hard reset to 0).

Two implementations of the same math:

- ``"fused"`` (default): :func:`lif_window`, one autograd node for the whole window. The forward loop
  does Norse's float operations in Norse's order (spikes are bit-identical); the backward is the
  hand-derived adjoint of Norse's step, surrogate and reset gradient included (equal to autograd's
  to float rounding, ≈1e-7). It saves one tensor (the pre-reset voltage) instead of ~10 per step and
  avoids the O(T²) gradient accumulation of indexing ``x[t]`` in a Python loop.
- ``"norse"``: ``norse.torch.LIF`` itself (also used for threshold methods the fused path lacks).

See ``bench/NOTES.md`` for the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch
from norse.torch import LIF as NorseLIF
from norse.torch import LIFParameters
from torch import Tensor, nn


@dataclass(frozen=True)
class LIFConfig:
    """LIF parameters; times in time steps, voltages in units of the threshold scale."""

    tau_mem: float = 2.0
    tau_syn: float = 1.0
    v_th: float = 1.0
    surrogate: str = "super"  # a Norse threshold method (super, tanh, triangle, circ, heavi_erfc) or atan,
    #                           piecewise_quadratic (SpikingJelly's), rectangle (FSVAE's; fused LIF only)
    alpha: float = 10.0  # surrogate sharpness (Norse's alpha; Norse's "super" ignores it)
    detach_reset: bool = False  # no gradient through the reset (SpikingJelly detach_reset=True; fused LIF only)

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


FUSED_SURROGATES = ("super", "tanh", "triangle", "circ", "heavi_erfc", "atan", "piecewise_quadratic", "rectangle")
#: Surrogates Norse does not have (SpikingJelly's, as the TCJA reference trains with them; the rectangle of
#: FSVAE, Kamata et al. 2022, ``snn_layers.SpikeAct``): fused LIF only.
FUSED_ONLY_SURROGATES = ("atan", "piecewise_quadratic", "rectangle")


@dataclass(frozen=True)
class _StepConstants:
    """Norse's per-step scalars, computed as Norse computes them: in its 0-d parameter tensors' dtype.

    a = dt·τ_mem⁻¹, nb = −dt·τ_syn⁻¹, plus v_leak, v_th, v_reset and the surrogate's alpha (float32 for
    :class:`LIFConfig`; an op with a float32 tensor rounds them to float32 as it does Norse's tensors).
    """

    a: float
    nb: float
    v_leak: float
    v_th: float
    v_reset: float
    alpha: float

    @classmethod
    def of(cls, p: LIFParameters, dt: float) -> "_StepConstants":
        f = lambda t: float(torch.as_tensor(t))  # noqa: E731
        return cls(a=f(dt * torch.as_tensor(p.tau_mem_inv)), nb=f(-dt * torch.as_tensor(p.tau_syn_inv)),
                   v_leak=f(p.v_leak), v_th=f(p.v_th), v_reset=f(p.v_reset), alpha=f(p.alpha))


@torch.jit.script
def _lif_forward_loop(x: Tensor, a: float, nb: float, v_leak: float, v_th: float,
                      v_reset: float) -> Tuple[Tensor, Tensor]:
    """(spikes as bool [T, ...], pre-reset voltages v_d [T, ...]) of Norse's LIF from the zero state.

    Per step, Norse's ``lif_feed_forward_step`` computes (float ops in this order):
        i_n = i + x;  v_d = v + a·((v_leak − v) + i_n);  i = i_n + nb·i_n;
        z = (v_d − v_th > 0);  v = (1 − z)·v_d + z·v_reset.
    This loop gives exactly the same values for finite inputs (up to the sign of zeros, which no
    later value or spike sees): with τ_syn = 1 (nb = −1) the current is exactly 0 after each step,
    so i_n = x; (0 − v) + i_n = i_n − v; v_d − v_th > 0 ⟺ v_d > v_th (IEEE subtraction with
    subnormals is 0 only for equal operands); and the reset is a select.
    """
    vd = torch.empty_like(x)
    z = torch.empty_like(x, dtype=torch.bool)
    v = torch.zeros_like(x[0])
    i = torch.zeros_like(x[0])
    carry = nb != -1.0
    for t in range(x.shape[0]):
        if carry:
            i_n = i + x[t]
            i = i_n + nb * i_n
        else:
            i_n = x[t]
        if v_leak == 0.0:
            d = i_n - v
        else:
            d = (v_leak - v) + i_n
        d.mul_(a)
        out = vd[t]
        torch.add(v, d, out=out)
        spike = z[t]
        torch.gt(out, v_th, out=spike)
        v = torch.where(spike, v_reset, out)
    return z, vd


@torch.jit.script
def _surrogate_derivative(u: Tensor, method: str, alpha: float) -> Tensor:
    """d spike / d u of Norse's threshold ``method`` at u = v_d − v_th (its backward for dy = 1); new tensor."""
    if method == "super":  # norse SuperSpike: dy / (|u| + 1)²  (Norse does not use alpha here)
        s = u.abs().add_(1.0)
        return s.mul_(s).reciprocal_()
    if method == "tanh":  # HeaviTanh: 1 − tanh(αu)²
        t = (u * alpha).tanh_()
        return torch.rsub(t.mul_(t), 1.0)
    if method == "triangle":  # Triangle: α·relu(1 − |u|)
        return torch.rsub(u.abs(), 1.0).relu_().mul_(alpha)
    if method == "circ":  # HeaviCirc: (−u²/(2 r^1.5) + 1/(2 √r))·2α with r = α² + u²
        u2 = u * u
        r = u2 + alpha * alpha
        return (-(u2 / (2 * r.pow(1.5))) + 1 / (2 * r.sqrt())) * 2 * alpha
    if method == "heavi_erfc":  # HeaviErfc: 2·exp(−(αu)²)/√π
        e = u * alpha
        return torch.exp(-(e * e)).mul_(2.0 / math.sqrt(math.pi))
    if method == "atan":  # SpikingJelly ATan: (α/2) / (1 + (π/2·α·u)²)
        e = u * (math.pi / 2 * alpha)
        return e.mul_(e).add_(1.0).reciprocal_().mul_(alpha / 2)
    if method == "piecewise_quadratic":  # SpikingJelly PiecewiseQuadratic: α − α²|u| for |u| ≤ 1/α, else 0
        a = u.abs()
        return torch.where(a > 1.0 / alpha, torch.zeros_like(a), alpha - alpha * alpha * a)
    if method == "rectangle":  # unit-area box: α for |u| < 1/(2α), else 0 (FSVAE's SpikeAct)
        return (u.abs() < 0.5 / alpha).to(u.dtype).mul_(alpha)
    raise ValueError("no fused surrogate for this threshold method")


@torch.jit.script
def _lif_backward(grad: Tensor, vd: Tensor, a: float, nb: float, v_th: float, v_reset: float,
                  method: str, alpha: float, chunk: int, detach_reset: bool) -> Tensor:
    """dL/dx [T, ...] from dL/dspikes and the saved pre-reset voltages, backwards in time.

    Adjoint of Norse's step (g = dL/d·, z = v_d > v_th, s = surrogate derivative at v_d − v_th):
        g_v = (1 − a)·g_vd[t+1];  g_z = g_out + g_v·(v_reset − v_d);  g_vd = g_v·(1 − z) + g_z·s;
        g_i_n = a·g_vd + (1 + nb)·g_i_n[t+1];  g_x = g_i_n.
    Rewritten as g_vd[t] = h[t] + (1 − a)·k[t]·g_vd[t+1] with h = g_out·s and
    k = (1 − z) + (v_reset − v_d)·s. With ``detach_reset`` the reset's spike is a constant for the
    gradient (SpikingJelly's detach_reset): the g_v·(v_reset − v_d) term drops and k = 1 − z.
    h and k are computed ``chunk`` steps at a time (so the temporaries stay in cache), the recurrence
    one step at a time, in place in the result.
    """
    T = vd.shape[0]
    gx = torch.empty_like(vd)
    g_vd_next = torch.zeros_like(vd[0])
    g_in_next = torch.zeros_like(vd[0])
    carry = nb != -1.0
    t1 = T
    while t1 > 0:
        t0 = max(0, t1 - chunk)
        n = t1 - t0
        v = vd[t0:t1]
        u = v - v_th
        s = _surrogate_derivative(u, method, alpha)
        if detach_reset:
            k = u.le(0.0).to(v.dtype)  # 1 − z
        else:
            k = torch.rsub(v, v_reset).mul_(s)
            k.add_(u.le_(0.0))  # u becomes 1 − z
        h = gx[t0:t1]
        torch.mul(s, grad[t0:t1], out=h)
        h[n - 1].addcmul_(g_vd_next, k[n - 1], value=1.0 - a)
        for t in range(n - 2, -1, -1):
            h[t].addcmul_(h[t + 1], k[t], value=1.0 - a)
        g_vd_next = h[0].clone()
        h.mul_(a)
        if carry:
            h[n - 1].add_(g_in_next, alpha=1.0 + nb)
            for t in range(n - 2, -1, -1):
                h[t].add_(h[t + 1], alpha=1.0 + nb)
            g_in_next = h[0]
        t1 = t0
    return gx


def surrogate_derivative(u: Tensor, method: str, alpha: float) -> Tensor:
    """d spike / d u of the surrogate ``method`` (one of :data:`FUSED_SURROGATES`) at u."""
    if method not in FUSED_SURROGATES:
        raise ValueError(f"no fused surrogate for {method!r}; fused ones: {', '.join(FUSED_SURROGATES)}")
    return _surrogate_derivative(u, method, float(alpha))


CHUNK_ELEMENTS = 1 << 18  # backward works on ~256k elements (1 MiB of float32) at a time


class _LIFWindow(torch.autograd.Function):
    """[T, ...] input current → [T, ...] spikes; backward = adjoint of Norse's step (BPTT)."""

    @staticmethod
    def forward(ctx, x: Tensor, c: _StepConstants, method: str, detach_reset: bool) -> Tensor:  # type: ignore[override]
        z, vd = _lif_forward_loop(x, c.a, c.nb, c.v_leak, c.v_th, c.v_reset)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(vd)
            ctx.c, ctx.method, ctx.detach_reset = c, method, detach_reset
        return z.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        (vd,) = ctx.saved_tensors
        c: _StepConstants = ctx.c
        chunk = max(1, CHUNK_ELEMENTS // max(1, vd[0].numel()))
        grad_x = _lif_backward(grad_spikes, vd, c.a, c.nb, c.v_th, c.v_reset, ctx.method, c.alpha, chunk,
                               ctx.detach_reset)
        return grad_x, None, None, None


def lif_window(x: Tensor, p: LIFParameters, dt: float = 1.0, detach_reset: bool = False) -> Tensor:
    """Spikes [T, ...] of Norse's LIF over a window of input currents [T, ...], starting from rest.

    Same spikes as ``norse.torch.LIF(p, dt=dt)(x)[0]`` and the same gradients (to float rounding).
    ``p.v_leak`` must be 0 as in our models' initial state (v starts at v_leak in Norse); computes in
    ``x``'s dtype promoted with float32, as Norse's float32 state does.
    """
    if p.method not in FUSED_SURROGATES:
        raise ValueError(f"no fused LIF for threshold method {p.method!r}; fused ones: {', '.join(FUSED_SURROGATES)}")
    c = _StepConstants.of(p, dt)
    if c.v_leak != 0.0:
        raise ValueError("lif_window starts from v = 0, which is Norse's rest state only when v_leak = 0")
    return _apply_fused(x, c, p.method, detach_reset)


@torch.compiler.disable
def _apply_fused(x: Tensor, c: _StepConstants, method: str, detach_reset: bool = False) -> Tensor:
    """The autograd node (opaque to torch.compile, which cannot trace the TorchScript loops: a graph break)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return _LIFWindow.apply(x, c, method, detach_reset)


class LIFSequence(nn.Module):
    """Norse LIF over a window: [T, N, ...] input current → [T, N, ...] spikes in {0, 1}.

    State starts at zero for every call (each sample is an independent window).

    Args:
        config: neuron parameters.
        implementation: ``"fused"`` (:func:`lif_window`, default; falls back to Norse for threshold
            methods it lacks) or ``"norse"`` (``norse.torch.LIF``). Same spikes and gradients.
    """

    def __init__(self, config: LIFConfig = LIFConfig(), implementation: str = "fused"):
        super().__init__()
        if implementation not in ("fused", "norse"):
            raise ValueError(f"unknown LIF implementation {implementation!r}; choose fused or norse")
        if implementation == "norse" and (config.surrogate in FUSED_ONLY_SURROGATES or config.detach_reset):
            raise ValueError(f"surrogate {config.surrogate!r} / detach_reset={config.detach_reset} need the fused "
                             f"LIF (Norse has neither)")
        self.config = config
        self.implementation = implementation
        self.lif = NorseLIF(p=config.norse_parameters(), dt=1.0)
        self._fused = config.surrogate in FUSED_SURROGATES
        self._constants = _StepConstants.of(self.lif.p, self.lif.dt) if self._fused else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.implementation == "fused" and self._fused:
            return _apply_fused(x, self._constants, self.config.surrogate, self.config.detach_reset)
        spikes, _ = self.lif(x)
        return spikes

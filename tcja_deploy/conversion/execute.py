"""What every graph node computes, as small pure torch functions over a window.

Tensors are ``[T, N, *shape]``: T time steps, N samples. Float nodes compute in the dtype of their
input (float64 in the pass tests, float32 for the ONNX module); fixed-point nodes (``q_*``) run the
bit-exact integer semantics of :mod:`tcja_deploy.conversion.fixed_point`. :data:`SEMANTICS` is the one
table from node type to what it computes. :func:`run_graph` runs a whole graph; :class:`GraphModule`
wraps a float graph as a traceable ``nn.Module`` (the ONNX export).
"""

from __future__ import annotations

import functools

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tcja_deploy.conversion import fixed_point as Q
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.conversion.recurrence import cuba_recurrence
from tcja_deploy.conversion.transposed import conv_transpose_window, qconv_transpose
from tcja_deploy.models.tcja import squeeze_spikes, tcja_gate

__all__ = ["ConversionError", "SEMANTICS", "run_node", "run_graph", "infer_shapes", "input_shapes", "GraphModule",
           "predictions", "scores_of_graph", "auto_batch_size", "bytes_per_sample", "reuse_freed_memory"]


# ------------------------------------------------------------------------------------ per-step ops
def per_step(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a batch function to every step of [T, N, ...]."""
    T, N = x.shape[:2]
    y = fn(x.reshape(T * N, *x.shape[2:]))
    return y.reshape(T, N, *y.shape[1:])


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: int, padding: int,
           groups: int = 1) -> torch.Tensor:
    """[T, N, Ci, H, W] → [T, N, Co, H', W']."""
    return per_step(lambda z: F.conv2d(z, weight, bias, stride=stride, padding=padding, groups=groups), x)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """[T, N, in] → [T, N, out]."""
    return F.linear(x, weight, bias)


def batchnorm(x: torch.Tensor, mean, var, weight, bias, eps: float) -> torch.Tensor:
    """Inference BatchNorm over the channel dim (2) of [T, N, C, ...], as torch's eval-mode BatchNorm."""
    return per_step(lambda z: F.batch_norm(z, mean, var, weight, bias, False, 0.0, eps), x)


def lif(x: torch.Tensor, tau_mem: float, tau_syn: float, v_th: float) -> torch.Tensor:
    """Norse ``lif_feed_forward_step`` over the window (v_leak = v_reset = 0, dt = 1), same arithmetic order.

    i ← i + x; v ← v + (1/τ_mem)·((0 − v) + i); i ← i − (1/τ_syn)·i; z = v > v_th; v ← (1 − z)·v.
    """
    tm = torch.tensor(1.0 / tau_mem, dtype=x.dtype)
    ts = torch.tensor(1.0 / tau_syn, dtype=x.dtype)
    th = torch.tensor(v_th, dtype=x.dtype)
    i = torch.zeros_like(x[0])
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        i_jump = i + x[t]
        v_decayed = v + 1.0 * tm * ((0.0 - v) + i_jump)
        i = i_jump + (-1.0 * ts * i_jump)
        z = (v_decayed - th > 0).to(x.dtype)
        v = (1 - z) * v_decayed + z * 0.0
        out.append(z)
    return torch.stack(out)


def cuba(x: torch.Tensor, du: float, dv: float, threshold: float, bias: Optional[torch.Tensor] = None,
         on_current=None) -> torch.Tensor:
    """Loihi CUBA in floats: u ← (1−du)·u + x; v ← (1−dv)·v + u + bias; z = v > θ; v ← 0 where z.

    ``on_current(u)`` sees the current of every step (calibration)."""
    b = 0.0 if bias is None else _channel_view(bias.to(x.dtype), x.dim() - 1)
    return cuba_recurrence(x, decay_u=lambda u: (1 - du) * u, decay_v=lambda v: (1 - dv) * v, threshold=threshold,
                           bias=b, on_current=on_current)


def _channel_view(c: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast over [N, C, ...] of ``ndim`` dims."""
    return c.reshape(1, -1, *([1] * (ndim - 2)))


def maxpool(x: torch.Tensor, k: int) -> torch.Tensor:
    return per_step(lambda z: F.max_pool2d(z, k), x)


def avgpool(x: torch.Tensor, k: int) -> torch.Tensor:
    return per_step(lambda z: F.avg_pool2d(z, k), x)


def flatten(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2)


def tcja(x: torch.Tensor, w_tla: torch.Tensor, w_cla: torch.Tensor, causal: bool, gate_function: str = "sigmoid"
         ) -> torch.Tensor:
    """TCJA on [T, N, C, H, W] spikes (models/tcja.py): x · sigmoid(CLA ⊙ TLA) (or the chip's pwl sigmoid)."""
    gate = tcja_gate(squeeze_spikes(x), w_tla.to(x.dtype), w_cla.to(x.dtype), causal, gate_function)
    return x * gate[..., None, None]


def gate(x: torch.Tensor, s: torch.Tensor, w_tla: torch.Tensor, w_cla: torch.Tensor, causal: bool,
         gate_function: str = "sigmoid") -> torch.Tensor:
    """The gate node: x [T, N, C, H', W'] scaled by the TCJA gate of the squeezed spikes s [T, N, C, H, W]."""
    gv = tcja_gate(squeeze_spikes(s), w_tla.to(x.dtype), w_cla.to(x.dtype), causal, gate_function)
    return x * gv[..., None, None]


def readout(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], input_scale: float = 1.0
            ) -> torch.Tensor:
    """The host readout: [T, N, in] → [T, N, K] = W·(input_scale·x) + b, in x's dtype.

    Eagerly it computes one sample at a time ([T, in] @ [in, K]), so a sample's result does not depend on
    the batch it ran in (the emulator and the Lava runner get bit-identical scores); traced (ONNX), one matmul.
    """
    if input_scale != 1.0:
        x = x * input_scale
    if torch.jit.is_tracing() or x.shape[1] == 0:
        return F.linear(x, weight, bias)
    wt = weight.T.contiguous()
    ys = [x[:, n].contiguous() @ wt for n in range(x.shape[1])]
    y = torch.stack(ys, 1)
    return y if bias is None else y + bias


def image_readout(x: torch.Tensor, node: g.ImageReadout) -> torch.Tensor:
    """The VAE's host image readout: [T, N, Ci, H, W] payloads → images [N, Co, H', W'] in (−1, 1), in x's dtype:
    tanh(Σ_t decay^(T−1−t)·convT(input_scale·x_t) + bias·Σ_t decay^(T−1−t)). The transposed conv is linear, so it
    runs once on the time-weighted sum of the inputs (the same value as per step, up to float rounding)."""
    T = x.shape[0]
    w = decay_weights(T, node.decay, x)
    summed = torch.einsum("t,t...->...", w, x) * float(node.input_scale)  # [N, Ci, H, W]
    y = conv_transpose_window(summed[None], _tensor(node.weight, x), None, node.stride, node.padding,
                              node.output_padding)[0]
    if node.bias is not None:
        y = y + _tensor(node.bias, x).reshape(1, -1, 1, 1) * w.sum()
    return torch.tanh(y)


def decay_weights(T: int, decay: float, like: torch.Tensor) -> torch.Tensor:
    """[T] weights decay^(T−1−t) of the membrane readout, in ``like``'s dtype and device."""
    return torch.tensor(float(decay), dtype=like.dtype, device=like.device) ** torch.arange(
        T - 1, -1, -1, dtype=like.dtype, device=like.device)


def vote(x: torch.Tensor, voters: int) -> torch.Tensor:
    """[T, N, K·voters] → scores [N, K]: per-step group mean, then mean over time (as TCJASNN)."""
    return x.reshape(*x.shape[:-1], -1, voters).mean(-1).mean(0)


def predictions(scores) -> np.ndarray:
    """Predicted classes [N] of scores [N, K]: argmax of the scores rounded to 1e-6. Scores are spike rates
    (multiples of 1/(T·voters)), so classes with equal spike counts tie exactly and the first one wins,
    whatever the float rounding of the means (which differs between torch, onnxruntime and numpy)."""
    return np.round(np.asarray(scores, dtype=np.float64), 6).argmax(1)


# ---------------------------------------------------------------------------------------- shapes
def infer_shapes(graph: g.Graph) -> dict[str, tuple[int, ...]]:
    """Per-step output shape of every node (``vote``: (K,)), from the input node's shape; a node that cannot
    take its input's shape, or an unknown node, raises :class:`ConversionError` naming it."""
    shapes: dict[str, tuple[int, ...]] = {}
    shape: tuple[int, ...] = ()
    for i, (name, node) in enumerate(graph.items()):
        g.check_node_type(node)
        if i == 0 and node.category != "input":
            raise ConversionError(f"node {name!r} ({node.kind}): a graph starts with an input node")
        try:
            shape = node.out_shape(shape)
        except ConversionError as e:
            raise ConversionError(f"node {name!r}: {e}") from None
        shapes[name] = shape
    return shapes


def input_shapes(graph: g.Graph) -> dict[str, tuple[int, ...]]:
    """Per-step input shape of every node."""
    out, prev = {}, ()
    shapes = infer_shapes(graph)
    for name in graph.names:
        out[name] = prev
        prev = shapes[name]
    return out


# ------------------------------------------------------------------------------------------- run
def _tensor(a, like: torch.Tensor) -> Optional[torch.Tensor]:
    """A node's numpy array as a tensor of ``like``'s dtype and device (None stays None)."""
    return None if a is None else torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)


def _gate_source(node, x: torch.Tensor, outputs: Optional[dict]) -> torch.Tensor:
    """The spikes a gate squeezes: its input, or the output of node ``squeeze_from``."""
    return x if node.squeeze_from is None else outputs[node.squeeze_from]


def _float_gate(node: g.Gate, x: torch.Tensor, outputs: Optional[dict]) -> torch.Tensor:
    return gate(x, _gate_source(node, x, outputs), _tensor(node.w_tla, x), _tensor(node.w_cla, x), node.causal,
                node.gate_function)


#: What every node type computes: ``fn(node, x, outputs) → y`` on [T, N, ...] (``outputs``: earlier nodes'
#: outputs by name, for a gate's ``squeeze_from``). The one table of node semantics; a node type without
#: an entry cannot run.
SEMANTICS: dict[type, Callable] = {
    g.Input: lambda n, x, o: x,
    g.Dropout: lambda n, x, o: x,
    g.Conv2d: lambda n, x, o: conv2d(x, _tensor(n.weight, x), _tensor(n.bias, x), n.stride, n.padding, n.groups),
    g.Linear: lambda n, x, o: linear(x, _tensor(n.weight, x), _tensor(n.bias, x)),
    g.BatchNorm: lambda n, x, o: batchnorm(x, _tensor(n.mean, x), _tensor(n.var, x), _tensor(n.weight, x),
                                           _tensor(n.bias, x), n.eps),
    g.LIF: lambda n, x, o: lif(x, n.tau_mem, n.tau_syn, n.v_th),
    g.CubaLIF: lambda n, x, o: cuba(x, n.du, n.dv, n.threshold, _tensor(n.bias, x)),
    g.MaxPool: lambda n, x, o: maxpool(x, n.kernel),
    g.AvgPool: lambda n, x, o: avgpool(x, n.kernel),
    g.Flatten: lambda n, x, o: flatten(x),
    g.TCJA: lambda n, x, o: tcja(x, _tensor(n.w_tla, x), _tensor(n.w_cla, x), n.causal, n.gate_function),
    g.Gate: _float_gate,
    g.Readout: lambda n, x, o: readout(x, _tensor(n.weight, x), _tensor(n.bias, x), float(n.input_scale)),
    g.Vote: lambda n, x, o: vote(x, n.voters),
    g.QInput: lambda n, x, o: Q.input_payload(x, n),
    g.QConv2d: lambda n, x, o: Q.qconv(x, n.weight, n.stride, n.padding, n.groups),
    g.QLinear: lambda n, x, o: Q.qlinear(x, n.weight),
    g.QCubaLIF: lambda n, x, o: Q.qcuba(n, x),
    g.QGate: lambda n, x, o: Q.gate_fixed(x, _gate_source(n, x, o), n),
    g.ConvTranspose2d: lambda n, x, o: conv_transpose_window(x, _tensor(n.weight, x), _tensor(n.bias, x), n.stride,
                                                             n.padding, n.output_padding),
    g.Unflatten: lambda n, x, o: x.reshape(*x.shape[:2], *n.shape),
    g.ImageReadout: lambda n, x, o: image_readout(x, n),
    g.QConvTranspose2d: lambda n, x, o: qconv_transpose(x, n.weight, n.stride, n.padding, n.output_padding),
}


def run_node(node: g.Node, x: torch.Tensor, outputs: Optional[dict] = None) -> torch.Tensor:
    """One node on [T, N, ...]; ``outputs`` holds the outputs of earlier nodes by name (a gate's
    ``squeeze_from``). Fixed-point nodes take integer-valued payloads (float64) or int64 sums."""
    fn = SEMANTICS.get(type(node))
    if fn is None:
        raise ConversionError(f"no semantics for node type {getattr(node, 'kind', type(node).__name__)!r}")
    return fn(node, x, outputs)


def run_graph(graph: g.Graph, x: torch.Tensor, record: bool = False):
    """Run ``graph`` on ``x`` [T, N, C, H, W]; returns scores [N, K] (and {name: output} if ``record``)."""
    outputs = {}
    keep = {n.squeeze_from for n in graph.nodes.values() if getattr(n, "squeeze_from", None)}
    quantized = graph.quantized
    with torch.no_grad():
        for name, node in graph.items():
            if quantized and x.dtype == torch.float32 and not node.fixed_point:
                x = x.double()  # fixed-point spikes are float32 0/1; host nodes compute in float64
            x = run_node(node, x, outputs)
            if record or name in keep:
                outputs[name] = x
    return (x, outputs) if record else x


class GraphModule(nn.Module):
    """A float graph as an ``nn.Module``: [T, N, C, H, W] → scores [N, K]; traceable for ONNX.

    The node arrays become constants of the trace; the time loops unroll over the graph's T.
    """

    def __init__(self, graph: g.Graph):
        super().__init__()
        self.graph = graph
        for name, node in graph.items():
            if node.fixed_point:
                raise ConversionError(f"node {name!r} ({node.kind}) is fixed point; GraphModule runs float graphs")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {}
        for name, node in self.graph.items():
            x = run_node(node, x, outputs)
            outputs[name] = x
        return x


#: Memory the emulator's batches may take by default (bytes): the batch size adapts to the network.
EMULATOR_MEMORY_BUDGET = 2 << 30
MAX_BATCH = 64


def bytes_per_sample(graph: g.Graph) -> int:
    """An upper estimate of the memory one sample takes while ``graph`` runs: every node's [T, ...] output
    in float64, plus a neuro-core gate's per-source-step partial sums ([T, C, T] per branch, int64)."""
    T = int(graph.meta.get("T", 1))
    total = 0
    for name, shape in infer_shapes(graph).items():
        total += T * int(np.prod(shape)) * 8
        node = graph.nodes[name]
        if getattr(node, "placement", None) == "neurocore":
            total += 4 * T * int(node.channels) * T * 8
    return 2 * total  # a node's input and output are alive together


#: glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.lru_cache(maxsize=None)
def reuse_freed_memory() -> bool:
    """Let glibc serve large tensors from memory this process freed before instead of fresh pages.

    By default glibc maps every allocation above its mmap threshold (≤ 32 MB) freshly and returns it on free, so
    each of the emulator's 100–300 MB tensors at paper size is zeroed page by page on first touch: measured on
    dvs128_gesture (2 threads) 1.2–1.4 samples/s with the default, 2.1–2.6 with freed memory kept (bench/NOTES.md).
    The process keeps its peak heap (bounded by the emulator's memory budget). Returns whether it took effect
    (False off glibc); called once per process by the emulator.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        big = ctypes.c_int(2**31 - 1)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, big)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, big))
    except (OSError, AttributeError):
        return False


def auto_batch_size(graph: g.Graph, budget_bytes: int = EMULATOR_MEMORY_BUDGET, cap: int = MAX_BATCH) -> int:
    """Samples per batch so that a batch stays within ``budget_bytes`` (at least 1, at most ``cap``)."""
    return int(max(1, min(cap, budget_bytes // max(1, bytes_per_sample(graph)))))


def scores_of_graph(graph: g.Graph, x: torch.Tensor, batch_size: Optional[int] = None,
                    device: str | torch.device = "cpu") -> np.ndarray:
    """Class scores [N, K] of ``graph`` on x [T, N, C, H, W], in batches of ``batch_size`` samples (None: as many
    as fit :data:`EMULATOR_MEMORY_BUDGET`, :func:`auto_batch_size`), in float64 on ``device`` (fixed-point
    graphs are integer-exact on any device)."""
    batch_size = batch_size or auto_batch_size(graph)
    reuse_freed_memory()
    out = []
    for start in range(0, x.shape[1], batch_size):
        xb = x[:, start:start + batch_size].to(device=device, dtype=torch.float64)
        out.append(run_graph(graph, xb).cpu().numpy())
    if not out:
        return np.zeros((0, int(graph.meta.get("num_classes", 0))))
    return np.concatenate(out, 0)

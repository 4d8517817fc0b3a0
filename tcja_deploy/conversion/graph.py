"""The conversion graph: one frozen dataclass per primitive, a chain of named nodes, and its JSON dump.

Modelled on NIR (``nir/ir``): nodes are plain dataclasses holding numpy arrays, edges are pairs of
node names, and ``graph.json`` is a faithful dump that a reader understands without our code.
Every node maps a window of per-step tensors ``[T, N, *shape]`` to ``[T, N, *shape']``; the last node
(``Vote``) maps to class scores [N, K].

Each node type carries its own facts: its JSON ``kind``, its ``category`` (what role it plays in a
network: input, synapse, neuron, gate, …), the payload bits of the signal it emits, its per-step output
shape from its input shape (:meth:`out_shape`), and checks of its fields (``__post_init__``, raising
:class:`ConversionError` naming the node type and field). Their float and fixed-point semantics are
registered in one table, :data:`tcja_deploy.conversion.execute.SEMANTICS`. The exact semantics of
every type, with rounding, wraps and clips, are in ``docs/FORMATS.md``.

``graph.json`` schema (``format: "tcja_deploy.graph/1"``)::

    {"format": "tcja_deploy.graph/1",
     "nodes": [{"name": str, "type": str, <fields of that type>}, ...],   # execution order
     "edges": [[src_name, dst_name], ...],      # the chain input → vote, plus squeeze_from → gate
     "meta": {"T": int, "num_classes": int, "preset": str, "passes": [str, ...], ...},
     ...}                                                                  # deploy adds segments, gates

Arrays are objects ``{"dtype": "float32" | "int32" | ..., "shape": [..], "data": [flat, row-major]}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterable, Optional, Union

import numpy as np

from tcja_deploy.conversion import loihi2 as L
from tcja_deploy.conversion.neurocore_gate import PARAM_KEYS as NC_PARAM_KEYS

FORMAT = "tcja_deploy.graph/1"
GATE_MODES = ("window", "streaming")
#: The CCF's squashing of a float gate: the paper's sigmoid, or the neuro-core gate's piecewise-linear one.
GATE_FUNCTIONS = ("sigmoid", "pwl")
#: Payload bits that mean "float values" (a float input or a float gate).
FLOAT_BITS = 32


class ConversionError(ValueError):
    """A graph the conversion cannot handle; the message names the node and what is unsupported."""


Shape = tuple[int, ...]
NODE_TYPES: dict[str, type] = {}


def node_type(cls):
    """Class decorator: register a node type under its ``kind`` (the one list of node types)."""
    if cls.kind in NODE_TYPES:
        raise RuntimeError(f"node type {cls.kind!r} registered twice")
    NODE_TYPES[cls.kind] = cls
    return cls


# ------------------------------------------------------------------------------------------- checks
def _fail(node, field_name: str, problem: str) -> ConversionError:
    return ConversionError(f"{node.kind} node: field {field_name!r} {problem}")


def _set(node, name: str, value) -> None:
    object.__setattr__(node, name, value)


def _array(node, name: str, ndim: Optional[int] = None, optional: bool = False, integer: bool = False) -> None:
    """Field ``name`` as a numpy array of ``ndim`` dims with finite numbers (None allowed if ``optional``)."""
    v = getattr(node, name)
    if v is None:
        if optional:
            return
        raise _fail(node, name, "is missing")
    try:
        a = np.asarray(v)
    except Exception:
        raise _fail(node, name, "is not an array") from None
    if a.dtype.kind not in "iuf" and a.dtype != np.bool_:
        raise _fail(node, name, f"must hold numbers, not {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise _fail(node, name, f"must have {ndim} dimensions, got shape {list(a.shape)}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _fail(node, name, "holds NaN or infinite values")
    if integer and a.dtype.kind == "f":
        if not np.all(a == np.round(a)):
            raise _fail(node, name, "must hold integers")
    _set(node, name, a)


def _int(node, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> None:
    v = getattr(node, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) and not (
            isinstance(v, (float, np.floating)) and float(v).is_integer()):
        raise _fail(node, name, f"must be an integer, got {v!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _fail(node, name, f"must lie in [{lo}, {hi if hi is not None else '∞'}], got {v}")
    _set(node, name, v)


def _float(node, name: str, lo: Optional[float] = None, hi: Optional[float] = None, open_lo: bool = False) -> None:
    v = getattr(node, name)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise _fail(node, name, f"must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise _fail(node, name, f"must be finite, got {v}")
    if lo is not None and (v < lo or (open_lo and v == lo)):
        raise _fail(node, name, f"must be {'>' if open_lo else '≥'} {lo}, got {v}")
    if hi is not None and v > hi:
        raise _fail(node, name, f"must be ≤ {hi}, got {v}")
    _set(node, name, v)


def _choice(node, name: str, options: tuple) -> None:
    if getattr(node, name) not in options:
        raise _fail(node, name, f"must be one of {list(options)}, got {getattr(node, name)!r}")


def _bool(node, name: str) -> None:
    v = getattr(node, name)
    if not isinstance(v, (bool, np.bool_)):
        raise _fail(node, name, f"must be true or false, got {v!r}")
    _set(node, name, bool(v))


def _shape(node, name: str) -> None:
    v = getattr(node, name)
    if not isinstance(v, (tuple, list)) or len(v) not in (1, 3) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in v):
        raise _fail(node, name, f"must be (C, H, W) or (F,) of positive integers, got {v!r}")
    _set(node, name, tuple(int(d) for d in v))


def _need(node, in_shape: Shape, ndim: int, what: str) -> None:
    if len(in_shape) != ndim:
        raise ConversionError(f"{node.kind} node needs {what} input, got per-step shape {list(in_shape)}")


# ---------------------------------------------------------------------------------------------- base
class _Node:
    """Behaviour shared by every node type (the dataclasses below add their fields).

    Class attributes: ``kind`` (JSON ``type``), ``category`` (``"input"`` | ``"synapse"`` | ``"neuron"`` |
    ``"gate"`` | ``"attention"`` | ``"norm"`` | ``"pool"`` | ``"reshape"`` | ``"host"`` | ``"vote"``),
    ``fixed_point`` (a ``q_*`` node of the quantized graph).
    """

    kind: ClassVar[str]
    category: ClassVar[str]
    fixed_point: ClassVar[bool] = False

    def out_shape(self, in_shape: Shape) -> Shape:
        """Per-step output shape for a per-step input shape (default: unchanged)."""
        return tuple(in_shape)

    def emitted_bits(self) -> Optional[int]:
        """Payload bits of the signal this node emits: 0 binary spikes (or synaptic sums), ``FLOAT_BITS``
        float values, else graded payload bits; None when it passes its input's signal on unchanged."""
        return 0


# ---------------------------------------------------------------------------------------------- nodes
@node_type
@dataclass(frozen=True, eq=False)
class Input(_Node):
    """The network input; ``shape`` is the per-step shape (C, H, W) or (F,)."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "input"
    category: ClassVar[str] = "input"

    def __post_init__(self):
        _shape(self, "shape")

    def out_shape(self, in_shape: Shape) -> Shape:
        return self.shape

    def emitted_bits(self) -> Optional[int]:
        return FLOAT_BITS


def _conv_out(node, in_shape: Shape) -> Shape:
    _need(node, in_shape, 3, "a (C, H, W)")
    c, h, w = in_shape
    co, ci_g, kh, kw = node.weight.shape
    if c != ci_g * node.groups:
        raise ConversionError(f"{node.kind} node has weights for {ci_g * node.groups} input channels, gets {c}")
    s, p = node.stride, node.padding
    out = (co, (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1)
    if out[1] < 1 or out[2] < 1:
        raise ConversionError(f"{node.kind} node: kernel {kh}×{kw} does not fit the {h}×{w} input")
    return out


def _check_conv(node) -> None:
    _array(node, "weight", 4, integer=node.fixed_point)
    _int(node, "stride", 1)
    _int(node, "padding", 0)
    _int(node, "groups", 1)
    _choice(node, "role", ("conv", "pool"))
    if node.weight.shape[0] % node.groups:
        raise _fail(node, "groups", f"{node.groups} does not divide the {node.weight.shape[0]} output channels")


def _linear_out(node, in_shape: Shape) -> Shape:
    _need(node, in_shape, 1, "a flat (F,)")
    if in_shape[0] != node.weight.shape[1]:
        raise ConversionError(f"{node.kind} node has weights for {node.weight.shape[1]} inputs, gets {in_shape[0]}")
    return (int(node.weight.shape[0]),)


def _check_bias(node, out_features: int) -> None:
    _array(node, "bias", 1, optional=True)
    if node.bias is not None and node.bias.shape[0] != out_features:
        raise _fail(node, "bias", f"must have {out_features} entries, got {node.bias.shape[0]}")


@node_type
@dataclass(frozen=True, eq=False)
class Conv2d(_Node):
    """``weight`` [Co, Ci/groups, k, k], ``bias`` [Co] | None; ``role`` ``"conv"`` or ``"pool"`` (a max pool
    rewritten as an OR: ones, stride = kernel)."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    groups: int = 1
    role: str = "conv"
    kind: ClassVar[str] = "conv2d"
    category: ClassVar[str] = "synapse"

    def __post_init__(self):
        _check_conv(self)
        _check_bias(self, self.weight.shape[0])

    def out_shape(self, in_shape: Shape) -> Shape:
        return _conv_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class Linear(_Node):
    """``weight`` [out, in], ``bias`` [out] | None."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    kind: ClassVar[str] = "linear"
    category: ClassVar[str] = "synapse"

    def __post_init__(self):
        _array(self, "weight", 2)
        _check_bias(self, self.weight.shape[0])

    def out_shape(self, in_shape: Shape) -> Shape:
        return _linear_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class BatchNorm(_Node):
    """Inference BatchNorm over channels: ``mean``, ``var``, ``weight``, ``bias`` [C], ``eps``."""

    mean: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float = 1e-5
    kind: ClassVar[str] = "batchnorm"
    category: ClassVar[str] = "norm"

    def __post_init__(self):
        for name in ("mean", "var", "weight", "bias"):
            _array(self, name, 1)
        if len({self.mean.shape, self.var.shape, self.weight.shape, self.bias.shape}) != 1:
            raise _fail(self, "mean", "var, weight and bias must have the same length")
        if np.any(self.var < 0):
            raise _fail(self, "var", "must be ≥ 0")
        _float(self, "eps", 0.0, open_lo=True)

    def out_shape(self, in_shape: Shape) -> Shape:
        if in_shape[0] != self.mean.shape[0]:
            raise ConversionError(f"batchnorm node has {self.mean.shape[0]} channels, gets {in_shape[0]}")
        return tuple(in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class LIF(_Node):
    """Norse LIF, times in steps (docs/DESIGN.md §3)."""

    tau_mem: float
    tau_syn: float
    v_th: float
    kind: ClassVar[str] = "lif"
    category: ClassVar[str] = "neuron"

    def __post_init__(self):
        _float(self, "tau_mem", 0.0, open_lo=True)
        _float(self, "tau_syn", 0.0, open_lo=True)
        _float(self, "v_th")


def _check_neuron_bias(node, name: str, in_shape: Shape) -> None:
    b = getattr(node, name)
    if b is not None and b.shape[0] != in_shape[0]:
        raise ConversionError(f"{node.kind} node: field {name!r} has {b.shape[0]} entries for {in_shape[0]} channels")


@node_type
@dataclass(frozen=True, eq=False)
class CubaLIF(_Node):
    """Loihi CUBA in floats: ``u ← (1−du)·u + x; v ← (1−dv)·v + u + bias; spike if v > threshold; v ← 0``."""

    du: float
    dv: float
    threshold: float
    bias: Optional[np.ndarray] = None
    kind: ClassVar[str] = "cuba_lif"
    category: ClassVar[str] = "neuron"

    def __post_init__(self):
        _float(self, "du", 0.0, 1.0)
        _float(self, "dv", 0.0, 1.0)
        _float(self, "threshold")
        _array(self, "bias", 1, optional=True)

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_neuron_bias(self, "bias", in_shape)
        return tuple(in_shape)


@dataclass(frozen=True, eq=False)
class _Pool(_Node):
    """Pooling over kernel × kernel blocks, stride = kernel (the remainder of the map is dropped)."""

    kernel: int
    category: ClassVar[str] = "pool"

    def __post_init__(self):
        _int(self, "kernel", 1)

    def out_shape(self, in_shape: Shape) -> Shape:
        _need(self, in_shape, 3, "a (C, H, W)")
        c, h, w = in_shape
        if h < self.kernel or w < self.kernel:
            raise ConversionError(f"{self.kind} node: kernel {self.kernel} is larger than the {h}×{w} input")
        return (c, h // self.kernel, w // self.kernel)


@node_type
@dataclass(frozen=True, eq=False)
class MaxPool(_Pool):
    kind: ClassVar[str] = "maxpool"


@node_type
@dataclass(frozen=True, eq=False)
class AvgPool(_Pool):
    kind: ClassVar[str] = "avgpool"


@node_type
@dataclass(frozen=True, eq=False)
class Flatten(_Node):
    """C-major flatten, as torch."""

    kind: ClassVar[str] = "flatten"
    category: ClassVar[str] = "reshape"

    def out_shape(self, in_shape: Shape) -> Shape:
        return (int(np.prod(in_shape)),)

    def emitted_bits(self) -> Optional[int]:
        return None


@node_type
@dataclass(frozen=True, eq=False)
class Dropout(_Node):
    """Identity at inference."""

    p: float
    kind: ClassVar[str] = "dropout"
    category: ClassVar[str] = "reshape"

    def __post_init__(self):
        _float(self, "p", 0.0, 1.0)

    def emitted_bits(self) -> Optional[int]:
        return None


def _check_gate_weights(node) -> None:
    _array(node, "w_tla", 3)
    _array(node, "w_cla", 3)
    if node.w_tla.shape[0] != node.w_tla.shape[1]:
        raise _fail(node, "w_tla", f"must be [C, C, k], got {list(node.w_tla.shape)}")
    if node.w_cla.shape[0] != node.w_cla.shape[1]:
        raise _fail(node, "w_cla", f"must be [T, T, k], got {list(node.w_cla.shape)}")


def _check_gate_input(node, in_shape: Shape, channels: int) -> None:
    _need(node, in_shape, 3, "a (C, H, W)")
    if in_shape[0] != channels:
        raise ConversionError(f"{node.kind} node has weights for {channels} channels, gets {in_shape[0]}")


@node_type
@dataclass(frozen=True, eq=False)
class TCJA(_Node):
    """``w_tla`` [C, C, k_tla], ``w_cla`` [T, T, k_cla], ``causal``, ``gate_function`` ``"sigmoid"`` | ``"pwl"``
    (models/tcja.py)."""

    w_tla: np.ndarray
    w_cla: np.ndarray
    causal: bool = False
    gate_function: str = "sigmoid"
    kind: ClassVar[str] = "tcja"
    category: ClassVar[str] = "attention"

    def __post_init__(self):
        _check_gate_weights(self)
        _bool(self, "causal")
        _choice(self, "gate_function", GATE_FUNCTIONS)

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_gate_input(self, in_shape, self.w_tla.shape[0])
        return tuple(in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class Gate(_Node):
    """The TCJA gate at a segment boundary: ``y = x · sigmoid(CLA ⊙ TLA)(squeeze(s))``, s = its input or the
    output of node ``squeeze_from`` (the gate moved past a max pool). ``mode`` ``"window"`` | ``"streaming"``."""

    w_tla: np.ndarray
    w_cla: np.ndarray
    causal: bool = False
    mode: str = "window"
    squeeze_from: Optional[str] = None
    gate_function: str = "sigmoid"
    kind: ClassVar[str] = "gate"
    category: ClassVar[str] = "gate"

    def __post_init__(self):
        _check_gate_weights(self)
        _bool(self, "causal")
        _choice(self, "mode", GATE_MODES)
        _choice(self, "gate_function", GATE_FUNCTIONS)
        if self.squeeze_from is not None and not isinstance(self.squeeze_from, str):
            raise _fail(self, "squeeze_from", "must be a node name or null")

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_gate_input(self, in_shape, self.w_tla.shape[0])
        return tuple(in_shape)

    def emitted_bits(self) -> Optional[int]:
        return FLOAT_BITS


@node_type
@dataclass(frozen=True, eq=False)
class Readout(_Node):
    """A final non-spiking linear layer on the host: per step ``y_t = W·(input_scale·s_t) + b``, float64."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    input_scale: float = 1.0
    host: bool = True
    kind: ClassVar[str] = "readout"
    category: ClassVar[str] = "host"

    def __post_init__(self):
        _array(self, "weight", 2)
        _check_bias(self, self.weight.shape[0])
        _float(self, "input_scale", 0.0, open_lo=True)
        _bool(self, "host")

    def out_shape(self, in_shape: Shape) -> Shape:
        return _linear_out(self, in_shape)

    def emitted_bits(self) -> Optional[int]:
        return FLOAT_BITS


def _check_conv_transpose(node) -> None:
    _array(node, "weight", 4, integer=node.fixed_point)
    _int(node, "stride", 1)
    _int(node, "padding", 0)
    _int(node, "output_padding", 0)
    if node.output_padding >= node.stride:
        raise _fail(node, "output_padding", f"must be smaller than the stride {node.stride}, got {node.output_padding}")


def _conv_transpose_out(node, in_shape: Shape) -> Shape:
    _need(node, in_shape, 3, "a (C, H, W)")
    c, h, w = in_shape
    ci, co, kh, kw = node.weight.shape
    if c != ci:
        raise ConversionError(f"{node.kind} node has weights for {ci} input channels, gets {c}")
    s, p, op = node.stride, node.padding, node.output_padding
    out = (co, (h - 1) * s - 2 * p + kh + op, (w - 1) * s - 2 * p + kw + op)
    if out[1] < 1 or out[2] < 1:
        raise ConversionError(f"{node.kind} node: a {h}×{w} input gives an empty output")
    return out


@node_type
@dataclass(frozen=True, eq=False)
class ConvTranspose2d(_Node):
    """torch's ``ConvTranspose2d`` (groups 1): ``weight`` [Ci, Co, k, k], ``bias`` [Co] | None, ``stride``,
    ``padding``, ``output_padding`` (< stride). On Loihi 2 it is one ``Sparse`` synapse (conversion/transposed.py)."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    kind: ClassVar[str] = "conv_transpose2d"
    category: ClassVar[str] = "synapse"

    def __post_init__(self):
        _check_conv_transpose(self)
        _check_bias(self, self.weight.shape[1])

    def out_shape(self, in_shape: Shape) -> Shape:
        return _conv_transpose_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class Unflatten(_Node):
    """``[T, N, C·H·W] → [T, N, C, H, W]`` (C-major, the inverse of ``flatten``); ``shape`` = (C, H, W)."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "unflatten"
    category: ClassVar[str] = "reshape"

    def __post_init__(self):
        _shape(self, "shape")

    def out_shape(self, in_shape: Shape) -> Shape:
        if int(np.prod(in_shape)) != int(np.prod(self.shape)):
            raise ConversionError(f"unflatten node: {list(in_shape)} does not hold {list(self.shape)}")
        return self.shape

    def emitted_bits(self) -> Optional[int]:
        return None


@node_type
@dataclass(frozen=True, eq=False)
class ImageReadout(_Node):
    """The spiking VAE's image on the host: ``tanh(Σ_t decay^(T−1−t)·(convT(input_scale·x_t) + bias))`` →
    images [N, Co, H', W'] (no time axis), float64. ``weight`` [Ci, Co, k, k] as ``conv_transpose2d``."""

    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    decay: float = 0.8
    input_scale: float = 1.0
    host: bool = True
    kind: ClassVar[str] = "image_readout"
    category: ClassVar[str] = "host"

    def __post_init__(self):
        _check_conv_transpose(self)
        _check_bias(self, self.weight.shape[1])
        _float(self, "decay", 0.0, 1.0)
        _float(self, "input_scale", 0.0, open_lo=True)
        _bool(self, "host")

    def out_shape(self, in_shape: Shape) -> Shape:
        return _conv_transpose_out(self, in_shape)

    def emitted_bits(self) -> Optional[int]:
        return FLOAT_BITS


@node_type
@dataclass(frozen=True, eq=False)
class Vote(_Node):
    """Class score = mean over time and over consecutive groups of ``voters`` outputs."""

    voters: int
    kind: ClassVar[str] = "vote"
    category: ClassVar[str] = "vote"

    def __post_init__(self):
        _int(self, "voters", 1)

    def out_shape(self, in_shape: Shape) -> Shape:
        """Groups the last dimension (a flat (F,) input in a network) into ``voters`` consecutive outputs."""
        if not in_shape or in_shape[-1] % self.voters:
            raise ConversionError(f"vote node: {list(in_shape)} outputs are not a multiple of voters = {self.voters}")
        return tuple(in_shape[:-1]) + (in_shape[-1] // self.voters,)


@node_type
@dataclass(frozen=True, eq=False)
class QInput(_Node):
    """Input quantization: payload = clip(round(x / scale), 0, 2^bits − 1); bits 0 = binary spikes."""

    shape: tuple[int, ...]
    payload_bits: int
    scale: float = 1.0
    kind: ClassVar[str] = "q_input"
    category: ClassVar[str] = "input"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        _shape(self, "shape")
        _int(self, "payload_bits", 0, L.MAX_PAYLOAD_BITS)
        _float(self, "scale", 0.0, open_lo=True)

    def out_shape(self, in_shape: Shape) -> Shape:
        return self.shape

    def emitted_bits(self) -> Optional[int]:
        return self.payload_bits


def _check_qweight(node) -> None:
    w = node.weight
    if w.size and (w.min() < L.WEIGHT_MIN or w.max() > L.WEIGHT_MAX):
        raise _fail(node, "weight", f"must lie in [{L.WEIGHT_MIN}, {L.WEIGHT_MAX}] (8-bit at w_scale "
                                    f"{L.WEIGHT_SCALE}), got [{w.min()}, {w.max()}]")
    _float(node, "scale", 0.0, open_lo=True)
    _float(node, "input_scale", 0.0, open_lo=True)


@node_type
@dataclass(frozen=True, eq=False)
class QConv2d(_Node):
    """Integer conv weights (even, in [−256, 254]); float weight = ``weight / (scale · input_scale)``."""

    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    groups: int = 1
    role: str = "conv"
    scale: float = 1.0
    input_scale: float = 1.0
    kind: ClassVar[str] = "q_conv2d"
    category: ClassVar[str] = "synapse"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        _check_conv(self)
        _check_qweight(self)

    def out_shape(self, in_shape: Shape) -> Shape:
        return _conv_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class QLinear(_Node):
    """Integer dense weights [out, in] (even, in [−256, 254])."""

    weight: np.ndarray
    scale: float = 1.0
    input_scale: float = 1.0
    kind: ClassVar[str] = "q_linear"
    category: ClassVar[str] = "synapse"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        _array(self, "weight", 2, integer=True)
        _check_qweight(self)

    def out_shape(self, in_shape: Shape) -> Shape:
        return _linear_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class QConvTranspose2d(_Node):
    """Integer transposed-conv weights [Ci, Co, k, k] (even, in [−256, 254]); on Loihi 2 one ``Sparse``
    synapse holding exactly these weights (conversion/transposed.py); sums are not wrapped (as Dense)."""

    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    scale: float = 1.0
    input_scale: float = 1.0
    kind: ClassVar[str] = "q_conv_transpose2d"
    category: ClassVar[str] = "synapse"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        _check_conv_transpose(self)
        _check_qweight(self)

    def out_shape(self, in_shape: Shape) -> Shape:
        return _conv_transpose_out(self, in_shape)


@node_type
@dataclass(frozen=True, eq=False)
class QCubaLIF(_Node):
    """Loihi 2 CUBA in integers: 12-bit decays (×4096), threshold ``vth_mant`` (v > vth_mant·2⁶ spikes),
    v-bias ``bias_mant`` (added as bias_mant·2⁶); float threshold = vth_mant / scale."""

    i_decay: int
    v_decay: int
    vth_mant: int
    bias_mant: Optional[np.ndarray] = None
    scale: float = 1.0
    kind: ClassVar[str] = "q_cuba_lif"
    category: ClassVar[str] = "neuron"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        _int(self, "i_decay", 0, L.DECAY_UNITY)
        _int(self, "v_decay", 0, L.DECAY_UNITY)
        _int(self, "vth_mant", 0, L.VTH_MAX)
        _array(self, "bias_mant", 1, optional=True, integer=True)
        if self.bias_mant is not None and self.bias_mant.size and (
                self.bias_mant.min() < -L.BIAS_MAX - 1 or self.bias_mant.max() > L.BIAS_MAX):
            raise _fail(self, "bias_mant", f"must lie in [{-L.BIAS_MAX - 1}, {L.BIAS_MAX}]")
        _float(self, "scale", 0.0, open_lo=True)

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_neuron_bias(self, "bias_mant", in_shape)
        return tuple(in_shape)


#: Keys of a host ``q_gate``'s ``params`` (``gate_math.QuantizedGate.to_arrays()``).
QGATE_PARAM_KEYS = ("T", "C", "H", "W", "mode", "w_tla", "w_cla", "weight_bits", "w_tla_q", "w_cla_q",
                    "w_tla_scale", "w_cla_scale", "frac_bits", "tla_mult", "tla_shift", "cla_mult", "cla_shift",
                    "lut_bits", "lut_range", "lut", "payload_bits")
#: Keys of a neuro-core ``q_gate``'s ``params`` (``neurocore_gate.NeurocoreGate.to_arrays()``).
NC_GATE_PARAM_KEYS = NC_PARAM_KEYS
#: Where a fixed-point gate runs: ``"neurocore"`` (standard Lava processes, neurocore_gate.py) or ``"host"``
#: (our Python process, gate_math.py).
GATE_PLACEMENTS = ("neurocore", "host")


@node_type
@dataclass(frozen=True, eq=False)
class QGate(_Node):
    """The gate in fixed point; height × width is the squeezed map; output payload = spike × code, one code
    unit = ``payload_scale``. ``placement`` ``"neurocore"``: the integer stages of
    :mod:`tcja_deploy.conversion.neurocore_gate` in ``params``; ``"host"``: those of
    :mod:`tcja_deploy.conversion.gate_math`."""

    T: int
    channels: int
    height: int
    width: int
    mode: str
    payload_bits: int
    payload_scale: float
    params: dict = field(default_factory=dict)
    squeeze_from: Optional[str] = None
    placement: str = "host"
    kind: ClassVar[str] = "q_gate"
    category: ClassVar[str] = "gate"
    fixed_point: ClassVar[bool] = True

    def __post_init__(self):
        for name in ("T", "channels", "height", "width"):
            _int(self, name, 1)
        _choice(self, "mode", GATE_MODES)
        _int(self, "payload_bits", 1, L.MAX_PAYLOAD_BITS)
        _float(self, "payload_scale", 0.0, open_lo=True)
        _choice(self, "placement", GATE_PLACEMENTS)
        if not isinstance(self.params, dict):
            raise _fail(self, "params", "must be an object of gate arrays")
        keys = NC_GATE_PARAM_KEYS if self.placement == "neurocore" else QGATE_PARAM_KEYS
        missing = [k for k in keys if k not in self.params]
        if missing:
            raise _fail(self, "params", f"lacks {missing}")
        for key in keys:
            a = np.asarray(self.params[key])
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise _fail(self, "params", f"{key!r} holds NaN or infinite values")
        if self.squeeze_from is not None and not isinstance(self.squeeze_from, str):
            raise _fail(self, "squeeze_from", "must be a node name or null")

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_gate_input(self, in_shape, self.channels)
        return tuple(in_shape)

    def emitted_bits(self) -> Optional[int]:
        return self.payload_bits


Node = Union[Input, Conv2d, Linear, BatchNorm, LIF, CubaLIF, MaxPool, AvgPool, Flatten, Dropout, TCJA, Gate, Readout,
             Vote, QInput, QConv2d, QLinear, QCubaLIF, QGate, ConvTranspose2d, Unflatten, ImageReadout, QConvTranspose2d]


def host_nodes(graph: "Graph") -> list[str]:
    """The nodes that run on the host after the chip: a ``readout``, the flattens feeding it, the ``vote``."""
    names = graph.names
    idx = [i for i, n in enumerate(names) if graph.nodes[n].category == "host"]
    if not idx:
        return [n for n in names if graph.nodes[n].category == "vote"]
    i = idx[0]
    while i > 0 and isinstance(graph.nodes[names[i - 1]], Flatten):
        i -= 1
    return names[i:]


# ---------------------------------------------------------------------------------------------- graph
@dataclass
class Graph:
    """A chain of named nodes, input first, in execution order.

    Attributes:
        nodes: name → node; dict order is execution order.
        meta: T, num_classes, preset, the passes that ran, quantization notes, ...
    """

    nodes: dict[str, Node]
    meta: dict = field(default_factory=dict)

    @property
    def edges(self) -> list[tuple[str, str]]:
        names = list(self.nodes)
        chain = list(zip(names[:-1], names[1:]))
        extra = [(n.squeeze_from, name) for name, n in self.nodes.items() if getattr(n, "squeeze_from", None)]
        return chain + extra

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    @property
    def quantized(self) -> bool:
        """True for a fixed-point graph (its input is a ``q_input``)."""
        return any(isinstance(n, QInput) for n in self.nodes.values())

    def items(self) -> Iterable[tuple[str, Node]]:
        return self.nodes.items()

    def replace(self, nodes: dict[str, Node] | list[tuple[str, Node]], pass_name: str | None = None, **meta) -> "Graph":
        """A new graph with these nodes (same meta, plus ``meta`` entries and ``pass_name`` appended)."""
        new_meta = dict(self.meta, **meta)
        if pass_name is not None:
            new_meta["passes"] = list(self.meta.get("passes", [])) + [pass_name]
        return Graph(dict(nodes), new_meta)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "nodes": [{"name": name, **node_to_dict(node)} for name, node in self.nodes.items()],
            "edges": [list(e) for e in self.edges],
            "meta": _encode(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Graph":
        """Parse a ``graph.json`` document; any malformed part → ValueError (ConversionError) naming it."""
        if not isinstance(d, dict):
            raise ConversionError(f"a graph document must be a JSON object, not {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ConversionError(f"not a {FORMAT} document (format={d.get('format')!r})")
        if not isinstance(d.get("nodes"), list) or not d["nodes"]:
            raise ConversionError("'nodes' must be a non-empty list")
        nodes = {}
        for i, nd in enumerate(d["nodes"]):
            if not isinstance(nd, dict) or not isinstance(nd.get("name"), str):
                raise ConversionError(f"nodes[{i}] must be an object with a string 'name'")
            nd = dict(nd)
            name = nd.pop("name")
            if name in nodes:
                raise ConversionError(f"node name {name!r} appears twice")
            try:
                nodes[name] = node_from_dict(nd)
            except ConversionError as e:
                raise ConversionError(f"node {name!r}: {e}") from None
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise ConversionError("'meta' must be an object")
        graph = cls(nodes, _decode(meta))
        if [list(e) for e in d.get("edges", [])] != [list(e) for e in graph.edges]:
            raise ConversionError("graph edges must be the chain of the nodes in order plus squeeze_from edges")
        for name, node in graph.items():
            src = getattr(node, "squeeze_from", None)
            if src is not None and (src not in nodes or graph.names.index(src) >= graph.names.index(name)):
                raise ConversionError(f"node {name!r}: squeeze_from {src!r} is not an earlier node")
        return graph

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConversionError(f"not valid JSON ({e.msg}, line {e.lineno})") from None
        return cls.from_dict(doc)

    def summary(self) -> str:
        rows = []
        for name, node in self.nodes.items():
            shapes = {f.name: tuple(getattr(node, f.name).shape) for f in fields(node)
                      if isinstance(getattr(node, f.name), np.ndarray)}
            rows.append(f"{name:14s} {node.kind:11s} {shapes if shapes else ''}")
        return "\n".join(rows)


# ------------------------------------------------------------------------------------------ encoding
def encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    data = a.reshape(-1).tolist()
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": data}


_ARRAY_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool"}  # and unicode strings "<U…" (a gate's mode)


def decode_array(d: dict[str, Any]) -> np.ndarray:
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ConversionError(f"array shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(dtype, str) or not (dtype in _ARRAY_DTYPES or dtype.startswith("<U")):
        raise ConversionError(f"array dtype {dtype!r} is not one this format uses")
    if not isinstance(data, list) and not (shape == [] and isinstance(data, (int, float, str, bool))):
        raise ConversionError("array data must be a flat list")
    count = int(np.prod(shape)) if shape else 1
    flat = data if isinstance(data, list) else [data]
    if len(flat) != count:
        raise ConversionError(f"array of shape {shape} needs {count} values, has {len(flat)}")
    try:
        return np.asarray(data, dtype=dtype).reshape(shape)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"array data does not match dtype {dtype} ({e})") from None


def _is_array_doc(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"dtype", "shape", "data"}


def _encode(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return encode_array(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any) -> Any:
    if _is_array_doc(v):
        return decode_array(v)
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def node_to_dict(node: Node) -> dict[str, Any]:
    return {"type": node.kind, **{f.name: _encode(getattr(node, f.name)) for f in fields(node)}}


def node_from_dict(d: dict[str, Any]) -> Node:
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in NODE_TYPES:
        raise ConversionError(f"unknown node type {kind!r}; supported: {', '.join(sorted(NODE_TYPES))}")
    cls = NODE_TYPES[kind]
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise ConversionError(f"node type {kind!r} has no field(s) {sorted(unknown)}")
    required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in d]
    if missing:
        raise ConversionError(f"node type {kind!r} lacks field(s) {missing}")
    kwargs = {}
    for name, value in d.items():
        value = _decode(value)
        if name == "shape" and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConversionError(f"node type {kind!r}: {e}") from None


def evolve(node: Node, **changes) -> Node:
    """A copy of ``node`` with some fields changed (checked again)."""
    return dataclasses.replace(node, **changes)


def check_node_type(node: Any) -> None:
    """Raise :class:`ConversionError` unless ``node`` is an instance of a registered node type."""
    if type(node) not in NODE_TYPES.values():
        raise ConversionError(f"{type(node).__name__} is not a registered graph node type")

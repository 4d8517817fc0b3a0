"""The conversion graph: one frozen dataclass per primitive, a chain of named nodes, and its JSON dump.

Modelled on NIR (``nir/ir``): nodes are plain dataclasses holding numpy arrays, edges are pairs of
node names, and ``graph.json`` is a faithful dump that a reader understands without our code.
Every node maps a window of per-step tensors ``[T, N, *shape]`` to ``[T, N, *shape']`` (the semantics
live in :mod:`tcja_deploy.conversion.execute`); the last node (``Vote``) maps to class scores [N, K].

Node types (``type`` in JSON), float stage:

- ``input`` — ``Input(shape)``: the network input, per-step shape (C, H, W).
- ``conv2d`` — ``Conv2d(weight [Co, Ci/groups, k, k], bias [Co] | null, stride, padding, groups, role)``;
  ``role`` is ``"conv"`` or ``"pool"`` (a max pool rewritten as an OR: ones, stride = kernel).
- ``linear`` — ``Linear(weight [out, in], bias [out] | null)``.
- ``batchnorm`` — ``BatchNorm(mean, var, weight, bias [C], eps)`` (inference statistics).
- ``lif`` — ``LIF(tau_mem, tau_syn, v_th)``: Norse LIF, times in steps (DESIGN §3).
- ``cuba_lif`` — ``CubaLIF(du, dv, threshold, bias)``: Loihi CUBA in floats: ``u ← (1−du)·u + x;
  v ← (1−dv)·v + u + bias; spike if v > threshold; v ← 0``.
- ``maxpool`` / ``avgpool`` — ``MaxPool(kernel)`` / ``AvgPool(kernel)``, stride = kernel.
- ``flatten`` — C-major, as torch.  ``dropout`` — ``Dropout(p)``, identity at inference.
- ``tcja`` — ``TCJA(w_tla [C, C, k_tla], w_cla [T, T, k_cla], causal)`` (models/tcja.py).
- ``gate`` — ``Gate(w_tla, w_cla, causal, mode, squeeze_from)``: the TCJA gate as a process at a
  segment boundary: ``y = x · sigmoid(CLA ⊙ TLA)(squeeze(s))`` with ``s`` = its input, or the output of
  node ``squeeze_from`` when the gate moved past a max pool (it then squeezes the *unpooled* spikes and
  scales the pooled ones; exact: the gate is ≥ 0 and constant per (t, c)). ``squeeze_from`` adds an
  edge. ``mode`` is ``"window"`` (non-causal, buffers T steps) or ``"streaming"`` (causal variant).
- ``readout`` — ``Readout(weight [K, in], bias [K] | null, input_scale, host)``: a final non-spiking linear
  layer that runs on the host, not on the chip: per step ``y_t = W·(input_scale·s_t) + b`` of the previous
  layer's output s (binary spikes or graded payloads; ``input_scale`` is the float value of one payload
  unit, 1 in float graphs), computed in float64 from the recorded spikes; the ``vote`` after it takes
  the mean over time. NetX segments stop before it (and before the flattens that feed it).
- ``vote`` — ``Vote(voters)``: class score = mean over time and over groups of ``voters`` outputs.

Fixed-point stage (after ``quantize_loihi2``; integers in Loihi units, see DESIGN §3):

- ``q_input`` — ``QInput(shape, payload_bits, scale)``: payload = clip(round(x / scale), 0, 2^bits − 1);
  ``payload_bits`` 0 means binary spikes.
- ``q_conv2d`` — ``QConv2d(weight int, stride, padding, groups, role, scale, input_scale)``.
- ``q_linear`` — ``QLinear(weight int, scale, input_scale)``.
  Weights are even integers in [−256, 254] (slayer's 8-bit at w_scale 64). The float weight they stand
  for is ``weight / (scale · input_scale)``; ``input_scale`` is the float value of one input payload unit.
- ``q_cuba_lif`` — ``QCubaLIF(i_decay, v_decay, vth_mant, bias_mant, scale)``: 12-bit decays (×4096),
  threshold ``vth_mant`` (the neuron spikes when v > vth_mant·2⁶), bias in weight units (added to v as
  bias_mant·2⁶). Float threshold = vth_mant / scale.
- ``q_gate`` — ``QGate(T, channels, height, width, mode, payload_bits, payload_scale, params, squeeze_from)``:
  the gate's integer parameters as written by :mod:`tcja_deploy.conversion.gate_math`
  (``params`` = ``QuantizedGate.to_arrays()``); height × width is the squeezed map. Output payload =
  spike × code, code ∈ [0, 2^payload_bits − 1]; one code unit is worth ``payload_scale`` (= 2^−bits).

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
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterable, Optional, Union

import numpy as np

FORMAT = "tcja_deploy.graph/1"


def _arr(x) -> Optional[np.ndarray]:
    return None if x is None else np.asarray(x)


# ---------------------------------------------------------------------------------------------- nodes
@dataclass(frozen=True, eq=False)
class Input:
    shape: tuple[int, ...]
    kind: ClassVar[str] = "input"


@dataclass(frozen=True, eq=False)
class Conv2d:
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    groups: int = 1
    role: str = "conv"
    kind: ClassVar[str] = "conv2d"


@dataclass(frozen=True, eq=False)
class Linear:
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    kind: ClassVar[str] = "linear"


@dataclass(frozen=True, eq=False)
class BatchNorm:
    mean: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float = 1e-5
    kind: ClassVar[str] = "batchnorm"


@dataclass(frozen=True, eq=False)
class LIF:
    tau_mem: float
    tau_syn: float
    v_th: float
    kind: ClassVar[str] = "lif"


@dataclass(frozen=True, eq=False)
class CubaLIF:
    du: float
    dv: float
    threshold: float
    bias: Optional[np.ndarray] = None
    kind: ClassVar[str] = "cuba_lif"


@dataclass(frozen=True, eq=False)
class MaxPool:
    kernel: int
    kind: ClassVar[str] = "maxpool"


@dataclass(frozen=True, eq=False)
class AvgPool:
    kernel: int
    kind: ClassVar[str] = "avgpool"


@dataclass(frozen=True, eq=False)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True, eq=False)
class Dropout:
    p: float
    kind: ClassVar[str] = "dropout"


@dataclass(frozen=True, eq=False)
class TCJA:
    w_tla: np.ndarray
    w_cla: np.ndarray
    causal: bool = False
    kind: ClassVar[str] = "tcja"


@dataclass(frozen=True, eq=False)
class Gate:
    w_tla: np.ndarray
    w_cla: np.ndarray
    causal: bool = False
    mode: str = "window"
    squeeze_from: Optional[str] = None
    kind: ClassVar[str] = "gate"


@dataclass(frozen=True, eq=False)
class Readout:
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    input_scale: float = 1.0
    host: bool = True
    kind: ClassVar[str] = "readout"


@dataclass(frozen=True, eq=False)
class Vote:
    voters: int
    kind: ClassVar[str] = "vote"


@dataclass(frozen=True, eq=False)
class QInput:
    shape: tuple[int, ...]
    payload_bits: int
    scale: float = 1.0
    kind: ClassVar[str] = "q_input"


@dataclass(frozen=True, eq=False)
class QConv2d:
    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    groups: int = 1
    role: str = "conv"
    scale: float = 1.0
    input_scale: float = 1.0
    kind: ClassVar[str] = "q_conv2d"


@dataclass(frozen=True, eq=False)
class QLinear:
    weight: np.ndarray
    scale: float = 1.0
    input_scale: float = 1.0
    kind: ClassVar[str] = "q_linear"


@dataclass(frozen=True, eq=False)
class QCubaLIF:
    i_decay: int
    v_decay: int
    vth_mant: int
    bias_mant: Optional[np.ndarray] = None
    scale: float = 1.0
    kind: ClassVar[str] = "q_cuba_lif"


@dataclass(frozen=True, eq=False)
class QGate:
    T: int
    channels: int
    height: int
    width: int
    mode: str
    payload_bits: int
    payload_scale: float
    params: dict = field(default_factory=dict)
    squeeze_from: Optional[str] = None
    kind: ClassVar[str] = "q_gate"


Node = Union[Input, Conv2d, Linear, BatchNorm, LIF, CubaLIF, MaxPool, AvgPool, Flatten, Dropout, TCJA, Gate, Readout,
             Vote, QInput, QConv2d, QLinear, QCubaLIF, QGate]
NODE_TYPES: dict[str, type] = {cls.kind: cls for cls in (
    Input, Conv2d, Linear, BatchNorm, LIF, CubaLIF, MaxPool, AvgPool, Flatten, Dropout, TCJA, Gate, Readout, Vote,
    QInput, QConv2d, QLinear, QCubaLIF, QGate)}
SYNAPSES = (Conv2d, Linear, QConv2d, QLinear)
NEURONS = (LIF, CubaLIF, QCubaLIF)


def host_nodes(graph: "Graph") -> list[str]:
    """The nodes that run on the host after the chip: a ``readout``, the flattens feeding it, the ``vote``."""
    names = graph.names
    idx = [i for i, n in enumerate(names) if isinstance(graph.nodes[n], Readout)]
    if not idx:
        return [n for n in names if isinstance(graph.nodes[n], Vote)]
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
    def from_dict(cls, d: dict[str, Any]) -> "Graph":
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document (format={d.get('format')!r})")
        nodes = {}
        for nd in d["nodes"]:
            nd = dict(nd)
            name = nd.pop("name")
            nodes[name] = node_from_dict(nd)
        graph = cls(nodes, _decode(d.get("meta", {})))
        if [list(e) for e in d.get("edges", [])] != [list(e) for e in graph.edges]:
            raise ValueError("graph edges must be the chain of the nodes in order plus squeeze_from edges")
        return graph

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        return cls.from_dict(json.loads(text))

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


def decode_array(d: dict[str, Any]) -> np.ndarray:
    return np.asarray(d["data"], dtype=d["dtype"]).reshape(d["shape"])


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
        raise ValueError(f"unknown node type {kind!r}; supported: {', '.join(sorted(NODE_TYPES))}")
    cls = NODE_TYPES[kind]
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"node type {kind!r} has no field(s) {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        value = _decode(value)
        if name == "shape" and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def evolve(node: Node, **changes) -> Node:
    """A copy of ``node`` with some fields changed."""
    return dataclasses.replace(node, **changes)

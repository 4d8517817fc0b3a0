"""Typed layer specifications: the plain description of a TCJA-SNN that config.json stores.

A network is ``ModelConfig`` = input shape, T, classes and an ordered list of layer specs. The
training stage builds torch modules from it (:mod:`tcja_deploy.models.network`); the conversion
stage builds its graph from the same list and the trained weights.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Union


@dataclass(frozen=True)
class Conv:
    """2-D convolution on [T·N, C, H, W] (applied to every time step)."""

    out_channels: int
    kernel_size: int = 3
    padding: int = 1
    stride: int = 1
    bias: bool = False
    kind: ClassVar[str] = "conv"


@dataclass(frozen=True)
class BatchNorm:
    """BatchNorm2d (after a conv) or BatchNorm1d (after a linear), statistics over T·N."""

    kind: ClassVar[str] = "batchnorm"


@dataclass(frozen=True)
class LIF:
    """Norse LIF neuron over time (see :mod:`tcja_deploy.models.lif`); times in steps."""

    tau_mem: float = 2.0
    tau_syn: float = 1.0
    v_th: float = 1.0
    surrogate: str = "super"
    alpha: float = 10.0
    detach_reset: bool = False
    kind: ClassVar[str] = "lif"


@dataclass(frozen=True)
class TCJAAttention:
    """TCJA gate on [T, N, C, H, W] spikes; kernels named after the paper (TLA: time, CLA: channels)."""

    kernel_tla: int = 4
    kernel_cla: int = 4
    causal: bool = False
    gate_function: str = "sigmoid"  # or "pwl": the neuro-core gate's piecewise-linear sigmoid
    kind: ClassVar[str] = "tcja"


@dataclass(frozen=True)
class MaxPool:
    kernel_size: int = 2
    kind: ClassVar[str] = "maxpool"


@dataclass(frozen=True)
class AvgPool:
    kernel_size: int = 2
    kind: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class Dropout:
    """Dropout with one mask per sample shared by all time steps (as SpikingJelly's MultiStepDropout)."""

    p: float = 0.5
    kind: ClassVar[str] = "dropout"


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Linear:
    out_features: int
    bias: bool = False
    kind: ClassVar[str] = "linear"


@dataclass(frozen=True)
class Vote:
    """Average groups of ``voters`` consecutive outputs into one class score (reference VotingLayer)."""

    voters: int = 10
    kind: ClassVar[str] = "vote"


LayerSpec = Union[Conv, BatchNorm, LIF, TCJAAttention, MaxPool, AvgPool, Dropout, Flatten, Linear, Vote]
LAYER_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (Conv, BatchNorm, LIF, TCJAAttention, MaxPool, AvgPool, Dropout, Flatten, Linear, Vote)
}


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    return {"type": layer.kind, **asdict(layer)}


#: Smallest allowed value of a numeric layer field (fields not listed: any finite number); ``open`` bounds
#: exclude the value itself.
_FIELD_MIN = {"out_channels": 1, "kernel_size": 1, "padding": 0, "stride": 1, "out_features": 1, "voters": 1,
              "kernel_tla": 1, "kernel_cla": 1, "p": 0.0, "tau_mem": 0.0, "tau_syn": 0.0, "alpha": 0.0}
_OPEN_MIN = {"tau_mem", "tau_syn", "alpha"}
#: Upper limits that keep a bad file from allocating the machine away.
_FIELD_MAX = {"out_channels": 1 << 16, "out_features": 1 << 20, "kernel_size": 64, "padding": 64, "stride": 64,
              "voters": 1 << 12, "kernel_tla": 64, "kernel_cla": 1 << 12, "p": 0.999999}
MAX_T = 4096
MAX_INPUT = 4096  # pixels per side, channels


def _check_value(kind: str, name: str, value: Any, default: Any) -> None:
    """A field of a layer has its default's type and lies in its range; ValueError naming layer and field."""
    where = f"layer type {kind!r} field {name!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if isinstance(default, int) and not isinstance(value, int):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be finite, got {value}")
    lo, hi = _FIELD_MIN.get(name), _FIELD_MAX.get(name)
    if lo is not None and (value < lo or (name in _OPEN_MIN and value == lo)):
        raise ValueError(f"{where} must be {'>' if name in _OPEN_MIN else '≥'} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{where} must be ≤ {hi}, got {value}")


def layer_from_dict(d: dict[str, Any]) -> LayerSpec:
    if not isinstance(d, dict):
        raise ValueError(f"a layer must be an object, got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; supported: {', '.join(sorted(LAYER_TYPES))}")
    cls = LAYER_TYPES[kind]
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"layer type {kind!r} has no field(s) {sorted(unknown)}")
    for f in fields(cls):
        if f.name not in d:
            if f.default is MISSING:
                raise ValueError(f"layer type {kind!r} lacks field {f.name!r}")
            continue
        default = f.default if f.default is not MISSING else (1 if f.type in ("int", int) else "")
        _check_value(kind, f.name, d[f.name], default)
    return cls(**d)


def _positive_int(name: str, value: Any, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise ValueError(f"model config {name} must be an integer in [1, {hi}], got {value!r}")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a TCJA-SNN.

    Attributes:
        preset: preset name the network came from.
        input_shape: (C, H, W) of one input frame.
        T: time steps per sample.
        num_classes: class count after voting.
        layers: ordered layer specs; input [T, N, C, H, W] → output [T, N, K·voters] then voting.
    """

    preset: str
    input_shape: tuple[int, int, int]
    T: int
    num_classes: int
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "input_shape": list(self.input_shape),
            "T": self.T,
            "num_classes": self.num_classes,
            "layers": [layer_to_dict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"model config must be an object, got {type(d).__name__}")
        missing = {"preset", "input_shape", "T", "num_classes", "layers"} - set(d)
        if missing:
            raise ValueError(f"model config lacks {sorted(missing)}")
        shape = d["input_shape"]
        if not isinstance(shape, list) or len(shape) != 3:
            raise ValueError(f"model config input_shape must be [C, H, W], got {shape!r}")
        if not isinstance(d["layers"], list):
            raise ValueError("model config layers must be a list")
        return cls(
            preset=str(d["preset"]),
            input_shape=tuple(_positive_int("input_shape", v, MAX_INPUT) for v in shape),
            T=_positive_int("T", d["T"], MAX_T),
            num_classes=_positive_int("num_classes", d["num_classes"], 1 << 16),
            layers=tuple(layer_from_dict(layer) for layer in d["layers"]),
        )

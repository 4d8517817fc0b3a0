"""Typed layer specifications: the plain description of a TCJA-SNN that config.json stores.

A network is ``ModelConfig`` = input shape, T, classes and an ordered list of layer specs. The
training stage builds torch modules from it (:mod:`tcja_deploy.models.network`); the conversion
stage builds its graph from the same list and the trained weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
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


def layer_from_dict(d: dict[str, Any]) -> LayerSpec:
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; supported: {', '.join(sorted(LAYER_TYPES))}")
    cls = LAYER_TYPES[kind]
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"layer type {kind!r} has no field(s) {sorted(unknown)}")
    return cls(**d)


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
        missing = {"preset", "input_shape", "T", "num_classes", "layers"} - set(d)
        if missing:
            raise ValueError(f"model config lacks {sorted(missing)}")
        return cls(
            preset=str(d["preset"]),
            input_shape=tuple(int(v) for v in d["input_shape"]),
            T=int(d["T"]),
            num_classes=int(d["num_classes"]),
            layers=tuple(layer_from_dict(layer) for layer in d["layers"]),
        )

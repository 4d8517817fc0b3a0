"""Targets: a target is a list of passes (and what the deploy directory holds for it).

- ``loihi2`` (default): fixed point for Loihi 2 — NetX HDF5 segments + gate parameters, run on Lava's
  ``fixed_pt`` simulator and the bit-exact emulator;
- ``lava-float``: the same graph without quantization, run on Lava's ``floating_pt`` models (debugging:
  separates conversion errors from quantization errors);
- ``onnx``: the float network only (``model.onnx``).

The quantization pass is built with its calibration data (:func:`quantize_pass`), so running a target is
just applying its passes in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import passes as P
from tcja_deploy.errors import UserError

Pass = Callable[[g.Graph], g.Graph]


@dataclass(frozen=True)
class Target:
    """A conversion target.

    Attributes:
        name: ``loihi2`` | ``lava-float`` | ``onnx``.
        passes: applied in order to the float graph.
        lava_tag: Lava run-config tag (``fixed_pt`` / ``floating_pt``), or None: no Lava run, no NetX files.
        quantized: the passes end in fixed point (``q_*`` nodes).
        description: one line for ``--help``.
    """

    name: str
    passes: tuple[Pass, ...]
    lava_tag: Optional[str]
    quantized: bool
    description: str


def quantize_pass(calibration_x: Optional[torch.Tensor] = None, **options) -> Pass:
    """The ``quantize_loihi2`` pass, calibrated on ``calibration_x`` [T, N, C, H, W] (run through the graph
    as it is just before quantization); ``options``: :func:`passes.quantize_loihi2`'s keyword arguments."""

    def quantize_loihi2(graph: g.Graph) -> g.Graph:
        calibration = None if calibration_x is None else P.calibrate(graph, calibration_x)
        return P.quantize_loihi2(graph, calibration, **options)

    return quantize_loihi2


_TRUNK = (P.drop_dropout, P.fold_batchnorm, P.tcja_to_gate, P.maxpool_to_or, P.avgpool_fold, P.lif_to_cuba)
_DESCRIPTIONS = {
    "loihi2": "Loihi 2 fixed point: NetX segments + TCJA gates on neuro cores (standard Lava processes) or on the "
              "host (Lava fixed_pt simulator)",
    "lava-float": "the same graph in floating point on Lava's floating_pt models (debugging)",
    "onnx": "the float network as ONNX only",
}
TARGET_NAMES = tuple(_DESCRIPTIONS)


def get_target(name: str, calibration_x: Optional[torch.Tensor] = None, **quantize_options) -> Target:
    """The target ``name``. A quantizing target (``loihi2``) calibrates on ``calibration_x`` (None: binary input
    and worst-case state bounds) with ``quantize_options``; the float targets need neither."""
    if name == "loihi2":
        return Target(name, _TRUNK + (quantize_pass(calibration_x, **quantize_options),), "fixed_pt", True,
                      _DESCRIPTIONS[name])
    if name == "lava-float":
        return Target(name, _TRUNK, "floating_pt", False, _DESCRIPTIONS[name])
    if name == "onnx":
        return Target(name, (P.drop_dropout,), None, False, _DESCRIPTIONS[name])
    raise UserError(f"unknown target {name!r}; choose one of: {', '.join(TARGET_NAMES)}")


#: The targets with their default (uncalibrated) passes.
TARGETS: dict[str, Target] = {name: get_target(name) for name in TARGET_NAMES}


def run_passes(target: Target, graph: g.Graph, calibration_x: Optional[torch.Tensor] = None,
               **quantize_options) -> g.Graph:
    """Apply the target's passes in order (rebuilt with ``calibration_x`` / options when given)."""
    if calibration_x is not None or quantize_options:
        target = get_target(target.name, calibration_x, **quantize_options)
    for p in target.passes:
        graph = p(graph)
    return graph

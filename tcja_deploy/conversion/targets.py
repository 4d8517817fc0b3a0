"""Targets: a target is a list of passes (and what the deploy directory holds for it).

- ``loihi2`` (default): fixed point for Loihi 2 — NetX HDF5 segments + gate parameters, run on Lava's
  ``fixed_pt`` simulator and the bit-exact emulator;
- ``lava-float``: the same graph without quantization, run on Lava's ``floating_pt`` models (debugging:
  separates conversion errors from quantization errors);
- ``onnx``: the float network only (``model.onnx``).
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
    name: str
    passes: tuple[Pass, ...]
    lava_tag: Optional[str]  # Lava run-config tag, or None: no Lava run
    description: str


_TRUNK = (P.drop_dropout, P.fold_batchnorm, P.tcja_to_gate, P.maxpool_to_or, P.avgpool_fold, P.lif_to_cuba)

TARGETS: dict[str, Target] = {
    "loihi2": Target("loihi2", _TRUNK + (P.quantize_loihi2,), "fixed_pt",
                     "Loihi 2 fixed point: NetX segments + gate processes (Lava fixed_pt simulator)"),
    "lava-float": Target("lava-float", _TRUNK, "floating_pt",
                         "the same graph in floating point on Lava's floating_pt models (debugging)"),
    "onnx": Target("onnx", (P.drop_dropout,), None, "the float network as ONNX only"),
}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UserError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}")
    return TARGETS[name]


def run_passes(target: Target, graph: g.Graph, calibration_x: Optional[torch.Tensor] = None,
               **quantize_options) -> g.Graph:
    """Apply the target's passes in order; ``quantize_loihi2`` is calibrated on ``calibration_x``
    [T, N, C, H, W] (run through the graph as it is just before quantization)."""
    for p in target.passes:
        if p is P.quantize_loihi2:
            calibration = None if calibration_x is None else P.calibrate(graph, calibration_x)
            graph = P.quantize_loihi2(graph, calibration, **quantize_options)
            if calibration is not None:
                graph.meta["calibration"] = {"samples": int(calibration_x.shape[1]), **calibration}
        else:
            graph = p(graph)
    return graph

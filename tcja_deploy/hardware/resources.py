"""Loihi 2 resources of a converted network: neurons, synapses, synaptic memory and cores per layer.

The per-core limits live in :data:`LOIHI2_LIMITS`, one table, each with its source and whether we
could check it. The core estimate is a lower bound on a real mapping: a layer needs at least
``max(⌈neurons / neurons_per_core⌉, ⌈synaptic bits / memory per core⌉)`` cores; the compiler's
partitioning (and the memory neuron state and routing tables take from the same SRAM) can need more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcja_deploy.hardware.activity import LayerActivity
from tcja_deploy.hardware.counters import fanout, layer_weight


@dataclass(frozen=True)
class Limit:
    value: float
    unit: str
    source: str
    verified: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"value": self.value, "unit": self.unit, "source": self.source, "verified": self.verified,
                "note": self.note}


_BRIEF = "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief, 2021"

#: Loihi 2 limits. ``verified`` is False where we could not check the figure against the primary source.
LOIHI2_LIMITS: dict[str, Limit] = {
    "cores_per_chip": Limit(128, "neuro cores", _BRIEF, True, "also 6 embedded x86 (Lakemont) cores"),
    "neurons_per_core": Limit(8192, "neurons", _BRIEF, False, "up to 1 M neurons per chip / 128 cores"),
    "synaptic_memory_bytes_per_core": Limit(131072, "bytes", _BRIEF, False,
                                            "128 kB of SRAM per core, shared (flexibly partitioned) with "
                                            "neuron state and routing: an upper bound for synapses"),
    "synapses_per_chip": Limit(120_000_000, "synapses", _BRIEF, False, "up to 120 M synapses per chip"),
    "weight_bits": Limit(8, "bit", "NetX/slayer export for Loihi 2 (docs/DESIGN.md §3)", True,
                         "weights as exported; Loihi 2 supports other widths"),
}


def limit(key: str) -> float:
    return float(LOIHI2_LIMITS[key].value)


@dataclass
class LayerResources:
    """Loihi 2 resources of one layer.

    Attributes:
        neurons: neurons on the neuro cores (a host gate: 0, it runs off them; a neuro-core gate: its
            sub-network's).
        synapses: non-zero connections into the layer (every output position of a conv).
        weights: non-zero distinct weights (a conv's kernel entries; a dense layer's matrix).
        synaptic_memory_bits: synapses × weight bits (no weight sharing: an upper bound for convs).
        cores: estimated neuro cores, ≥ 1 for a layer with neurons.
    """

    name: str
    kind: str
    neurons: int
    synapses: int
    weights: int
    synaptic_memory_bits: int
    cores: int

    def to_dict(self) -> dict:
        return {"neurons": self.neurons, "synapses": self.synapses, "weights": self.weights,
                "synaptic_memory_bits": self.synaptic_memory_bits, "cores": self.cores}


def layer_resources(layer: LayerActivity) -> LayerResources:
    """Neurons, synapses, synaptic memory and cores of one layer."""
    if layer.kind == "gate":
        if layer.gate is None or layer.gate.placement != "neurocore" or layer.gate_params is None:
            return LayerResources(layer.name, layer.kind, 0, 0, 0, 0, 0)  # a host process: no neuro cores
        return _neurocore_gate_resources(layer)
    neurons = int(math.prod(int(v) for v in layer.out_shape))
    fan = fanout(layer)
    synapses = 0 if fan is None else int(fan.sum())
    w = layer_weight(layer)
    weights = 0 if w is None else int((w != 0).sum())
    bits = synapses * int(limit("weight_bits"))
    cores_neurons = math.ceil(neurons / limit("neurons_per_core"))
    cores_memory = math.ceil(bits / (limit("synaptic_memory_bytes_per_core") * 8))
    cores = max(cores_neurons, cores_memory, 1 if neurons else 0)
    return LayerResources(layer.name, layer.kind, neurons, synapses, weights, bits, cores)


def _neurocore_gate_resources(layer: LayerActivity) -> LayerResources:
    """A neuro-core gate: the neurons and synapses of its sub-network; each stage's population is placed on
    its own cores (a lower bound, like the trunk's)."""
    from tcja_deploy.conversion import neurocore_gate as NC

    ng = NC.NeurocoreGate.from_arrays(layer.gate_params)
    parts = NC.structure(ng, int(math.prod(int(v) for v in layer.out_shape)))
    neurons = sum(p["neurons"] for p in parts.values())
    synapses = sum(p["synapses"] for p in parts.values())
    bits = synapses * int(limit("weight_bits"))
    return LayerResources(layer.name, layer.kind, neurons, synapses, synapses, bits, stage_cores(parts))


def stage_cores(parts: dict[str, dict[str, int]]) -> int:
    """Cores of a neuro-core gate: each stage's population on cores of its own (the trunk's lower bound)."""
    return sum(max(math.ceil(p["neurons"] / limit("neurons_per_core")),
                   math.ceil(p["synapses"] * limit("weight_bits") / (limit("synaptic_memory_bytes_per_core") * 8)), 1)
               for p in parts.values())


def network_resources(layers: list[LayerActivity]) -> dict:
    """Per layer and total; total includes the chips needed (⌈cores / cores per chip⌉)."""
    per = [layer_resources(l) for l in layers]
    total = {k: sum(getattr(r, k) for r in per) for k in ("neurons", "synapses", "weights",
                                                          "synaptic_memory_bits", "cores")}
    total["chips"] = math.ceil(total["cores"] / limit("cores_per_chip")) if total["cores"] else 0
    total["synapses_fit_one_chip"] = total["synapses"] <= limit("synapses_per_chip")
    from tcja_deploy.hardware.partition import partition

    parts = partition(per)
    total["chips_partitioned"] = parts["chips"]  # whole layers packed onto chips: ≥ chips
    return {"layers": per, "total": total, "limits": {k: v.to_dict() for k, v in LOIHI2_LIMITS.items()},
            "partition": parts}

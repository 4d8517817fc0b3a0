"""Where the TCJA gates run: neuro cores (standard Lava processes) or the host, side by side.

For every gate of a profiled network both placements are counted on the same activity: the placement
the deploy directory uses is what ran; the other is computed from the same squeezed spike counts (the
neuro-core sub-network's events exactly, :func:`tcja_deploy.conversion.neurocore_gate.events`; the
host's arithmetic, :func:`tcja_deploy.hardware.counters.gate_ops`). What a host gate costs beyond its
arithmetic is one host round trip per time step, in lock-step with the chip; we have no energy figure
for it, so its time is reported (a cited measurement of a comparable setup) and its energy is not.
"""

from __future__ import annotations

import numpy as np

from tcja_deploy.conversion import gate_math
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.hardware.activity import LayerActivity
from tcja_deploy.hardware.counters import LayerCounts, gate_ops, neurocore_gate_counts
from tcja_deploy.hardware.resources import stage_cores

PLACEMENTS = ("neurocore", "host")

#: Time per step of a network on Loihi 2 with and without a Python process on the host in the loop.
HOST_ROUND_TRIP = {
    "with_host_process_s_per_step": 1.0 / 16.9,
    "chip_only_s_per_step": 150e-6,
    "source": "lava-dl tutorials/lava/lib/dl/netx/pilotnet_sdnn/benchmark.ipynb: PilotNet SDNN on Loihi 2, "
              "16.9 frames/s at one step per frame with a Python input process ('bottlenecked by the "
              "communication of input frames'), about 150 µs per step without host I/O",
    "status": "cited, not measured here; the energy of the round trip is not estimated",
}


def neurocore_of(layer: LayerActivity) -> NC.NeurocoreGate:
    """The gate's neuro-core stages: those it was converted to, or (a host gate) the rewrite of its float
    weights."""
    if layer.gate.placement == "neurocore":
        return NC.NeurocoreGate.from_arrays(layer.gate_params)
    return NC.quantize_neurocore(gate_math.QuantizedGate.from_arrays(layer.gate_params).params)


def skew(layer: LayerActivity) -> int:
    """1 when the gate squeezes the unpooled spikes (one OR-pool hop ahead of what it scales), else 0."""
    return 0 if layer.gate.squeeze_from is None else 1


def gate_placements(layer: LayerActivity, counts: LayerCounts, squeeze_events: np.ndarray) -> dict:
    """Per-sample counts and the structure of one gate under each placement.

    Returns {placement: {"counts": {COUNT_KEYS subset → [N]}, "neurons", "synapses", "cores",
    "latency_steps"}}.
    """
    g = layer.gate
    out_ev = counts.counts["spikes"]
    x_ev = counts.counts["input_events"]
    N = len(out_ev)
    host_ops = {k: np.broadcast_to(np.asarray(v, dtype=np.int64), (N,)).copy()
                for k, v in gate_ops(g, squeeze_events, out_ev).items()}
    host = {"counts": {**host_ops, "spikes": out_ev}, "neurons": 0, "synapses": 0, "cores": 0,
            "latency_steps": g.T if g.mode == "window" else 0}
    try:
        ng = neurocore_of(layer)
    except NC.GatePlacementError as e:
        return {"host": host, "neurocore": {"error": str(e)}}
    nc_counts, neurons, synapses = neurocore_gate_counts(ng, layer, x_ev, out_ev, squeeze_events, counts.steps)
    nc = {"counts": {**nc_counts, "spikes": out_ev}, "neurons": neurons, "synapses": synapses,
          "cores": stage_cores(NC.structure(ng, int(np.prod(layer.out_shape)))),
          "latency_steps": NC.latency_steps(g.mode, g.T, skew(layer))}
    return {"neurocore": nc, "host": host}

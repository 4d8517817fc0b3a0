"""The spiking VAE's decoder as a conversion graph, float and Loihi 2 fixed point (docs/DESIGN.md §13).

The decoder of :class:`~tcja_deploy.models.vae.SpikingVAE` (latent spikes z [T, N, L] → image [N, C, H, W]) in
the project's IR, node by node::

    input (L,)                                   the latent spike train z_t
    from_latent  linear → bn → lif               Linear → tdBN → LIF to hidden[−1]·2·2
    unflatten    (hidden[−1], 2, 2)
    dec<i>       conv_transpose2d → bn → lif     ConvT 3×3 s2 p1 op1 → tdBN → LIF  (i = 0 … depth−1)
    dec<i>.tcja  tcja                            when block dec<i> has TCJA
    output       image_readout                   ConvT 3×3 s1 p1, Σ_t 0.8^(T−1−t)·o_t, tanh (host)

tdBN in eval mode is the per-channel affine map of a BatchNorm whose weight is γ·α·V_th
(:class:`~tcja_deploy.models.vae.TimeBatchNorm`), so it is a ``batchnorm`` node and ``fold_batchnorm`` folds it.
The passes are the classifier's (``drop_dropout`` is a no-op here): ``fold_batchnorm``, ``tcja_to_gate``,
``lif_to_cuba``, then ``quantize_loihi2`` calibrated on latent spike trains; a transposed conv becomes a
``q_conv_transpose2d`` (one Lava ``Sparse``, :mod:`tcja_deploy.conversion.transposed`) and each gate a
neuro-core ``q_gate``.

The image readout stays on the host: it reads the output convolution's *membrane* (its synaptic sums, not
spikes) weighted over time and squashes it with tanh, neither of which a spiking neuron emits. Because that
convolution is linear, the host needs only the last block's gated payloads: it forms Σ_t 0.8^(T−1−t)·x_t and
runs the 3×3 transposed conv once per image.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import passes as P
from tcja_deploy.models.vae import OUTPUT_DECAY, SpikingVAE, TimeBatchNorm

#: The classifier passes that apply to the decoder, in order (the quantization is added by :func:`quantize_decoder`).
DECODER_PASSES = (P.fold_batchnorm, P.tcja_to_gate, P.lif_to_cuba)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _tdbn(bn: TimeBatchNorm) -> g.BatchNorm:
    """tdBN in eval mode as an inference BatchNorm: weight γ·α·V_th, the running statistics."""
    return g.BatchNorm(_np(bn.running_mean), _np(bn.running_var), _np(bn.weight.detach() * bn.scale), _np(bn.bias),
                       float(bn.eps))


def _lif(block) -> g.LIF:
    c = block.lif.config  # Norse parameters (docs/DESIGN.md §11: τ_syn = 1, τ_mem = 4/3, v_th = 0.15)
    return g.LIF(float(c.tau_mem), float(c.tau_syn), float(c.v_th))


def build_decoder_graph(model: SpikingVAE) -> g.Graph:
    """The float graph of ``model``'s decoder (eval-mode semantics: tdBN running statistics).

    Runs on latent spike trains [T, N, L] and returns images [N, C, H, W] (``image_readout`` is the last node).
    """
    cfg = model.config
    nodes: dict[str, g.Node] = {"input": g.Input((int(cfg.latent_dim),))}
    fl = model.from_latent
    nodes["from_latent"] = g.Linear(_np(fl.layer.weight), _np(fl.layer.bias))
    nodes["from_latent.bn"] = _tdbn(fl.bn)
    nodes["from_latent.lif"] = _lif(fl)
    nodes["unflatten"] = g.Unflatten((int(cfg.hidden[-1]), 2, 2))
    for i, block in enumerate(model.decoder):
        ct = block.layer
        nodes[f"dec{i}"] = g.ConvTranspose2d(_np(ct.weight), _np(ct.bias), stride=int(ct.stride[0]),
                                             padding=int(ct.padding[0]), output_padding=int(ct.output_padding[0]))
        nodes[f"dec{i}.bn"] = _tdbn(block.bn)
        nodes[f"dec{i}.lif"] = _lif(block)
        if block.tcja is not None:
            nodes[f"dec{i}.tcja"] = g.TCJA(_np(block.tcja.tla.weight), _np(block.tcja.cla.weight),
                                           bool(block.tcja.causal), gate_function=str(block.tcja.gate_function))
    out = model.output
    nodes["output"] = g.ImageReadout(_np(out.weight), _np(out.bias), stride=int(out.stride[0]),
                                     padding=int(out.padding[0]), output_padding=int(out.output_padding[0]),
                                     decay=OUTPUT_DECAY)
    meta = {"T": int(cfg.T), "preset": cfg.preset, "input_shape": [int(cfg.latent_dim)],
            "image_shape": [int(cfg.in_channels), int(cfg.image_size), int(cfg.image_size)], "passes": []}
    return g.Graph(nodes, meta)


def convert_decoder(model: SpikingVAE) -> g.Graph:
    """The decoder's float CUBA graph: :func:`build_decoder_graph` through :data:`DECODER_PASSES` (exact up to
    float rounding: the graph of ``lava-float``)."""
    graph = build_decoder_graph(model)
    for p in DECODER_PASSES:
        graph = p(graph)
    return graph


def quantize_decoder(float_graph: g.Graph, latents: Optional[torch.Tensor] = None,
                     gate_placement: str = "neurocore") -> g.Graph:
    """The Loihi 2 fixed-point decoder from its float CUBA graph, calibrated on latent spikes [T, N, L] (None:
    worst-case bounds); gates on neuro cores by default (``gate_placement="host"``: our Lava process)."""
    calibration = None if latents is None else P.calibrate(float_graph, latents)
    return P.quantize_loihi2(float_graph, calibration, gate_placement=gate_placement)


def decoder_layers(graph: g.Graph) -> list[str]:
    """The decoder's on-chip layer outputs to compare between emulator and Lava: every ``q_cuba_lif`` neuron and
    every ``q_gate``, in order."""
    return [n for n, node in graph.items() if isinstance(node, (g.QCubaLIF, g.QGate))]

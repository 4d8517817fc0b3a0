"""The spiking VAE's decoder and encoder as conversion graphs, float and Loihi 2 fixed point (docs/DESIGN.md §13).

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

The **encoder** of the model (``SpikingVAE.features``: images [N, C, H, W] → latent input x [T, N, L] spikes) is
the chain::

    input (2C, H, W)                             the image split by sign: [relu(img), relu(−img)], every step
    enc<i>       conv2d → bn → lif               Conv 3×3 s2 p1 → tdBN → LIF  (i = 0 … depth−1)
    enc<i>.tcja  tcja                            when block enc<i> has TCJA
    flatten
    to_latent    linear → bn → lif               Linear → tdBN → LIF to L features x_t

A Loihi 2 input payload is unsigned, and the images lie in [−1, 1]; the first conv therefore reads the image's
positive and negative parts as 2C channels with weights [w, −w] (conv(img) = conv(img⁺) − conv(img⁻), exact, also
at the zero-padded border, where a shifted image img + 1 would need a per-pixel bias). ``quantize_loihi2`` then
gives the input its graded payload (``q_input``, the classifier's image quantization: up to 8 bits, scale
max/(2^b − 1)). The same passes as the decoder's apply (:data:`VAE_PASSES`), calibrated on training images.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import passes as P
from tcja_deploy.models.vae import OUTPUT_DECAY, SpikingVAE, TimeBatchNorm

#: The classifier passes that apply to the decoder and the encoder, in order (the quantization is added by
#: :func:`quantize_decoder` / :func:`quantize_encoder`).
VAE_PASSES = (P.fold_batchnorm, P.tcja_to_gate, P.lif_to_cuba)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _tdbn(bn: TimeBatchNorm) -> g.BatchNorm:
    """tdBN in eval mode as an inference BatchNorm: weight γ·α·V_th, the running statistics."""
    return g.BatchNorm(_np(bn.running_mean), _np(bn.running_var), _np(bn.weight.detach() * bn.scale), _np(bn.bias),
                       float(bn.eps))


def _lif(block) -> g.LIF:
    c = block.lif.config  # Norse parameters (docs/DESIGN.md §11: τ_syn = 1, τ_mem = 4/3, v_th = 0.15)
    return g.LIF(float(c.tau_mem), float(c.tau_syn), float(c.v_th))


def _tcja(block) -> g.TCJA:
    """The TCJA node of a block that has one."""
    t = block.tcja
    return g.TCJA(_np(t.tla.weight), _np(t.cla.weight), bool(t.causal), gate_function=str(t.gate_function))


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
            nodes[f"dec{i}.tcja"] = _tcja(block)
    out = model.output
    nodes["output"] = g.ImageReadout(_np(out.weight), _np(out.bias), stride=int(out.stride[0]),
                                     padding=int(out.padding[0]), output_padding=int(out.output_padding[0]),
                                     decay=OUTPUT_DECAY)
    meta = {"T": int(cfg.T), "preset": cfg.preset, "input_shape": [int(cfg.latent_dim)],
            "image_shape": [int(cfg.in_channels), int(cfg.image_size), int(cfg.image_size)], "passes": []}
    return g.Graph(nodes, meta)


def _float_cuba(graph: g.Graph) -> g.Graph:
    """``graph`` through :data:`VAE_PASSES` (exact up to float rounding)."""
    for p in VAE_PASSES:
        graph = p(graph)
    return graph


def convert_decoder(model: SpikingVAE) -> g.Graph:
    """The decoder's float CUBA graph: :func:`build_decoder_graph` through :data:`VAE_PASSES` (exact up to
    float rounding: the graph of ``lava-float``)."""
    return _float_cuba(build_decoder_graph(model))


def quantize_decoder(float_graph: g.Graph, latents: Optional[torch.Tensor] = None,
                     gate_placement: str = "neurocore") -> g.Graph:
    """The Loihi 2 fixed-point graph from a float CUBA graph, calibrated on its inputs [T, N, ...] (the decoder's
    latent spikes; None: worst-case bounds); gates on neuro cores by default (``gate_placement="host"``: our Lava
    process)."""
    calibration = None if latents is None else P.calibrate(float_graph, latents)
    return P.quantize_loihi2(float_graph, calibration, gate_placement=gate_placement)


def encoder_input(images: torch.Tensor, T: int) -> torch.Tensor:
    """The encoder graph's input [T, N, 2C, H, W] of images [N, C, H, W]: [relu(img), relu(−img)] along the
    channels, the same at each of the T steps (a view over time, in the images' dtype)."""
    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    split = torch.cat([images.clamp(min=0), (-images).clamp(min=0)], dim=1)
    return split.unsqueeze(0).expand(int(T), *split.shape)


def build_encoder_graph(model: SpikingVAE) -> g.Graph:
    """The float graph of ``model``'s encoder (eval-mode semantics: tdBN running statistics).

    Runs on :func:`encoder_input` [T, N, 2C, H, W] and returns the latent input x [T, N, L] (spikes of the last
    node, ``to_latent.lif``); equals ``model.features`` up to float rounding."""
    cfg = model.config
    c = int(cfg.in_channels)
    nodes: dict[str, g.Node] = {"input": g.Input((2 * c, int(cfg.image_size), int(cfg.image_size)))}
    for i, block in enumerate(model.encoder):
        conv = block.layer
        w = _np(conv.weight)
        if i == 0:  # the sign-split input: conv(img) = conv_w(img⁺) + conv_{−w}(img⁻)
            w = np.concatenate([w, -w], axis=1)
        nodes[f"enc{i}"] = g.Conv2d(w, None if conv.bias is None else _np(conv.bias), stride=int(conv.stride[0]),
                                    padding=int(conv.padding[0]))
        nodes[f"enc{i}.bn"] = _tdbn(block.bn)
        nodes[f"enc{i}.lif"] = _lif(block)
        if block.tcja is not None:
            nodes[f"enc{i}.tcja"] = _tcja(block)
    nodes["flatten"] = g.Flatten()
    tl = model.to_latent
    nodes["to_latent"] = g.Linear(_np(tl.layer.weight), _np(tl.layer.bias))
    nodes["to_latent.bn"] = _tdbn(tl.bn)
    nodes["to_latent.lif"] = _lif(tl)
    meta = {"T": int(cfg.T), "preset": cfg.preset, "input_shape": [2 * c, int(cfg.image_size), int(cfg.image_size)],
            "image_shape": [c, int(cfg.image_size), int(cfg.image_size)], "latent_dim": int(cfg.latent_dim),
            "input_encoding": "sign split: channels [relu(image), relu(-image)], the same image at every step",
            "passes": []}
    return g.Graph(nodes, meta)


def convert_encoder(model: SpikingVAE) -> g.Graph:
    """The encoder's float CUBA graph: :func:`build_encoder_graph` through :data:`VAE_PASSES`."""
    return _float_cuba(build_encoder_graph(model))


def quantize_encoder(float_graph: g.Graph, images: Optional[torch.Tensor] = None,
                     gate_placement: str = "neurocore") -> g.Graph:
    """The Loihi 2 fixed-point encoder from its float CUBA graph, calibrated on images [N, C, H, W] in [−1, 1]
    (None: worst-case bounds and binary input — only for tests of the structure)."""
    x = None if images is None else encoder_input(images, int(float_graph.meta["T"]))
    return quantize_decoder(float_graph, x, gate_placement)


def chip_layers(graph: g.Graph) -> list[str]:
    """The on-chip layer outputs of a fixed-point decoder or encoder graph to compare between emulator and Lava:
    every ``q_cuba_lif`` neuron and every ``q_gate``, in order."""
    return [n for n, node in graph.items() if isinstance(node, (g.QCubaLIF, g.QGate))]

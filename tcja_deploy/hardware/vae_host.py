"""What the spiking VAE leaves on the host, counted per image, and what it costs (docs/DESIGN.md §13).

Three parts of generation and reconstruction do not run on neuro cores:

- the **prior** (sampling a latent spike train): three Linear → tdBN → LIF layers of widths L → 2L → 4L → k·L and,
  at each step, one of the k candidate spikes of each latent chosen uniformly at random, fed back as the next
  step's input. Lava 0.10 offers no random source in its bit-accurate (``fixed_pt``) process models, so the whole
  prior runs on the host and the chip receives the finished train z [T, L] (one transfer per image, T·L bits).
  Counted as the prior streams it: each layer once per step (the model recomputes the prefix each step; the
  result is the same because every layer is causal and tdBN is a per-step affine map at inference);
- the **image readout** Σ_t 0.8^(T−1−t)·x_t, one transposed conv and tanh (:class:`~tcja_deploy.conversion.graph.ImageReadout`);
- for a reconstruction, the **encoder** and the posterior (the encoder is not converted; counted from the
  model's Conv2d and Linear layers and the posterior's three layers, streamed like the prior).

Counts use the equivalent-ANN keys of :mod:`tcja_deploy.hardware.ann_baseline` (``macs``, ``activations``,
``weights``, ``inputs``, ``outputs``) so that :func:`host_energy` charges them with the same functions as the ANN
baseline (45 nm fp32 or int8, ideal reuse): a lower bound for a host CPU. Random draws and the transfer to the chip
are counted, not charged (no cited energy figure).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from tcja_deploy.conversion.vae_deploy import HOST_COUNT_KEYS
from tcja_deploy.hardware import energy as E

#: The count keys of a host part (a subset of ann_baseline.ANN_KEYS; the prior and encoder add their extras).
HOST_KEYS = HOST_COUNT_KEYS


def mlp_counts(widths: tuple[int, ...], T: int) -> dict[str, int]:
    """Counts of Linear layers widths[0] → widths[1] → … run once per step for T steps (per image): MACs
    T·Σ a·b, activations (neuron updates) T·Σ b, weights Σ a·b read once, inputs T·Σ a, outputs T·Σ b."""
    pairs = list(zip(widths[:-1], widths[1:]))
    return {"macs": T * sum(a * b for a, b in pairs), "activations": T * sum(b for _, b in pairs),
            "weights": sum(a * b for a, b in pairs), "inputs": T * sum(a for a, _ in pairs),
            "outputs": T * sum(b for _, b in pairs)}


def prior_counts(latent_dim: int, k: int, T: int) -> dict[str, int]:
    """The prior per generated image: :func:`mlp_counts` of L → 2L → 4L → k·L over T steps, plus
    ``random_draws`` T·L uniform choices among k, ``random_bits`` T·L·⌈log2 k⌉ and ``bits_to_chip`` T·L."""
    L = int(latent_dim)
    c = mlp_counts((L, 2 * L, 4 * L, int(k) * L), int(T))
    c.update(random_draws=T * L, random_bits=T * L * max(1, math.ceil(math.log2(k))), bits_to_chip=T * L)
    return c


def readout_counts(in_shape: tuple[int, int, int], out_shape: tuple[int, int, int], kernel: int, T: int
                   ) -> dict[str, int]:
    """The host image readout per image: T·Ci·H·W MACs of the time-weighted sum, Ci·H·W·Co·k² MACs of the
    transposed conv (every input pixel through every tap), one tanh per output pixel (``activations``)."""
    ci, h, w = (int(v) for v in in_shape)
    co, ho, wo = (int(v) for v in out_shape)
    return {"macs": T * ci * h * w + ci * h * w * co * kernel * kernel, "activations": co * ho * wo,
            "weights": ci * co * kernel * kernel, "inputs": T * ci * h * w, "outputs": co * ho * wo}


def encoder_counts(model) -> dict[str, int]:
    """The encoder (Conv2d and Linear layers, counted on one image with forward hooks: each output element is
    C_in/groups·k² or in_features MACs and one activation, over the T steps) plus the posterior streamed like the
    prior (:func:`mlp_counts` of 2L → 2L → 4L → k·L), per reconstructed image."""
    import torch
    from torch import nn

    c = model.config
    total = dict.fromkeys(HOST_KEYS, 0)

    def hook(mod, inp, out):
        n = int(out.numel())
        per = (mod.in_channels // mod.groups) * math.prod(mod.kernel_size) if isinstance(mod, nn.Conv2d) \
            else mod.in_features
        total["macs"] += n * per
        total["activations"] += n
        total["weights"] += int(mod.weight.numel())
        total["inputs"] += int(inp[0].numel())
        total["outputs"] += n

    handles = [m.register_forward_hook(hook) for m in [*model.encoder.modules(), *model.to_latent.modules()]
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.features(torch.zeros(1, c.in_channels, c.image_size, c.image_size,
                                       device=model.output.weight.device))
    finally:
        for h in handles:
            h.remove()
    L = int(c.latent_dim)
    post = mlp_counts((2 * L, 2 * L, 4 * L, int(c.k) * L), int(c.T))
    out = {k: int(total[k] + post[k]) for k in HOST_KEYS}
    out.update(random_draws=int(c.T) * L, random_bits=int(c.T) * L * max(1, math.ceil(math.log2(c.k))),
               bits_to_chip=int(c.T) * L)
    return out


def host_energy(counts: Mapping[str, float], cmos: E.EnergyProfile) -> dict[str, float]:
    """{"fp32", "int8"} pJ of a host part's counts, charged like the equivalent ANN
    (:func:`~tcja_deploy.hardware.energy.ann_cmos_energy`, :func:`~tcja_deploy.hardware.energy.ann_int8_energy`)."""
    ann = {k: float(counts.get(k, 0)) for k in ("macs", "activations", "weights", "inputs", "outputs",
                                                "compares", "gate_adds", "gate_macs", "gate_mults", "gate_lookups")}
    return {"fp32": float(np.sum(E.total(E.ann_cmos_energy(ann, cmos)))),
            "int8": float(np.sum(E.total(E.ann_int8_energy(ann, cmos))))}

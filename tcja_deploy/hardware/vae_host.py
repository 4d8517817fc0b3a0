"""What the spiking VAE leaves on the host, counted per image, and what it costs (docs/DESIGN.md §13).

On neuro cores: the encoder (reconstruction) and the decoder. On the host:

- the **prior** (sampling a latent spike train, generation) and the **posterior** (reconstruction): each three
  Linear → tdBN → LIF layers ending in k candidate spikes per latent, of which one, picked uniformly at random, is
  z_t. Both are autoregressive: z_t is picked from candidates computed from z_{t−1} (the posterior also reads the
  encoder's x_t), and z_t is the next step's input. On the chip that loop z_{t−1} → three synaptic hops →
  candidates → pick → z_t would take at least 4 Lava steps, because every Dense or Sparse synapse delivers in step
  t what it received in step t − 1 (its ``run_spk`` sends the activation buffered the step before, then computes
  the new one from this step's input: ``lava/proc/dense/models.py``, ``lava/proc/sparse/models.py``). The chip
  cannot close it once per time step; spreading one model step over 4 or more chip steps would let the layers'
  neurons decay in the idle steps (v keeps 3072/4096 of itself every step, FSVAE's leak) and compute another
  function than the trained model. The random choice itself is not the obstacle — it does not depend on the
  network state, so the host could stream the k-way choices to the chip ahead of time — the loop latency is.
  So the prior and the posterior run on the host, streamed one step per layer (the model recomputes the prefix
  each step; the result is the same because every layer is causal and tdBN is a per-step affine map at inference);
  the chip receives the finished train z [T, L] (T·L bits) and, for a reconstruction, sends the encoder's spikes
  x [T, L] up (T·L bits);
- the **image readout** Σ_t 0.8^(T−1−t)·x_t, one transposed conv and tanh
  (:class:`~tcja_deploy.conversion.graph.ImageReadout`); it receives the last block's gated payloads from the chip;
- for a reconstruction, the **image input**: the image split by sign into graded payloads and sent to the chip at
  every step (the encoder's ``q_input``).

Counts use the equivalent-ANN keys of :mod:`tcja_deploy.hardware.ann_baseline` (``macs``, ``activations``,
``weights``, ``inputs``, ``outputs``) so that :func:`host_energy` charges them with the same functions as the ANN
baseline (45 nm fp32 or int8, ideal reuse): a lower bound for a host CPU. The extras are charged per bit:
``random_bits`` at ``prng_bit_pj`` (a software xorshift32 priced with Horowitz's 32-bit integer add) and
``bits_to_chip`` + ``bits_from_chip`` at ``offchip_bit_pj`` (Horowitz's DRAM access per bit, a proxy for the
host–chip link), both derived in :func:`tcja_deploy.hardware.energy.derived_constants`.
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


def _random_counts(latent_dim: int, k: int, T: int) -> dict[str, int]:
    """T·L uniform choices among k candidates and the T·L·⌈log2 k⌉ random bits they need at least (rejection
    sampling of a non-power-of-two k draws more on average: a lower bound)."""
    return {"random_draws": T * latent_dim, "random_bits": T * latent_dim * max(1, math.ceil(math.log2(k)))}


def prior_counts(latent_dim: int, k: int, T: int) -> dict[str, int]:
    """The prior per generated image: :func:`mlp_counts` of L → 2L → 4L → k·L over T steps, plus
    ``random_draws`` T·L uniform choices among k, ``random_bits`` T·L·⌈log2 k⌉ and ``bits_to_chip`` T·L (z)."""
    L = int(latent_dim)
    c = mlp_counts((L, 2 * L, 4 * L, int(k) * L), int(T))
    c.update(_random_counts(L, int(k), int(T)), bits_to_chip=T * L)
    return c


def posterior_counts(latent_dim: int, k: int, T: int) -> dict[str, int]:
    """The posterior per reconstruction: :func:`mlp_counts` of 2L → 2L → 4L → k·L over T steps (it reads
    [x_t, z_{t−1}]), the random draws as the prior's, ``bits_from_chip`` T·L (the encoder's x) and ``bits_to_chip``
    T·L (z to the decoder)."""
    L = int(latent_dim)
    c = mlp_counts((2 * L, 2 * L, 4 * L, int(k) * L), int(T))
    c.update(_random_counts(L, int(k), int(T)), bits_to_chip=T * L, bits_from_chip=T * L)
    return c


def image_input_counts(image_shape: tuple[int, int, int], payload_bits: int, T: int) -> dict[str, int]:
    """The encoder's input per reconstruction: each of the C·H·W pixels split by sign and quantized once
    (``activations``), and sent at each of the T steps as its payload plus one bit naming its sign channel
    (``bits_to_chip`` T·C·H·W·(payload_bits + 1): dense frames, an upper bound for an event interface that skips
    zero payloads)."""
    n = int(np.prod(image_shape))
    return {"macs": 0, "activations": n, "weights": 0, "inputs": n, "outputs": n,
            "bits_to_chip": int(T) * n * (int(payload_bits) + 1)}


def readout_counts(in_shape: tuple[int, int, int], out_shape: tuple[int, int, int], kernel: int, T: int,
                   payload_bits: int = 0) -> dict[str, int]:
    """The host image readout per image: T·Ci·H·W MACs of the time-weighted sum, Ci·H·W·Co·k² MACs of the
    transposed conv (every input pixel through every tap), one tanh per output pixel (``activations``), and
    ``bits_from_chip`` T·Ci·H·W·max(payload_bits, 1): the last block's payloads of every step, dense (an upper
    bound for an event interface)."""
    ci, h, w = (int(v) for v in in_shape)
    co, ho, wo = (int(v) for v in out_shape)
    return {"macs": T * ci * h * w + ci * h * w * co * kernel * kernel, "activations": co * ho * wo,
            "weights": ci * co * kernel * kernel, "inputs": T * ci * h * w, "outputs": co * ho * wo,
            "bits_from_chip": T * ci * h * w * max(int(payload_bits), 1)}


def host_energy(counts: Mapping[str, float], cmos: E.EnergyProfile) -> dict[str, float]:
    """pJ of a host part's counts: ``random_bits`` (random_bits · prng_bit_pj), ``transfer`` ((bits_to_chip +
    bits_from_chip) · offchip_bit_pj), and ``fp32`` / ``int8``: the arithmetic charged like the equivalent ANN
    (:func:`~tcja_deploy.hardware.energy.ann_cmos_energy`, :func:`~tcja_deploy.hardware.energy.ann_int8_energy`)
    plus both."""
    ann = {k: float(counts.get(k, 0)) for k in ("macs", "activations", "weights", "inputs", "outputs",
                                                "compares", "gate_adds", "gate_macs", "gate_mults", "gate_lookups")}
    d = E.derived_constants(cmos)
    rnd = float(counts.get("random_bits", 0)) * d["prng_bit_pj"].value
    transfer = float(counts.get("bits_to_chip", 0) + counts.get("bits_from_chip", 0)) * d["offchip_bit_pj"].value
    return {"fp32": float(np.sum(E.total(E.ann_cmos_energy(ann, cmos)))) + rnd + transfer,
            "int8": float(np.sum(E.total(E.ann_int8_energy(ann, cmos)))) + rnd + transfer,
            "random_bits": rnd, "transfer": transfer}

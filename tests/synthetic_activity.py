"""Hand-built NetworkActivity objects for the counter, energy, report and CLI tests (no conversion stage)."""

from __future__ import annotations

import numpy as np

from tcja_deploy.hardware.activity import GateGeometry, LayerActivity, NetworkActivity


def small_network(N: int = 3, T: int = 4, seed: int = 0) -> NetworkActivity:
    """conv (2→3, 3×3, stride 2, padding 1, some zero weights) → OR pool 2 → window gate → dense 12→5.

    Spikes are random. The gate moved past the pool, as the conversion does it: it squeezes the conv's
    unpooled spikes (``squeeze_from``) and scales the pooled ones; its output is graded (4-bit payload),
    so the dense layer sees graded input.
    """
    rng = np.random.default_rng(seed)
    w_conv = rng.integers(-3, 4, size=(3, 2, 3, 3)).astype(np.float32)
    w_conv[0, 1] = 0.0  # a whole kernel slice of zeros: no synapses
    x = (rng.random((T, N, 2, 8, 8)) < 0.3).astype(np.float32)
    conv_out = (rng.random((T, N, 3, 4, 4)) < 0.25).astype(np.float32)
    pool_out = conv_out.reshape(T, N, 3, 2, 2, 2, 2).max(axis=(4, 6))
    gate = rng.integers(1, 16, size=(T, N, 3, 1, 1)) / 16.0
    gate_out = (pool_out * gate).astype(np.float32)
    w_fc = rng.integers(-2, 3, size=(5, 12)).astype(np.float32)
    fc_out = (rng.random((T, N, 5)) < 0.4).astype(np.float32)
    layers = [
        LayerActivity("seg0.conv0", "conv", (2, 8, 8), (3, 4, 4), x, conv_out, weight=w_conv, stride=2, padding=1),
        LayerActivity("seg0.pool0", "pool", (3, 4, 4), (3, 2, 2), conv_out, pool_out, weight=None, stride=2),
        LayerActivity("gate0", "gate", (3, 2, 2), (3, 2, 2), pool_out, gate_out, output_payload_bits=4,
                      gate=GateGeometry(T=T, C=3, H=4, W=4, kernel_tla=2, kernel_cla=2, mode="window",
                                        squeeze_from="seg0.conv0"),
                      latency_steps=T),
        LayerActivity("seg1.fc0", "dense", (12,), (5,), gate_out.reshape(T, N, 12), fc_out, weight=w_fc,
                      input_payload_bits=4),
    ]
    scores = fc_out.sum(axis=0)
    labels = scores.argmax(axis=1)
    labels[-1] = (labels[-1] + 1) % 5  # one wrong answer
    return NetworkActivity(layers=layers, scores=scores, labels=labels, steps=T + 3 + T, backend="synthetic")


def two_layer_network() -> NetworkActivity:
    """Dense 3→2→2, T = 2, one sample, spikes chosen so that every count is easy to do by hand.

    Layer A: weights [[1, 0, 2], [0, 3, 0]] (fan-out 1 per input); inputs t0 [1, 1, 0], t1 [0, 0, 1]
    → 3 SynOps; output t0 [1, 0] → 1 spike; 2 neurons × 2 steps = 4 updates, 1 active.
    Layer B: weights [[1, 1], [1, 0]] (fan-out [2, 1]); input = A's output → 2 SynOps; output t1 [0, 1]
    → 1 spike; 4 updates, 1 active.
    """
    x = np.array([[[1, 1, 0]], [[0, 0, 1]]], dtype=np.float32)  # [T=2, N=1, 3]
    a_out = np.array([[[1, 0]], [[0, 0]]], dtype=np.float32)
    b_out = np.array([[[0, 0]], [[0, 1]]], dtype=np.float32)
    layers = [
        LayerActivity("A", "dense", (3,), (2,), x, a_out, weight=np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32)),
        LayerActivity("B", "dense", (2,), (2,), a_out, b_out, weight=np.array([[1, 1], [1, 0]], dtype=np.float32)),
    ]
    return NetworkActivity(layers=layers, scores=b_out.sum(axis=0), labels=np.array([1]), steps=2, backend="synthetic")


class SyntheticBackend:
    """A Backend that ignores the frames and returns :func:`small_network` activity for the batch.

    ``interrupt_after``: raise KeyboardInterrupt on that call (0-based), as a Ctrl-C would.
    """

    name = "synthetic"
    chunk_size = 2
    default_samples = None

    def __init__(self, interrupt_after: int | None = None):
        self.calls = 0
        self.interrupt_after = interrupt_after

    def files(self, deploy):
        return []

    def run(self, deploy, frames, labels):
        if self.interrupt_after is not None and self.calls == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        T, N = frames.shape[:2]
        return small_network(N=N, T=T, seed=self.calls)


def synthetic_batches(samples: int, chunk: int, T: int = 4):
    """(frames [T, n, 2, 8, 8], labels [n]) chunks, like profiling.load_test_samples."""
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        yield np.zeros((T, n, 2, 8, 8), dtype=np.float32), np.arange(start, start + n) % 5

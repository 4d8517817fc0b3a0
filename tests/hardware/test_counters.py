"""Counting: SynOps against brute force (conv with stride and padding, dense, pool, graded), gate arithmetic,
neuron updates, firing rates, latency, Loihi 2 resources, the equivalent ANN."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthetic_activity import small_network, two_layer_network
from tcja_deploy.hardware.activity import GateGeometry, LayerActivity
from tcja_deploy.hardware.ann_baseline import ann_counts, ann_layer_counts
from tcja_deploy.hardware.counters import (
    conv_fanout_map, count_layer, count_network, dense_fanout, gate_ops, synops_per_sample,
    valid_taps,
)
from tcja_deploy.hardware.resources import LOIHI2_LIMITS, layer_resources, network_resources


def brute_force_conv_synops(events: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Σ over steps, outputs, kernel taps of mask × the input event under the tap; events [T, N, C, H, W] → [N]."""
    T, N, C, H, W = events.shape
    Co, Ci, kh, kw = weight.shape
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros(N, dtype=np.int64)
    for n in range(N):
        for co in range(Co):
            for oy in range(Ho):
                for ox in range(Wo):
                    for ci in range(Ci):
                        for ky in range(kh):
                            for kx in range(kw):
                                if weight[co, ci, ky, kx] == 0:
                                    continue  # a synapse with weight 0 is not a synapse
                                y, x = oy * stride - padding + ky, ox * stride - padding + kx
                                if 0 <= y < H and 0 <= x < W:
                                    out[n] += int(events[:, n, ci, y, x].sum())
    return out


def brute_force_fanout(weight: np.ndarray, in_shape, stride: int, padding: int) -> np.ndarray:
    C, H, W = in_shape
    fan = np.zeros(in_shape, dtype=np.int64)
    for c in range(C):
        for y in range(H):
            for x in range(W):
                e = np.zeros((1, 1, C, H, W))
                e[0, 0, c, y, x] = 1
                fan[c, y, x] = brute_force_conv_synops(e, weight, stride, padding)[0]
    return fan


@pytest.mark.parametrize("H,W,k,stride,padding", [(7, 6, 3, 2, 1), (5, 5, 3, 1, 1), (8, 8, 2, 2, 0), (6, 7, 4, 3, 2)])
def test_conv_fanout_map_matches_brute_force(H, W, k, stride, padding):
    rng = np.random.default_rng(H * 100 + k)
    w = rng.integers(-2, 3, size=(3, 2, k, k)).astype(np.float32)  # about 1/5 zeros
    fan = conv_fanout_map(w, (2, H, W), stride, padding)
    assert np.array_equal(fan, brute_force_fanout(w, (2, H, W), stride, padding))


def test_conv_synops_stride2_padding1_zero_weights_match_brute_force():
    rng = np.random.default_rng(1)
    w = rng.integers(-2, 3, size=(4, 3, 3, 3)).astype(np.float32)
    w[1] = 0.0
    x = (rng.random((3, 2, 3, 7, 7)) < 0.4).astype(np.float32)
    layer = LayerActivity("c", "conv", (3, 7, 7), (4, 4, 4), x, np.zeros((3, 2, 4, 4, 4)), weight=w, stride=2, padding=1)
    expected = brute_force_conv_synops(x, w, 2, 1)
    assert np.array_equal(synops_per_sample(layer), expected)
    # and the same as summing a forward convolution of the events with the weight mask
    mask = torch.from_numpy((w != 0).astype(np.float64))
    fwd = F.conv2d(torch.from_numpy(x.astype(np.float64)).flatten(0, 1), mask, stride=2, padding=1)
    assert np.array_equal(expected, fwd.reshape(3, 2, -1).sum(dim=(0, 2)).numpy().astype(np.int64))


def test_edge_pixels_reach_fewer_outputs():
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    fan = conv_fanout_map(w, (1, 5, 5), stride=1, padding=1)
    assert fan[0, 2, 2] == 9 and fan[0, 0, 0] == 4 and fan[0, 0, 2] == 6
    fan2 = conv_fanout_map(w, (1, 5, 5), stride=2, padding=1)  # outputs at rows/cols -1..1, 1..3, 3..5
    assert fan2[0, 1, 1] == 4 and fan2[0, 2, 2] == 1 and fan2[0, 0, 0] == 1  # row 1 sits in two windows


def test_dense_synops_match_brute_force_and_count_zero_weights_out():
    rng = np.random.default_rng(2)
    w = rng.integers(-1, 2, size=(6, 10)).astype(np.float32)
    x = (rng.random((4, 3, 10)) < 0.5).astype(np.float32)
    layer = LayerActivity("d", "dense", (10,), (6,), x, np.zeros((4, 3, 6)), weight=w)
    brute = np.array([sum(int(x[t, n, i]) for t in range(4) for i in range(10) for o in range(6) if w[o, i] != 0)
                      for n in range(3)])
    assert np.array_equal(synops_per_sample(layer), brute)
    assert np.array_equal(dense_fanout(w), (w != 0).sum(axis=0))


def test_dense_flattens_conv_shaped_input():
    x = np.ones((2, 1, 2, 2, 2), dtype=np.float32)
    w = np.ones((3, 8), dtype=np.float32)
    layer = LayerActivity("d", "dense", (8,), (3,), x, np.zeros((2, 1, 3)), weight=w)
    assert synops_per_sample(layer).tolist() == [2 * 8 * 3]


def test_pool_without_weights_is_an_or_conv_and_floor_drops_the_last_row():
    x = np.ones((1, 1, 2, 3, 3), dtype=np.float32)
    layer = LayerActivity("p", "pool", (2, 3, 3), (2, 1, 1), x, np.zeros((1, 1, 2, 1, 1)), stride=2)
    # each channel: only the top-left 2×2 window exists; the last row and column reach nothing
    assert synops_per_sample(layer).tolist() == [2 * 4]
    assert brute_force_conv_synops(x, np.stack([np.eye(2)] * 4, -1).reshape(2, 2, 2, 2), 2, 0).tolist() == [8]


def test_graded_input_counts_one_synop_per_reached_synapse_and_messages_not_payloads():
    w = np.array([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]], dtype=np.float32)
    x = np.array([[[0.25, 0.0, 0.75]], [[0.5, 0.5, 0.0]]], dtype=np.float32)
    layer = LayerActivity("g", "dense", (3,), (2,), x, np.zeros((2, 1, 2)), weight=w, input_payload_bits=4)
    c = count_layer(layer)
    # messages: t0 {0, 2}, t1 {0, 1}; fan-out [2, 1, 1] → 2 + 1 + 2 + 1 = 6
    assert c.counts["input_events"].tolist() == [4]
    assert c.counts["synops"].tolist() == [6]
    assert c.counts["synops_graded"].tolist() == [6]


def test_binary_event_counts_above_one_count_as_that_many_spikes():
    w = np.ones((1, 2), dtype=np.float32)
    x = np.array([[[3.0, 0.0]]], dtype=np.float32)  # a DVS pixel with three events in one bin
    layer = LayerActivity("e", "dense", (2,), (1,), x, np.zeros((1, 1, 1)), weight=w)
    assert synops_per_sample(layer).tolist() == [3]


@pytest.mark.parametrize("L,k", [(8, 4), (1, 4), (5, 2), (10, 3), (3, 5)])
@pytest.mark.parametrize("causal", [False, True])
def test_valid_taps_equals_a_convolution_of_ones(L, k, causal):
    left = k - 1 if causal else (k - 1) // 2
    ones = F.pad(torch.ones(1, 1, L, dtype=torch.float64), (left, k - 1 - left))
    expected = F.conv1d(ones, torch.ones(1, 1, k, dtype=torch.float64)).sum().item()
    assert valid_taps(L, k, causal) == expected


def test_gate_ops_window_and_streaming():
    g = GateGeometry(T=4, C=3, H=2, W=2, kernel_tla=2, kernel_cla=2, mode="window")
    ops = gate_ops(g, squeeze_events=10, output_events=7)
    tla = 3 * 3 * valid_taps(4, 2)   # Conv1d C→C over T
    cla = 4 * 4 * valid_taps(3, 2)   # Conv1d T→T over C
    assert ops == {"gate_adds": 10, "gate_macs": tla + cla, "gate_mults": 12 + 7, "gate_lookups": 12}
    s = gate_ops(dataclasses.replace(g, mode="streaming"), squeeze_events=10, output_events=7)
    assert s["gate_macs"] == 3 * 3 * valid_taps(4, 2, causal=True) + (4 * 5 // 2) * valid_taps(3, 2)


def test_gate_layer_has_no_neurons_or_synapses_and_counts_graded_messages():
    net = small_network()
    c = count_network(net).layers[2]
    out = net.layers[2].output_spikes
    assert c.neurons == 0 and c.synapses == 0
    assert np.array_equal(c.counts["neuron_updates"], np.zeros(3))
    assert np.array_equal(c.counts["graded_messages"], (out != 0).sum(axis=(0, 2, 3, 4)))
    assert np.array_equal(c.counts["payload_bits"], 4 * c.counts["graded_messages"])
    # the gate squeezes the conv's unpooled spikes (squeeze_from) and scales the pooled ones
    unpooled = net.layers[0].output_spikes.sum(axis=(0, 2, 3, 4))
    assert np.array_equal(c.counts["gate_adds"], unpooled)
    assert np.array_equal(c.counts["gate_mults"], 4 * 3 + c.counts["graded_messages"])
    # without squeeze_from it squeezes its own input
    alone = count_layer(net.layers[2])
    assert np.array_equal(alone.counts["gate_adds"], net.layers[2].input_spikes.sum(axis=(0, 2, 3, 4)))


def test_gate_squeeze_from_must_name_an_earlier_layer():
    net = small_network()
    net.layers[2] = dataclasses.replace(net.layers[2], gate=dataclasses.replace(net.layers[2].gate,
                                                                                squeeze_from="seg1.fc0"))
    with pytest.raises(ValueError, match="squeeze_from"):
        count_network(net)


def test_neuron_updates_firing_rate_and_totals():
    net = small_network()
    counts = count_network(net)
    conv = counts.layers[0]
    y = net.layers[0].output_spikes
    assert conv.neurons == 48
    assert np.all(conv.counts["neuron_updates"] == 48 * 4)  # neurons × T
    assert np.array_equal(conv.counts["neuron_updates_active"], y.sum(axis=(0, 2, 3, 4)))
    assert np.allclose(conv.firing_rate, y.sum(axis=(0, 2, 3, 4)) / (48 * 4))
    assert np.array_equal(counts.total["synops"], sum(l.counts["synops"] for l in counts.layers))
    assert np.array_equal(counts.total["input_events"], net.layers[0].input_spikes.sum(axis=(0, 2, 3, 4)))
    assert np.array_equal(counts.correct, np.array([1.0, 1.0, 0.0]))


def test_latency_window_gate_adds_T():
    net = small_network(T=4)
    lat = count_network(net).latency
    assert lat["window_gate_steps"] == 4
    assert lat["pipeline_steps"] == 1 + 1 + 4 + 1
    assert lat["decision_steps"] == 4 + 7


def test_hand_counts_of_the_two_layer_net():
    c = count_network(two_layer_network())
    assert c.total["synops"].tolist() == [5]
    assert c.total["spikes"].tolist() == [2]
    assert c.total["neuron_updates"].tolist() == [8]
    assert c.total["neuron_updates_active"].tolist() == [2]


def test_resources_neurons_synapses_cores():
    net = small_network()
    r = layer_resources(net.layers[0])
    assert r.neurons == 48
    assert r.synapses == int(conv_fanout_map(net.layers[0].weight, (2, 8, 8), 2, 1).sum())
    assert r.synaptic_memory_bits == r.synapses * 8 and r.cores == 1
    assert layer_resources(net.layers[2]).cores == 0  # the gate runs off the neuro cores
    # neuron-limited: 20,000 neurons → 3 cores of 8,192
    big = LayerActivity("b", "dense", (4,), (20000,), np.zeros((1, 1, 4)), np.zeros((1, 1, 20000)),
                        weight=np.ones((20000, 4)))
    assert layer_resources(big).cores == 3
    # memory-limited: 2 M synapses × 8 bit = 16 Mbit over 1 Mbit per core → 16 cores
    wide = LayerActivity("w", "dense", (2000,), (1000,), np.zeros((1, 1, 2000)), np.zeros((1, 1, 1000)),
                         weight=np.ones((1000, 2000)))
    assert layer_resources(wide).cores == 16
    tot = network_resources(net.layers)["total"]
    assert tot["chips"] == 1 and tot["cores"] == sum(layer_resources(l).cores for l in net.layers)
    assert all(isinstance(v.source, str) and v.source for v in LOIHI2_LIMITS.values())


def test_ann_baseline_counts():
    net = small_network()
    per, tot = ann_counts(net.layers)
    assert per[0]["macs"] == 48 * 2 * 9 and per[0]["activations"] == 48
    assert per[1]["compares"] == 12 * 3 and per[1]["macs"] == 0
    assert per[3]["macs"] == 5 * 12
    g = per[2]
    assert g["gate_adds"] == 3 * 4 * 4 and g["gate_mults"] == 3 + 12 and g["gate_lookups"] == 3  # squeezes 3×4×4
    assert g["gate_macs"] == 3 * 3 * 1 + 1 * valid_taps(3, 2)  # T = 1: one TLA tap, one CLA row
    assert tot["macs"] == sum(p["macs"] for p in per)
    assert ann_layer_counts(net.layers[3])["outputs"] == 5


def test_predictions_break_ties_like_fidelity():
    from tcja_deploy.hardware.counters import accuracy_flags

    # equal spike counts whose float means differ in the last bit: the first class wins, as in fidelity.json
    scores = np.array([[np.mean([0.3, 0.2, 0.1]), np.mean([0.1, 0.2, 0.3])]])
    assert scores[0, 1] > scores[0, 0]
    correct, pred = accuracy_flags(scores, np.array([0]))
    assert pred[0] == 0 and correct[0] == 1.0

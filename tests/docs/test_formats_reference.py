"""docs/FORMATS.md §1 is complete: a numpy re-implementation written from it alone runs graph.json bit for bit.

The reference below reads the parsed JSON document only (``json.loads``) and implements each node type
as FORMATS.md §1.5–§1.7 specify it. It deliberately imports nothing of ``tcja_deploy``'s semantics
(execute / emulator / gate_math); the pipeline is used only to build the graphs and to produce the
outputs compared against (``tcja_deploy.conversion.execute.run_graph``). A mismatch means the document
is incomplete or wrong.
"""

from __future__ import annotations

import copy
import inspect
import json

import numpy as np
import pytest
import torch

from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.execute import predictions, run_graph
from tcja_deploy.conversion.graph import Graph
from tcja_deploy.conversion.targets import get_target, run_passes
from tcja_deploy.models import TCJASNN
from tiny import tiny_config, tiny_input, tiny_model
from tcja_deploy.models.specs import (LIF, AvgPool, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool,
                                      TCJAAttention, Vote)

# ============================================================================ the reference (FORMATS.md §1)
M23 = 1 << 23


def arr(d: dict) -> np.ndarray:
    """§1.2: an array object → numpy."""
    assert set(d) == {"dtype", "shape", "data"}
    return np.asarray(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def scalar(d: dict) -> int:
    a = arr(d)
    assert a.shape == ()
    return int(a)


def trunc_div4096(z: np.ndarray) -> np.ndarray:
    """trunc(z / 4096) = sign(z)·(|z| >> 12)."""
    return np.sign(z) * (np.abs(z) >> 12)


def conv2d_windows(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, groups: int,
                   dtype) -> np.ndarray:
    """§1.5 conv2d without bias on [T, N, Ci, H, W]: cross-correlation, zero padding, groups."""
    T, N, Ci, H, W = x.shape
    Co, cig, kh, kw = weight.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    xp = np.zeros((T, N, Ci, H + 2 * padding, W + 2 * padding), dtype)
    xp[..., padding:padding + H, padding:padding + W] = x
    out = np.zeros((T, N, Co, Ho, Wo), dtype)
    per_group = Co // groups
    for co in range(Co):
        g = co // per_group
        for ci in range(cig):
            for a in range(kh):
                for b in range(kw):
                    w = weight[co, ci, a, b]
                    if w == 0:
                        continue
                    out[:, :, co] += w * xp[:, :, g * cig + ci,
                                            a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride]
    return out


class Reference:
    """Runs a parsed graph.json document; ``stats`` counts the overflow rules that fired."""

    def __init__(self, doc: dict):
        assert doc["format"] == "tcja_deploy.graph/1"
        self.doc = doc
        names = [n["name"] for n in doc["nodes"]]
        chain = [[a, b] for a, b in zip(names[:-1], names[1:])]
        extra = [[n["squeeze_from"], n["name"]] for n in doc["nodes"] if n.get("squeeze_from")]
        assert doc["edges"] == chain + extra  # §1.1
        self.stats = {"conv_wrap": 0, "u_wrap": 0, "v_clip": 0, "lut_clip": 0, "codes": set()}

    # -- fixed-point nodes (§1.6)
    def q_input(self, nd, x):
        b = nd["payload_bits"]
        top = 1 if b == 0 else (1 << b) - 1
        return np.clip(np.round(x.astype(np.float64) / nd["scale"]), 0, top).astype(np.int64)

    def q_conv2d(self, nd, p):
        acc = conv2d_windows(p.astype(np.int64), arr(nd["weight"]).astype(np.int64), nd["stride"], nd["padding"],
                             nd["groups"], np.int64)
        self.stats["conv_wrap"] += int(np.count_nonzero((acc >= M23) | (acc < -M23)))
        return (acc + M23) % (1 << 24) - M23

    def q_linear(self, nd, p):
        return np.einsum("tni,oi->tno", p.astype(np.int64), arr(nd["weight"]).astype(np.int64))  # no wrap

    def q_cuba_lif(self, nd, a):
        keep_u, keep_v = 4096 - nd["i_decay"], 4096 - nd["v_decay"]
        bias = 0
        if nd["bias_mant"] is not None:
            bias = (arr(nd["bias_mant"]).astype(np.int64) << 6).reshape((1, -1) + (1,) * (a.ndim - 3))
        vth = nd["vth_mant"] << 6
        u = np.zeros(a.shape[1:], np.int64)
        v = np.zeros(a.shape[1:], np.int64)
        out = np.zeros(a.shape, np.int64)
        for t in range(a.shape[0]):
            u = trunc_div4096(u * keep_u) + (a[t] << 6)
            self.stats["u_wrap"] += int(np.count_nonzero((u > M23) | (u <= -M23)))
            u = np.where(u > M23, u - (1 << 24), np.where(u <= -M23, u + (1 << 24), u))
            v = trunc_div4096(v * keep_v) + u + bias
            self.stats["v_clip"] += int(np.count_nonzero(np.abs(v) > M23 - 1))
            v = np.clip(v, -(M23 - 1), M23 - 1)
            s = v > vth
            v = np.where(s, 0, v)
            out[t] = s
        return out

    def q_gate(self, nd, x, outputs):
        P = nd["params"]
        s = x if nd["squeeze_from"] is None else outputs[nd["squeeze_from"]]
        assert s.shape[3:] == (nd["height"], nd["width"]) and s.shape[2] == nd["channels"]
        counts = s.astype(np.int64).sum(axis=(3, 4)).transpose(1, 0, 2)  # [N, T, C]
        if nd.get("placement", "host") == "neurocore":
            code = self.neurocore_codes(P, counts)
            self.stats["codes"] |= set(np.unique(code).tolist())
            return x.astype(np.int64) * code.transpose(1, 0, 2)[..., None, None]
        N, T, C = counts.shape
        w_cla, w_tla = arr(P["w_cla_q"]).astype(np.int64), arr(P["w_tla_q"]).astype(np.int64)
        k_cla, k_tla = w_cla.shape[-1], w_tla.shape[-1]
        lc = (k_cla - 1) // 2
        lt = k_tla - 1 if str(arr(P["mode"])) == "streaming" else (k_tla - 1) // 2
        cla = np.zeros((N, T, C), np.int64)
        tla = np.zeros((N, T, C), np.int64)
        for t in range(T):
            for c in range(C):
                for j in range(k_cla):
                    if 0 <= c + j - lc < C:
                        cla[:, t, c] += counts[:, :, c + j - lc] @ w_cla[t, :, j]
                for j in range(k_tla):
                    if 0 <= t + j - lt < T:
                        tla[:, t, c] += counts[:, t + j - lt, :] @ w_tla[c, :, j]
        F, L = scalar(P["frac_bits"]), scalar(P["lut_bits"])
        cla_fx = (cla * scalar(P["cla_mult"]) + (1 << (scalar(P["cla_shift"]) - 1))) >> scalar(P["cla_shift"])
        tla_fx = (tla * scalar(P["tla_mult"]) + (1 << (scalar(P["tla_shift"]) - 1))) >> scalar(P["tla_shift"])
        d = 2 * F - L
        idx = (cla_fx * tla_fx + (1 << (d - 1))) >> d
        half = scalar(P["lut_range"]) << L
        self.stats["lut_clip"] += int(np.count_nonzero(np.abs(idx) > half))
        idx = np.clip(idx, -half, half)
        lut = arr(P["lut"]).astype(np.int64)
        assert lut.shape == (2 * half + 1,)
        code = lut[idx + half]
        self.stats["codes"] |= set(np.unique(code).tolist())
        return x.astype(np.int64) * code.transpose(1, 0, 2)[..., None, None]

    def neurocore_codes(self, P, counts):
        """FORMATS.md, q_gate with placement "neurocore": the stages of the standard Lava processes."""
        N, T, C = counts.shape
        q_cla, q_tla = arr(P["q_cla"]).astype(np.int64), arr(P["q_tla"]).astype(np.int64)
        k_cla, k_tla = q_cla.shape[-1], q_tla.shape[-1]
        streaming = str(arr(P["mode"])) == "streaming"
        lc = (k_cla - 1) // 2
        lt = k_tla - 1 if streaming else (k_tla - 1) // 2
        sq = counts >> scalar(P["squeeze_shift"])
        a_shift, b_shift = scalar(P["a_shift"]), scalar(P["b_shift"])
        A = np.zeros((N, T, C), np.int64)
        B = np.zeros((N, T, C), np.int64)
        for t in range(T):
            for c in range(C):
                for u in range(T):  # one slot per source step u, floored on its own
                    slot = np.zeros(N, np.int64)
                    for j in range(k_cla):
                        if 0 <= c + j - lc < C:
                            slot += q_cla[t, u, j] * sq[:, u, c + j - lc]
                    A[:, t, c] += slot >> a_shift
                    j = u - t + lt
                    if 0 <= j < k_tla:
                        B[:, t, c] += (sq[:, u, :] @ q_tla[c, :, j]) >> b_shift
        p = (A * B) >> scalar(P["prod_shift"])
        K = arr(P["knot"]).astype(np.int64)
        slope = arr(P["slope"]).astype(np.int64)
        g = scalar(P["out_shift"])
        c = np.maximum(0, p + K[-1]) - np.maximum(0, p - K[-1])
        G = slope[0] * c + (1 << (g - 1))
        for kj, dj in zip(K[1:-1], slope[1:]):
            G += dj * np.maximum(0, c - (kj + K[-1]))
        assert np.abs(A).max() < 1 << 15 and np.abs(B).max() < 1 << 15
        return G >> g

    # -- host and structural nodes (§1.5)
    def flatten(self, nd, x):
        return x.reshape(x.shape[0], x.shape[1], -1)

    def readout(self, nd, x):
        W = arr(nd["weight"]).astype(np.float64)
        xs = x.astype(np.float64)
        if nd["input_scale"] != 1.0:
            xs = xs * nd["input_scale"]
        y = np.stack([xs[:, n] @ W.T for n in range(xs.shape[1])], 1)
        if nd["bias"] is not None:
            y = y + arr(nd["bias"]).astype(np.float64)
        return y

    def vote(self, nd, x):
        v = nd["voters"]
        return x.astype(np.float64).reshape(x.shape[:-1] + (-1, v)).mean(-1).mean(0)

    def run(self, x: np.ndarray):
        """§1.7: x [T, N, C, H, W] → (scores [N, K], {node name: output})."""
        outputs = {}
        for nd in self.doc["nodes"]:
            kind = nd["type"]
            if kind == "q_gate":
                x = self.q_gate(nd, x, outputs)
            else:
                x = getattr(self, kind)(nd, x)
            outputs[nd["name"]] = x
        return x, outputs


def per_step_shapes(doc: dict) -> dict:
    """§1.4: per-step output shape of every node."""
    shapes, shape = {}, ()
    for nd in doc["nodes"]:
        t = nd["type"]
        if t in ("input", "q_input"):
            shape = tuple(nd["shape"])
        elif t in ("conv2d", "q_conv2d"):
            co, _, k, _ = arr(nd["weight"]).shape
            s, p = nd["stride"], nd["padding"]
            shape = (co, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
        elif t in ("linear", "q_linear", "readout"):
            shape = (arr(nd["weight"]).shape[0],)
        elif t == "flatten":
            shape = (int(np.prod(shape)),)
        elif t == "vote":
            shape = (shape[0] // nd["voters"],)
        shapes[nd["name"]] = shape
    return shapes


# ============================================================================ graphs to check
T = 4
INPUT_SHAPE = (2, 8, 8)

TINY = (Conv(4), BatchNorm(), LIF(), MaxPool(2),
        Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=2, kernel_cla=3), MaxPool(2),
        Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=3, kernel_cla=2),
        Flatten(), Dropout(0.2), Linear(20), LIF(), Vote(10))
GRADED_READOUT = (Conv(4, bias=True), BatchNorm(), LIF(), AvgPool(2),
                  Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=2, kernel_cla=3), MaxPool(2),
                  Flatten(), Linear(3, bias=True))
STREAMING = (Conv(4), BatchNorm(), LIF(tau_mem=3.0), TCJAAttention(kernel_tla=3, kernel_cla=2, causal=True),
             MaxPool(2), Conv(6, bias=True), BatchNorm(), LIF(),
             TCJAAttention(kernel_tla=2, kernel_cla=3, causal=True),
             Flatten(), Linear(20), LIF(tau_mem=3.0, tau_syn=2.0), Linear(3, bias=True))


def trained_like_model(layers, seed: int = 0) -> TCJASNN:
    """Random weights, BatchNorm statistics set so that every layer spikes at a moderate rate (tests/tiny.py)."""
    return tiny_model(seed, tiny_config(layers, T, INPUT_SHAPE, num_classes=2 if layers is TINY else 3))


def event_counts(n: int, seed: int) -> torch.Tensor:
    """Event counts [T, N, C, H, W] in {0, 1, 2, 3}."""
    return tiny_input(n, seed, T, INPUT_SHAPE)


def images(n: int, seed: int) -> torch.Tensor:
    """Real-valued inputs (q_input with a non-unit scale: rounding matters)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((T, n) + INPUT_SHAPE, generator=g) * 1.7


def fixed_point_graph(layers, calibration: torch.Tensor, gate_placement: str = "neurocore") -> Graph:
    """The loihi2 target's passes, quantization calibrated on ``calibration``."""
    graph = build_graph(trained_like_model(layers))
    if len(inspect.signature(get_target).parameters) > 1:  # get_target(name, calibration_x, **options)
        return run_passes(get_target("loihi2", calibration, gate_placement=gate_placement), graph)
    return run_passes(get_target("loihi2"), graph, calibration)


def overflow_variant(doc: dict) -> dict:
    """The tiny graph with 16-bit input payloads worth 1/4096 each: conv sums leave 24 bits (wrap), the
    currents and voltages overflow (u wrap, v saturation); and gates whose rescale shifts are 2 bits
    shorter (CLA ⊙ TLA 16× larger), so that the sigmoid table's index is clipped."""
    doc = copy.deepcopy(doc)
    doc["nodes"][0].update(payload_bits=16, scale=1.0 / 4096)
    for nd in doc["nodes"]:
        if nd["type"] == "q_gate":
            for key in ("cla_shift", "tla_shift"):
                nd["params"][key]["data"] = [nd["params"][key]["data"][0] - 2]
    return doc


def dense_overflow_doc() -> dict:
    """A graph written by hand from FORMATS.md §1: 1-D 16-bit input → q_linear whose sums exceed 24 bits
    (no wrap for dense) → q_cuba_lif with a bias and real decays → vote."""
    rng = np.random.default_rng(0)
    w = (2 * rng.integers(-128, 128, size=(10, 64))).astype(np.int32)

    def a(x):
        x = np.asarray(x)
        return {"dtype": str(x.dtype), "shape": list(x.shape), "data": x.reshape(-1).tolist()}

    nodes = [{"name": "input", "type": "q_input", "shape": [64], "payload_bits": 16, "scale": 1.0 / 8192},
             {"name": "dense", "type": "q_linear", "weight": a(w), "scale": 1.0, "input_scale": 1.0},
             {"name": "neuron", "type": "q_cuba_lif", "i_decay": 1024, "v_decay": 1365, "vth_mant": 90000,
              "bias_mant": a(np.arange(-2000, 2000, 400, dtype=np.int32)), "scale": 1.0},
             {"name": "vote", "type": "vote", "voters": 5}]
    names = [n["name"] for n in nodes]
    return {"format": "tcja_deploy.graph/1", "nodes": nodes, "edges": [list(e) for e in zip(names[:-1], names[1:])],
            "meta": {"T": T, "num_classes": 2, "preset": "hand-written", "passes": []}}


def make_case(name: str):
    """(graph.json text, inputs x [T, N, ...])."""
    if name == "tiny":
        return fixed_point_graph(TINY, event_counts(16, 1)).to_json(), event_counts(5, 7)
    if name == "tiny-host-gate":
        return fixed_point_graph(TINY, event_counts(16, 1), "host").to_json(), event_counts(5, 7)
    if name == "streaming-host-gate":
        return fixed_point_graph(STREAMING, images(16, 3), "host").to_json(), images(5, 4)
    if name == "graded-readout":
        # host gate: a payload unit of 2^-6 makes the readout's scaling exact in any summation order
        return fixed_point_graph(GRADED_READOUT, event_counts(16, 1), "host").to_json(), event_counts(5, 7)
    if name == "streaming-images":
        return fixed_point_graph(STREAMING, images(16, 3)).to_json(), images(5, 4)
    if name == "overflow":
        doc = overflow_variant(json.loads(fixed_point_graph(TINY, event_counts(16, 1), "host").to_json()))
        return json.dumps(doc), event_counts(3, 7)
    if name == "dense-overflow":
        g = torch.Generator().manual_seed(5)
        return json.dumps(dense_overflow_doc()), torch.rand((T, 4, 64), generator=g) * 7.0
    raise KeyError(name)


CASES = ("tiny", "tiny-host-gate", "graded-readout", "streaming-images", "streaming-host-gate", "overflow",
         "dense-overflow")


@pytest.mark.parametrize("case", CASES)
def test_reference_reimplementation_matches_run_graph(case):
    text, x = make_case(case)
    doc = json.loads(text)
    graph = Graph.from_json(text)  # the pipeline accepts the document (incl. the hand-written one)

    ref = Reference(doc)
    scores, outputs = ref.run(x.numpy().astype(np.float64))
    want_scores, want = run_graph(graph, x.double(), record=True)

    assert list(outputs) == list(want) == [n["name"] for n in doc["nodes"]]
    shapes = per_step_shapes(doc)
    for name, out in outputs.items():
        w = want[name].numpy()
        assert out.shape == w.shape, (case, name, out.shape, w.shape)
        if name != doc["nodes"][-1]["name"]:
            assert out.shape[2:] == shapes[name], (case, name)
        assert np.array_equal(out, w), (case, name, np.abs(out.astype(np.float64) - w).max())
    assert np.array_equal(scores, want_scores.numpy()), case
    # §1.5 vote: prediction = argmax of the scores rounded to 1e-6, first maximum on ties
    assert np.array_equal(np.round(scores, 6).argmax(1), predictions(want_scores.numpy()))

    # the case exercises what it is meant to
    kinds = [n["type"] for n in doc["nodes"]]
    for nd in doc["nodes"]:
        if nd["type"] == "q_cuba_lif":
            assert outputs[nd["name"]].any(), f"{case}: {nd['name']} never spikes"
    if "q_gate" in kinds:
        assert len(ref.stats["codes"] - {0}) >= 3, f"{case}: gate codes {ref.stats['codes']}"
    if case == "overflow":
        assert ref.stats["conv_wrap"] and ref.stats["u_wrap"] and ref.stats["v_clip"] and ref.stats["lut_clip"], \
            ref.stats
    if case == "dense-overflow":
        assert np.abs(outputs["dense"]).max() >= M23 and ref.stats["u_wrap"] and ref.stats["v_clip"], ref.stats
    if case == "graded-readout":
        assert "readout" in kinds and doc["nodes"][-2]["input_scale"] == 2.0 ** -6
    if case in ("streaming-images", "streaming-host-gate"):
        assert {n["mode"] for n in doc["nodes"] if n["type"] == "q_gate"} == {"streaming"}
        assert doc["nodes"][0]["payload_bits"] > 0 and doc["nodes"][0]["scale"] != 1.0
        assert any(n["type"] == "q_cuba_lif" and n["i_decay"] != 4096 for n in doc["nodes"])

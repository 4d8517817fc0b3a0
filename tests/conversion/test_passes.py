"""Each pass keeps the computed function: the graph before and after it, run on random spikes, agree."""

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.execute import ConversionError, run_graph
from tcja_deploy.conversion.targets import TARGETS, run_passes
from tcja_deploy.conversion import fixed_point
from tcja_deploy.hardware import emulator

from tiny import tiny_input, tiny_model

RNG = np.random.default_rng(0)
T = 4


def spikes(shape, n=6, p=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((T, n) + tuple(shape), generator=gen) < p).to(torch.float64)


def counts(shape, n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (T, n) + tuple(shape), generator=gen).to(torch.float64)


def w(*shape, scale=1.0):
    return RNG.normal(0, scale, shape)


def bn(c):
    return g.BatchNorm(RNG.uniform(-0.2, 0.2, c), RNG.uniform(0.05, 0.2, c), RNG.uniform(0.8, 1.5, c),
                       RNG.uniform(0.2, 0.8, c), 1e-5)


def graph_of(*nodes, T=T):
    names = {}
    out = {}
    for node in nodes:
        k = node.kind
        names[k] = names.get(k, -1) + 1
        out[f"{k}{names[k]}"] = node
    return g.Graph(out, {"T": T, "num_classes": 2, "passes": []})


def assert_same(before: g.Graph, after: g.Graph, x: torch.Tensor, common=()):
    """Scores equal (to float64 rounding) and the outputs of the nodes named in ``common`` identical."""
    s0, o0 = run_graph(before, x, record=True)
    s1, o1 = run_graph(after, x, record=True)
    torch.testing.assert_close(s1, s0, rtol=0, atol=1e-9)
    for name in common:
        torch.testing.assert_close(o1[name], o0[name], rtol=0, atol=1e-9, msg=f"node {name}")


def conv_block(cin, cout, **kw):
    return [g.Conv2d(w(cout, cin, 3, 3, scale=0.6), None, 1, 1), bn(cout), g.LIF(2.0, 1.0, 1.0)]


def test_build_graph_is_the_model():
    model = tiny_model()
    x = tiny_input(5)
    with torch.no_grad():
        ref = model(x)
    out = run_graph(build_graph(model), x)  # float32, the model's own arithmetic
    assert torch.equal(out, ref)
    assert ref.abs().sum() > 0


def test_drop_dropout():
    model = tiny_model()
    before = build_graph(model)
    after = P.drop_dropout(before)
    assert not any(isinstance(n, g.Dropout) for n in after.nodes.values())
    assert after.meta["passes"] == ["drop_dropout"]
    assert_same(before, after, tiny_input(5).double())


def test_fold_batchnorm_conv_and_linear():
    before = graph_of(g.Input((2, 6, 6)), *conv_block(2, 4), g.Flatten(), g.Linear(w(5, 144, scale=0.3), w(5)),
                      bn(5), g.LIF(2.0, 1.0, 1.0), g.Vote(1))
    after = P.fold_batchnorm(before)
    assert not any(isinstance(n, g.BatchNorm) for n in after.nodes.values())
    assert after.nodes["conv2d0"].bias is not None
    assert_same(before, after, counts((2, 6, 6)), common=("lif0", "lif1"))


def test_fold_batchnorm_needs_a_synapse():
    gr = graph_of(g.Input((2, 4, 4)), bn(2), g.Vote(1))
    with pytest.raises(ConversionError, match="batchnorm0"):
        P.fold_batchnorm(gr)


def tcja_node(c, k_tla=3, k_cla=2, causal=False):
    return g.TCJA(w(c, c, k_tla, scale=2.0), w(T, T, k_cla, scale=2.0), causal)


@pytest.mark.parametrize("causal", [False, True])
def test_tcja_to_gate_moves_past_the_pool(causal):
    before = graph_of(g.Input((2, 8, 8)), *conv_block(2, 4), tcja_node(4, causal=causal), g.MaxPool(2),
                      g.Flatten(), g.Linear(w(3, 64)), g.LIF(2.0, 1.0, 0.5), g.Vote(1))
    after = P.tcja_to_gate(before)
    names = after.names
    assert names.index("maxpool0") < names.index("gate0")
    gate = after.nodes["gate0"]
    assert gate.squeeze_from == "lif0" and gate.mode == ("streaming" if causal else "window")
    assert ("lif0", "gate0") in after.edges
    s0, o0 = run_graph(before, counts((2, 8, 8)), record=True)
    s1, o1 = run_graph(after, counts((2, 8, 8)), record=True)
    torch.testing.assert_close(o1["gate0"], o0["maxpool0"], rtol=0, atol=1e-12)  # max(g·x) = g·max(x)
    torch.testing.assert_close(s1, s0, rtol=0, atol=1e-12)


def test_tcja_to_gate_without_pool_stays_in_place():
    before = graph_of(g.Input((2, 4, 4)), *conv_block(2, 3), tcja_node(3), g.Flatten(), g.Linear(w(2, 48)),
                      g.LIF(2.0, 1.0, 0.5), g.Vote(1))
    after = P.tcja_to_gate(before)
    assert after.nodes["gate0"].squeeze_from is None
    assert_same(before, after, counts((2, 4, 4)))


def test_maxpool_to_or_is_exact():
    before = graph_of(g.Input((2, 8, 8)), *conv_block(2, 4), g.MaxPool(2), g.Flatten(), g.Linear(w(3, 64)),
                      g.LIF(2.0, 1.0, 0.5), g.Vote(1))
    after = P.maxpool_to_or(before)
    pool, neuron = after.nodes["maxpool0"], after.nodes["maxpool0.neuron"]
    assert isinstance(pool, g.Conv2d) and pool.role == "pool" and pool.groups == 4 and pool.stride == 2
    assert np.all(pool.weight == 1)
    assert isinstance(neuron, g.CubaLIF) and neuron.du == neuron.dv == 1.0 and 0 < neuron.threshold < 1
    x = counts((2, 8, 8))
    s0, o0 = run_graph(before, x, record=True)
    s1, o1 = run_graph(after, x, record=True)
    assert torch.equal(o1["maxpool0.neuron"], o0["maxpool0"])
    assert torch.equal(s1, s0)


def test_maxpool_of_graded_values_is_rejected():
    gr = graph_of(g.Input((2, 4, 4)), g.MaxPool(2), g.Vote(1))
    with pytest.raises(ConversionError, match="maxpool0.*binary"):
        P.maxpool_to_or(gr)


def test_avgpool_fold_into_conv():
    before = graph_of(g.Input((2, 8, 8)), *conv_block(2, 4), g.AvgPool(2),
                      g.Conv2d(w(3, 4, 3, 3), None, 1, 1), g.LIF(2.0, 1.0, 0.3), g.Flatten(), g.Vote(1))
    after = P.avgpool_fold(before)
    assert not any(isinstance(n, g.AvgPool) for n in after.nodes.values())
    conv = after.nodes["conv2d1"]
    assert conv.weight.shape == (3, 4, 6, 6) and conv.stride == 2 and conv.padding == 2
    assert_same(before, after, counts((2, 8, 8)), common=("lif1",))


def test_avgpool_fold_into_linear_with_cropping():
    # 5×5 → avgpool 2 → 2×2 (the last row and column are dropped): the folded weights are 0 there
    before = graph_of(g.Input((2, 5, 5)), *conv_block(2, 3), g.AvgPool(2), g.Flatten(),
                      g.Linear(w(4, 12)), g.LIF(2.0, 1.0, 0.3), g.Vote(1))
    after = P.avgpool_fold(before)
    assert after.nodes["linear0"].weight.shape == (4, 75)
    assert_same(before, after, counts((2, 5, 5), n=8), common=("lif1",))


def test_avgpool_must_feed_a_synapse():
    gr = graph_of(g.Input((2, 4, 4)), *conv_block(2, 2), g.AvgPool(2), g.Vote(1))
    with pytest.raises(ConversionError, match="avgpool0"):
        P.avgpool_fold(gr)


@pytest.mark.parametrize("tau_syn", [1.0, 2.0])
def test_lif_to_cuba(tau_syn):
    nodes = [g.Input((2, 6, 6)), g.Conv2d(w(4, 2, 3, 3, scale=0.6), None, 1, 1), bn(4), g.LIF(3.0, tau_syn, 1.0),
             g.Flatten(), g.Linear(w(5, 144, scale=0.3)), g.LIF(2.0, tau_syn, 0.7), g.Vote(1)]
    before = graph_of(*nodes)
    if tau_syn == 1.0:
        before = P.fold_batchnorm(before)  # a bias: exact as a v-bias when τ_syn = 1
    else:
        before = graph_of(*[n for n in nodes if not isinstance(n, g.BatchNorm)])
    after = P.lif_to_cuba(before)
    c0 = after.nodes["lif0"]
    assert isinstance(c0, g.CubaLIF) and c0.du == 1 / tau_syn and c0.dv == 1 / 3
    assert (c0.bias is not None) == (tau_syn == 1.0)
    assert_same(before, after, counts((2, 6, 6)), common=("lif0", "lif1"))


def test_lif_to_cuba_rejects_a_current_bias_with_memory():
    gr = graph_of(g.Input((3,)), g.Linear(w(2, 3), np.ones(2)), g.LIF(2.0, 2.0, 1.0), g.Vote(1))
    with pytest.raises(ConversionError, match="tau_syn"):
        P.lif_to_cuba(gr)


def test_trunk_passes_on_the_tiny_model():
    model = tiny_model()
    before = build_graph(model)
    after = run_passes(TARGETS["lava-float"], before)
    assert after.meta["passes"] == ["drop_dropout", "fold_batchnorm", "tcja_to_gate", "maxpool_to_or", "avgpool_fold",
                                    "lif_to_cuba"]
    kinds = {n.kind for n in after.nodes.values()}
    assert kinds <= {"input", "conv2d", "cuba_lif", "gate", "flatten", "linear", "vote"}
    assert_same(before, after, tiny_input(6).double())


@pytest.mark.parametrize("placement", ["neurocore", "host"])
def test_quantize_loihi2_respects_loihi_limits_and_stays_close(placement):
    model = tiny_model()
    fg = run_passes(TARGETS["lava-float"], build_graph(model))
    x = tiny_input(24)
    q = P.quantize_loihi2(fg, P.calibrate(fg, x), gate_placement=placement)
    assert q.meta["passes"][-1] == "quantize_loihi2"
    assert isinstance(q.nodes["input"], g.QInput) and q.nodes["input"].payload_bits == 2  # counts 0..3
    for name, node in q.items():
        if isinstance(node, (g.QConv2d, g.QLinear)):
            wt = np.asarray(node.weight)
            assert wt.min() >= -256 and wt.max() <= 254 and np.all(wt % 2 == 0), name
            assert np.abs(wt).max() > 8, f"{name} uses too few weight levels"
        if isinstance(node, g.QCubaLIF):
            assert 1 <= node.vth_mant < 1 << 17 and 0 <= node.i_decay <= 4096 and 0 <= node.v_decay <= 4096
            if node.bias_mant is not None:
                assert np.abs(node.bias_mant).max() < 1 << 12
        if isinstance(node, g.QGate):
            assert node.placement == placement
            assert node.payload_bits == (P.GATE_PAYLOAD_BITS if placement == "host" else NC.PAYLOAD_BITS)
    fl = emulator.emulate(fg, x, record=True)
    qa = emulator.emulate(q, x, record=True)
    for a, b in zip(fl.layers, qa.layers):
        assert a.name == b.name
        if a.kind != "gate":
            assert np.mean(a.output_spikes == b.output_spikes) > 0.9, a.name


def test_quantize_loihi2_needs_the_trunk_passes():
    gr = build_graph(tiny_model())
    with pytest.raises(ConversionError, match="batchnorm|has no Loihi 2 form|lif_to_cuba"):
        P.quantize_loihi2(gr)


def test_quantize_graded_float_input():
    """Images (float intensities) become 8-bit payloads with a scale; the first layer's weights absorb it."""
    model = tiny_model()
    fg = run_passes(TARGETS["lava-float"], build_graph(model))
    gen = torch.Generator().manual_seed(5)
    x = torch.rand((T, 16, 2, 8, 8), generator=gen) * 0.8
    q = P.quantize_loihi2(fg, P.calibrate(fg, x))
    inp = q.nodes["input"]
    levels = (1 << inp.payload_bits) - 1
    assert 3 <= inp.payload_bits <= 8 and inp.scale == pytest.approx(float(x.max()) / levels)
    assert q.nodes["conv0"].input_scale == inp.scale
    # the input width balances input levels against the first layer's weight levels
    assert min(levels, q.meta["quantization"]["conv0"]["weight_levels_used"]) >= 30
    payload = fixed_point.input_payload(x.double(), inp)
    assert payload.max() == levels and torch.equal(payload, payload.round())
    fl, qa = emulator.emulate(fg, x, record=True), emulator.emulate(q, x, record=True)
    assert np.mean(fl.layers[0].output_spikes == qa.layers[0].output_spikes) > 0.95


def test_a_pool_of_more_than_127_channels_is_grouped_with_diagonal_weights():
    """lava-nc 0.10's Conv models keep groups in an int8 (128 groups send nothing): same sums, fewer groups, each
    diagonal across its channels (128 → 64 groups of 2; a prime count → one group)."""
    from tcja_deploy.conversion.execute import run_graph
    from tcja_deploy.conversion.loihi2 import LAVA_MAX_CONV_GROUPS

    for c, groups in ((LAVA_MAX_CONV_GROUPS, LAVA_MAX_CONV_GROUPS), (128, 64), (131, 1)):
        graph = g.Graph({"input": g.Input((c, 4, 4)), "lif": g.LIF(2.0, 1.0, 0.5), "pool": g.MaxPool(2)},
                        {"T": 2})
        pooled = P.maxpool_to_or(graph)
        conv = pooled.nodes["pool"]
        assert conv.groups == groups and conv.weight.shape == (c, c // groups, 2, 2)
        assert conv.weight.sum() == c * 4  # one 2×2 window of ones per channel, nothing across channels
        x = (torch.rand(2, 3, c, 4, 4, generator=torch.Generator().manual_seed(c)) < 0.5).double() * 2
        spikes = run_graph(graph.replace({"input": graph.nodes["input"], "lif": graph.nodes["lif"]}), x)
        want = torch.nn.functional.max_pool2d(spikes.flatten(0, 1), 2).reshape(2, 3, c, 2, 2)
        assert torch.equal(run_graph(pooled, x), want)

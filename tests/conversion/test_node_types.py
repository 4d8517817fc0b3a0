"""Every node type carries its facts: a semantics entry, its output shape, field checks, a JSON round trip;
an unknown node raises everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import gate_math
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import SEMANTICS, infer_shapes, run_graph, run_node
from tcja_deploy.conversion.graph import ConversionError

T = 3
_QGATE = gate_math.quantize_gate(gate_math.GateParams(T=T, C=2, H=4, W=4, w_tla=np.ones((2, 2, 2)) * 0.3,
                                                      w_cla=np.ones((T, T, 2)) * 0.2)).to_arrays()

#: One instance of every node type, its per-step input shape and the output shape it must report.
EXAMPLES = {
    "input": (g.Input((2, 4, 4)), (), (2, 4, 4)),
    "conv2d": (g.Conv2d(np.ones((3, 2, 3, 3)), np.zeros(3), stride=2, padding=1), (2, 4, 4), (3, 2, 2)),
    "linear": (g.Linear(np.ones((5, 8)), None), (8,), (5,)),
    "batchnorm": (g.BatchNorm(np.zeros(2), np.ones(2), np.ones(2), np.zeros(2)), (2, 4, 4), (2, 4, 4)),
    "lif": (g.LIF(2.0, 1.0, 1.0), (2, 4, 4), (2, 4, 4)),
    "cuba_lif": (g.CubaLIF(1.0, 0.5, 1.0, np.zeros(2)), (2, 4, 4), (2, 4, 4)),
    "maxpool": (g.MaxPool(2), (2, 5, 4), (2, 2, 2)),
    "avgpool": (g.AvgPool(2), (2, 4, 4), (2, 2, 2)),
    "flatten": (g.Flatten(), (2, 4, 4), (32,)),
    "dropout": (g.Dropout(0.5), (8,), (8,)),
    "tcja": (g.TCJA(np.ones((2, 2, 2)), np.ones((T, T, 3))), (2, 4, 4), (2, 4, 4)),
    "gate": (g.Gate(np.ones((2, 2, 2)), np.ones((T, T, 3))), (2, 4, 4), (2, 4, 4)),
    "readout": (g.Readout(np.ones((4, 8)), np.zeros(4)), (8,), (4,)),
    "vote": (g.Vote(2), (8,), (4,)),
    "q_input": (g.QInput((2, 4, 4), payload_bits=2), (), (2, 4, 4)),
    "q_conv2d": (g.QConv2d(np.full((3, 2, 3, 3), 2, np.int32), padding=1), (2, 4, 4), (3, 4, 4)),
    "q_linear": (g.QLinear(np.full((5, 8), -4, np.int32)), (8,), (5,)),
    "q_cuba_lif": (g.QCubaLIF(4096, 2048, 100, np.zeros(2, np.int32)), (2, 4, 4), (2, 4, 4)),
    "q_gate": (g.QGate(T, 2, 4, 4, "window", 8, 2.0 ** -8, _QGATE), (2, 4, 4), (2, 4, 4)),
    "conv_transpose2d": (g.ConvTranspose2d(np.ones((2, 3, 3, 3)), np.zeros(3), stride=2, padding=1, output_padding=1),
                         (2, 4, 4), (3, 8, 8)),
    "q_conv_transpose2d": (g.QConvTranspose2d(np.full((2, 3, 3, 3), 2, np.int32), padding=1), (2, 4, 4), (3, 4, 4)),
    "unflatten": (g.Unflatten((2, 2, 2)), (8,), (2, 2, 2)),
    "image_readout": (g.ImageReadout(np.ones((2, 1, 3, 3)), np.zeros(1), padding=1), (2, 4, 4), (1, 4, 4)),
}


def test_every_node_type_has_an_example_and_semantics():
    assert set(EXAMPLES) == set(g.NODE_TYPES)
    assert set(SEMANTICS) == set(g.NODE_TYPES.values())


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_output_shape_matches_what_the_node_computes(kind):
    node, in_shape, out_shape = EXAMPLES[kind]
    assert node.out_shape(in_shape) == out_shape
    if node.category == "input":
        return
    x = (torch.rand((T, 2) + in_shape, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    if kind in ("q_cuba_lif",):
        x = (x * 300).to(torch.int64)
    y = run_node(node, x)
    assert tuple(y.shape[2:]) == out_shape if kind not in ("vote", "image_readout") else \
        tuple(y.shape[1:]) == out_shape


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_json_round_trip_keeps_every_field(kind):
    node = EXAMPLES[kind][0]
    back = g.node_from_dict(json.loads(json.dumps(g.node_to_dict(node))))
    assert type(back) is type(node)
    for name, value in vars(node).items():
        other = getattr(back, name)
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, other) and value.dtype == other.dtype
        elif not isinstance(value, dict):
            assert value == other


@pytest.mark.parametrize("make, field", [
    (lambda: g.Conv2d(np.ones((3, 2, 3)), None), "weight"),
    (lambda: g.Conv2d(np.ones((3, 2, 3, 3)), None, stride=0), "stride"),
    (lambda: g.Conv2d(np.ones((3, 2, 3, 3)), np.zeros(4)), "bias"),
    (lambda: g.Linear(np.array([[1.0, np.nan]])), "weight"),
    (lambda: g.LIF("2", 1.0, 1.0), "tau_mem"),
    (lambda: g.LIF(-1.0, 1.0, 1.0), "tau_mem"),
    (lambda: g.CubaLIF(1.5, 0.5, 1.0), "du"),
    (lambda: g.MaxPool(0), "kernel"),
    (lambda: g.Vote(0), "voters"),
    (lambda: g.Gate(np.ones((2, 2, 2)), np.ones((3, 3, 2)), mode="sometimes"), "mode"),
    (lambda: g.QInput((2, 4, 4), payload_bits=40), "payload_bits"),
    (lambda: g.QInput((2, -4, 4), payload_bits=1), "shape"),
    (lambda: g.QLinear(np.full((2, 2), 1000)), "weight"),
    (lambda: g.QCubaLIF(5000, 10, 10), "i_decay"),
    (lambda: g.QGate(T, 2, 4, 4, "window", 8, 2.0 ** -8, {"T": 3}), "params"),
])
def test_a_bad_field_names_the_node_type_and_field(make, field):
    with pytest.raises(ConversionError, match=f"node: field '{field}'"):
        make()


def test_a_shape_mismatch_names_the_node():
    graph = g.Graph({"input": g.Input((2, 4, 4)), "conv0": g.Conv2d(np.ones((3, 5, 3, 3))), "vote": g.Vote(1)}, {"T": 2})
    with pytest.raises(ConversionError, match="node 'conv0'.*5 input channels, gets 2"):
        infer_shapes(graph)


class Mystery:
    kind = "mystery"
    category = "synapse"


def test_an_unknown_node_raises_everywhere():
    graph = g.Graph({"input": g.Input((4,)), "m": Mystery(), "vote": g.Vote(1)}, {"T": 2})
    with pytest.raises(ConversionError, match="not a registered graph node type"):
        infer_shapes(graph)
    with pytest.raises(ConversionError, match="no semantics"):
        run_node(Mystery(), torch.zeros(2, 1, 4))
    with pytest.raises(ConversionError, match="no semantics"):
        run_graph(graph, torch.zeros(2, 1, 4))
    with pytest.raises(ConversionError, match="unknown node type 'mystery'"):
        g.node_from_dict({"type": "mystery"})


@pytest.mark.parametrize("doc, problem", [
    ([], "JSON object"),
    ({"format": "other"}, "not a tcja_deploy.graph/1"),
    ({"format": g.FORMAT, "nodes": []}, "non-empty list"),
    ({"format": g.FORMAT, "nodes": [{"name": "a", "type": "input", "shape": [2]}], "meta": []}, "'meta'"),
    ({"format": g.FORMAT, "nodes": [{"name": "a", "type": "lif", "tau_mem": 2.0}]}, "lacks field"),
    ({"format": g.FORMAT, "nodes": [{"name": "a", "type": "linear", "weight": {"dtype": "float32", "shape": [2, 2],
                                                                           "data": [1, 2, 3]}}]}, "needs 4 values"),
    ({"format": g.FORMAT, "nodes": [{"name": "a", "type": "input", "shape": [2]},
                                    {"name": "a", "type": "vote", "voters": 1}]}, "appears twice"),
])
def test_malformed_documents_raise_conversion_errors(doc, problem):
    with pytest.raises(ConversionError, match=problem):
        g.Graph.from_dict(doc)

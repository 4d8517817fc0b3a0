"""graph.json is a faithful dump: every graph round-trips exactly, readable with the json module alone."""

import json

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.execute import run_graph
from tcja_deploy.conversion.targets import TARGETS, run_passes

from tiny import tiny_input, tiny_model


@pytest.fixture(scope="module")
def graphs():
    model = tiny_model()
    fg = build_graph(model)
    trunk = run_passes(TARGETS["lava-float"], fg)
    q = P.quantize_loihi2(trunk, P.calibrate(trunk, tiny_input(8)))
    return {"float": fg, "trunk": trunk, "fixed": q}


@pytest.mark.parametrize("stage", ["float", "trunk", "fixed"])
def test_round_trip(graphs, stage):
    gr = graphs[stage]
    text = gr.to_json()
    doc = json.loads(text)  # plain JSON
    assert doc["format"] == g.FORMAT and [n["name"] for n in doc["nodes"]] == gr.names
    back = g.Graph.from_json(text)
    assert back.names == gr.names and back.meta["passes"] == gr.meta["passes"]
    for name in gr.names:
        a, b = gr.nodes[name], back.nodes[name]
        assert type(a) is type(b)
        assert json.dumps(g.node_to_dict(a)) == json.dumps(g.node_to_dict(b)), name
    x = tiny_input(3).double()
    assert torch.equal(run_graph(back, x), run_graph(gr, x))


def test_arrays_are_plain_and_edges_include_squeeze(graphs):
    doc = graphs["fixed"].to_dict()
    conv0 = next(n for n in doc["nodes"] if n["name"] == "conv0")
    assert conv0["type"] == "q_conv2d" and conv0["weight"]["dtype"] == "int32"
    assert np.prod(conv0["weight"]["shape"]) == len(conv0["weight"]["data"])
    gate = next(n for n in doc["nodes"] if n["type"] == "q_gate")
    assert gate["squeeze_from"] == "lif1" and ["lif1", gate["name"]] in doc["edges"]


def test_unknown_node_type_names_the_supported_ones():
    with pytest.raises(ValueError, match="unknown node type 'warp'.*conv2d"):
        g.node_from_dict({"type": "warp"})

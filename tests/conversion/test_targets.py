"""A target is a list of passes: the quantization pass carries its calibration data; no pass is special-cased."""

from __future__ import annotations

import pytest

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.targets import TARGET_NAMES, get_target, run_passes
from tcja_deploy.errors import UserError
from tiny import tiny_input


def test_targets_are_lists_of_passes(tiny_float_graph):
    for name in TARGET_NAMES:
        target = get_target(name)
        out = tiny_float_graph
        for p in target.passes:
            out = p(out)
        assert out.meta["passes"] == [p.__name__ for p in target.passes]
        assert out.quantized == target.quantized
        assert all(n.fixed_point for n in out.nodes.values() if n.category in ("synapse", "neuron")) == target.quantized


def test_the_calibrated_quantization_pass_records_its_calibration(tiny_float_graph):
    x = tiny_input(6)
    q = run_passes(get_target("loihi2", x), tiny_float_graph)
    cal = q.meta["calibration"]
    assert cal["samples"] == 6 and cal["input_integer"] and cal["input_max"] == float(x.max())
    assert set(cal["u_max"]) == {n for n, node in run_passes(get_target("lava-float"), tiny_float_graph).items()
                                 if isinstance(node, g.CubaLIF)}
    # uncalibrated: binary input and worst-case bounds, no calibration entry
    plain = run_passes(get_target("loihi2"), tiny_float_graph)
    assert "calibration" not in plain.meta and plain.nodes["input"].payload_bits == 0
    # options reach the quantization pass
    narrow = run_passes(get_target("loihi2", x, gate_payload_bits=4, gate_placement="host"), tiny_float_graph)
    assert {n.payload_bits for n in narrow.nodes.values() if isinstance(n, g.QGate)} == {4}


def test_float_targets_ignore_calibration(tiny_float_graph):
    a = run_passes(get_target("lava-float", tiny_input(4)), tiny_float_graph)
    b = run_passes(get_target("lava-float"), tiny_float_graph)
    assert a.names == b.names and a.meta["passes"] == b.meta["passes"]


def test_unknown_target():
    with pytest.raises(UserError, match="unknown target 'tpu'"):
        get_target("tpu")

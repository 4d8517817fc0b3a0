"""A network ending in a bare Linear (no LIF): a host readout, scores = mean over T of W·s + b."""

import time

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import netx_export
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.execute import run_graph
from tcja_deploy.conversion.layers import latency_steps, layer_plan
from tcja_deploy.conversion.targets import TARGETS, run_passes
from tcja_deploy.hardware import emulator
from tcja_deploy.models import TCJASNN
from tcja_deploy.models.presets import get_preset
from tcja_deploy.models.specs import LIF, AvgPool, BatchNorm, Conv, Flatten, Linear, MaxPool, TCJAAttention

from tiny import tiny_config, tiny_input, tiny_model

GRADED = (Conv(4, bias=True), BatchNorm(), LIF(), AvgPool(2),
          Conv(6), BatchNorm(), LIF(), TCJAAttention(kernel_tla=2, kernel_cla=3), MaxPool(2),
          Flatten(), Linear(3, bias=True))  # the readout reads a gate's graded payloads
BINARY = (Conv(4), BatchNorm(), LIF(), MaxPool(2), Flatten(), Linear(20), LIF(), Linear(3, bias=True))


@pytest.mark.parametrize("layers", [GRADED, BINARY], ids=["graded", "binary"])
def test_bare_linear_is_a_host_readout(layers):
    model = tiny_model(config=tiny_config(layers))
    x = tiny_input(8)
    fg = build_graph(model)
    assert isinstance(fg.nodes["readout0"], g.Readout) and fg.nodes["readout0"].host
    assert isinstance(fg.nodes[fg.names[-1]], g.Vote)
    # the float graph is the model
    np.testing.assert_allclose(run_graph(fg, x.double()).numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    # the float CUBA trunk too
    trunk = run_passes(TARGETS["lava-float"], fg)
    np.testing.assert_allclose(run_graph(trunk, x.double()).numpy(), model(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    q = run_passes(TARGETS["loihi2"], fg, x)
    assert g.Graph.from_json(q.to_json()).nodes["readout0"].input_scale == q.nodes["readout0"].input_scale
    segs = netx_export.segments(q)
    assert all(n not in seg["nodes"] for seg in segs for n in g.host_nodes(q))
    emu = emulator.emulate(q, x, record=True)
    last = emu.layers[-1].output_spikes.astype(np.float64)  # the recorded last-layer spikes / payloads
    assert last.any()
    node = q.nodes["readout0"]
    s = last.reshape(last.shape[0], last.shape[1], -1) * node.input_scale
    ref = (np.einsum("tni,ki->tnk", s, np.asarray(node.weight, np.float64)) + np.asarray(node.bias)).mean(0)
    np.testing.assert_allclose(emu.scores, ref, rtol=1e-12, atol=1e-12)
    assert latency_steps(q) == sum(layer.latency_steps for layer in layer_plan(q))


def test_cifar10_dvs_preset_converts():
    start = time.perf_counter()
    cfg = get_preset("cifar10_dvs", 2).model
    torch.manual_seed(0)
    model = TCJASNN(cfg).eval()
    fg = build_graph(model)
    x = (torch.rand((2, 1) + tuple(cfg.input_shape), generator=torch.Generator().manual_seed(0)) < 0.2).float()
    q = run_passes(TARGETS["loihi2"], fg, x)
    assert not any(isinstance(n, (g.AvgPool, g.BatchNorm, g.LIF)) for n in q.nodes.values())
    assert [n.kind for n in q.nodes.values()][-3:] == ["flatten", "readout", "vote"]
    segs, gates = netx_export.segments(q), netx_export.gates(q)
    assert len(segs) == len(gates) == 2
    emu = emulator.emulate(q, x)
    np.testing.assert_allclose(emu.scores, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    onnx_graph = run_passes(TARGETS["onnx"], fg)
    np.testing.assert_allclose(run_graph(onnx_graph, x).numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert time.perf_counter() - start < 30


def test_calibration_streams_and_does_not_depend_on_the_batch():
    trunk = run_passes(TARGETS["lava-float"], build_graph(tiny_model()))
    x = tiny_input(10)
    whole = P.calibrate(trunk, x, batch_size=10)
    assert P.calibrate(trunk, x, batch_size=3) == whole
    assert P.calibrate(trunk, x) == whole
    assert P.calibration_batch_size(trunk, 4, budget=1) == 1
    assert P.calibration_batch_size(trunk, 4) == P.CALIBRATION_BATCH

"""A deploy directory on Lava's simulator agrees with the emulator spike for spike on every layer."""

from pathlib import Path

import numpy as np
import pytest

from tcja_deploy.conversion import deploy
from tcja_deploy.conversion import netx_export
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.conversion.layers import latency_steps, plan_timing
from tcja_deploy.conversion.targets import TARGETS, run_passes
from tcja_deploy.hardware import emulator
from tcja_deploy.hardware.lava_sim import run_lava
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.hardware.verify import gate_stage_agreement, spike_agreement
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Flatten, Linear, MaxPool, TCJAAttention, Vote
from tcja_deploy.training.checkpoint import save_model

from fake_clock import FakeClock
from tiny import T, tiny_config, tiny_input, tiny_model, tiny_run


@pytest.mark.parametrize("placement", ["host", "neurocore"])
def test_timing_plan_gives_every_gate_the_phase_of_its_windows(placement):
    trunk = run_passes(TARGETS["lava-float"], build_graph(tiny_model()))
    q = P.quantize_loihi2(trunk, P.calibrate(trunk, tiny_input(8)), gate_placement=placement)
    segs, gates = netx_export.segments(q), netx_export.gates(q)
    plan = plan_timing(q, segs, gates)
    lags = plan["lags"]
    assert lags["input"] == 1 and plan["pad"] == 0 and plan["delays"] == {}  # no empty steps, no delay lines
    # segment 0 has 4 hops: sample 0 reaches gate 0 at Lava step 5, so its windows start at steps ≡ 5 (mod T)
    assert plan["phases"]["gate0"] == (1 + 4 - 1) % T
    # window mode: T steps of latency on the host; on neuro cores T − 1 + the stages (gate0 squeezes before
    # the pool, one hop ahead of what it scales)
    gate_steps = T if placement == "host" else NC.latency_steps("window", T, 1)
    assert lags["gate0"] == lags["pool1"] + gate_steps
    # one hop (conv2) between the gates: gate 1's windows start one step later than gate 0's outputs
    assert plan["phases"]["gate1"] == (lags["gate0"] + 1 - 1) % T
    assert lags["linear0"] == lags["gate1"] + 1
    assert lags["linear0"] - lags["input"] == latency_steps(q)  # on Lava exactly the graph's latency


def causal_run(path: Path) -> Path:
    """The tiny network with the causal TCJA: gates in streaming mode (no added latency)."""
    layers = (Conv(4), BatchNorm(), LIF(), MaxPool(2),
              Conv(6), BatchNorm(), LIF(), TCJAAttention(2, 3, causal=True), MaxPool(2),
              Flatten(), Linear(20), LIF(), Vote(10))
    save_model(path, tiny_model(config=tiny_config(layers)), {"preset": "tiny"})
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["streaming", "streaming-host", "lava-float"])
def test_lava_agrees_with_emulator(tmp_path, kind):
    if kind.startswith("streaming"):
        run, target = causal_run(tmp_path / "run"), "loihi2"
    else:
        run, target = tiny_run(tmp_path / "run"), "lava-float"
    out = tmp_path / "deploy"
    deploy.convert(run, out, target, lava_samples=0, log=lambda s: None,
                   gate_placement="host" if kind == "streaming-host" else "neurocore")
    d = read_deploy(out)
    doc, graph = d.doc, d.graph
    x = tiny_input(3, seed=7)
    labels = np.array([0, 1, 0])
    emu = emulator.emulate(graph, x, labels)
    lava = run_lava(out, x, labels)
    assert lava.backend == "lava-sim"
    assert lava.extra["select_tag"] == ("fixed_pt" if target == "loihi2" else "floating_pt")
    agreement = spike_agreement(emu, lava)
    assert [a.name for a in lava.layers] == [a.name for a in emu.layers]
    for name, r in agreement.items():
        assert r["identical"], (name, r)
    assert sum(r["spikes_lava"] for r in agreement.values()) > 100
    assert np.array_equal(lava.scores, emu.scores)
    for a, b in zip(emu.layers, lava.layers):
        assert np.array_equal(a.input_spikes, b.input_spikes), a.name
        assert a.input_payload_bits == b.input_payload_bits and a.kind == b.kind
    if kind == "streaming":
        gate = next(a for a in lava.layers if a.kind == "gate")
        # neuro cores: no window to wait for, the stages' hops only (the squeeze is one hop ahead)
        assert gate.gate.mode == "streaming" and gate.latency_steps == NC.latency_steps("streaming", T, 1) == 8
        assert lava.extra["latency_steps"] == latency_steps(graph) == 5 + 8  # 5 hops + the gate's stages
        stages = gate_stage_agreement(graph, x, lava.extra["gate_stages"])
        assert stages and all(r["identical"] for per in stages.values() for r in per.values()), stages
    if kind == "streaming-host":
        gate = next(a for a in lava.layers if a.kind == "gate")
        assert gate.gate.placement == "host" and gate.latency_steps == 0
        assert lava.extra["latency_steps"] == latency_steps(graph) == 5  # 5 hops, no window


def readout_run(path: Path) -> Path:
    """The tiny network ending in a bare Linear (host readout) that reads the graded output of a gate."""
    layers = (Conv(4), BatchNorm(), LIF(), MaxPool(2),
              Conv(6), BatchNorm(), LIF(), TCJAAttention(2, 3), MaxPool(2),
              Flatten(), Linear(2, bias=True))
    save_model(path, tiny_model(config=tiny_config(layers)), {"preset": "tiny"})
    return path


@pytest.mark.slow
def test_lava_readout_scores_identical_to_emulator(tmp_path):
    run, out = readout_run(tmp_path / "run"), tmp_path / "deploy"
    deploy.convert(run, out, "loihi2", lava_samples=0, log=lambda s: None)
    d = read_deploy(out)
    doc, graph = d.doc, d.graph
    assert doc["readout"]["host"] and doc["readout"]["node"] == "readout0"
    assert all("readout0" not in seg["nodes"] for seg in doc["segments"])
    x = tiny_input(3, seed=7)
    emu = emulator.emulate(graph, x)
    lava = run_lava(out, x)
    assert all(r["identical"] for r in spike_agreement(emu, lava).values())
    assert np.array_equal(lava.scores, emu.scores)


def test_a_lava_budget_keeps_the_samples_completed_in_time(tiny_deploy_dir, monkeypatch):
    """The run stops when the next step would not fit the budget; the samples completed by then equal the emulator's."""
    import time as time_module

    from tcja_deploy.hardware import lava_sim

    d = read_deploy(tiny_deploy_dir)
    x = tiny_input(4, seed=3)
    lines = []
    # three clock readings a chunk (one step first, then up to T): 30 fake seconds run about 37 of the 45 steps,
    # the last layer's lag is about 30, so samples 0 … 1 are complete
    monkeypatch.setattr(lava_sim, "time", type("T", (), {"perf_counter": FakeClock()}))
    lava = run_lava(d, x, np.arange(4) % 2, budget_s=30.0, log=lines.append)
    monkeypatch.setattr(lava_sim, "time", time_module)
    assert lava.extra["stopped_by_budget"] and lava.extra["samples_requested"] == 4
    k = lava.scores.shape[0]
    assert 1 <= k < 4 and all(a.output_spikes.shape[1] == k for a in lava.layers)
    emu = emulator.emulate(d.graph, x[:, :k])
    assert all(r["identical"] for r in spike_agreement(emu, lava).values())
    assert np.array_equal(lava.scores, emu.scores)
    assert len(lines) == 1 and "4 sample(s)" in lines[0] and "estimated" in lines[0] and "budget" in lines[0]
    stages = gate_stage_agreement(d.graph, x[:, :k], lava.extra["gate_stages"])
    assert stages and all(r["identical"] for per in stages.values() for r in per.values())


def test_a_budget_that_ends_inside_sample_0_checks_the_steps_each_layer_sent(tiny_deploy_dir, monkeypatch):
    from tcja_deploy.conversion import fidelity
    from tcja_deploy.hardware.verify import lava_check

    from tcja_deploy.hardware import lava_sim

    d = read_deploy(tiny_deploy_dir)
    x = tiny_input(2, seed=3)
    monkeypatch.setattr(lava_sim, "time", type("T", (), {"perf_counter": FakeClock()}))
    fid = lava_check(tiny_deploy_dir, d.graph, x, np.zeros(2, dtype=np.int64), np.zeros((2, 2)), budget_s=10.0,
                     log=lambda s: None, progress=False, mode="whole")
    assert fid["samples"] == 0 and fid["samples_requested"] == 2 and "inside sample 0" in fid["samples_reason"]
    assert fid["partial_steps"]["conv0"] > 0 and fid["layers"]["conv0"]["identical"]
    checked = [r for r in fid["layers"].values() if not r.get("not_checked")]
    assert checked and all(r["identical"] for r in checked)
    # a layer the run never reached proves nothing: the network is not called identical
    assert fid["all_layers_identical"] == (len(checked) == len(fid["layers"]))
    text = fidelity.format_table({"target": "loihi2", "data": {"source": "random", "dataset": "x"}, "T": 4,
                                  "latency_steps": 1, "float": {"accuracy": None, "samples": 2}, "lava": fid})
    assert "Lava samples checked" in text and "inside sample 0" in text


@pytest.mark.slow
def test_a_128_channel_pool_runs_on_lava(tmp_path):
    """lava-nc 0.10's Conv keeps groups in an int8: the OR pool of 128 channels is exported as 64 groups."""
    layers = (Conv(128), BatchNorm(), LIF(), MaxPool(2), Flatten(), Linear(20), LIF(), Vote(10))
    run = tmp_path / "run"
    save_model(run, tiny_model(config=tiny_config(layers, input_shape=(2, 4, 4))), {"preset": "tiny"})
    out = tmp_path / "deploy"
    deploy.convert(run, out, "loihi2", lava_samples=0, log=lambda s: None)
    graph = read_deploy(out).graph
    assert graph.nodes["pool0"].groups == 64 and graph.nodes["pool0"].weight.shape[1] == 2
    x = tiny_input(1, seed=2, shape=(2, 4, 4))
    emu, lava = emulator.emulate(graph, x), run_lava(out, x)
    agreement = spike_agreement(emu, lava)
    assert all(r["identical"] for r in agreement.values()), agreement
    assert agreement["pool0"]["spikes_lava"] > 0

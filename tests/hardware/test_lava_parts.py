"""The Lava check in parts (each segment and gate alone on recorded inputs) agrees with the whole-network run,
finds a wrong weight in the part that holds it, and shares a budget so that every part gets its turn."""

import shutil

import h5py
import numpy as np
import pytest
import torch

from tcja_deploy.conversion import deploy
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.conversion.execute import run_graph
from tcja_deploy.hardware import lava_parts, lava_sim, verify
from tcja_deploy.hardware.verify import choose_mode, lava_check

from fake_clock import FakeClock
from tiny import tiny_input, tiny_run


def _check(deploy_dir, n=2, **kw):
    d = read_deploy(deploy_dir)
    K = int(d.graph.meta["num_classes"])
    return lava_check(deploy_dir, d.graph, tiny_input(n, seed=3), np.arange(n) % 2, np.zeros((n, K)),
                      log=lambda s: None, progress=False, **kw)


def test_the_parts_agree_with_the_emulator_and_with_the_whole_network(tiny_deploy_dir):
    parts, whole = _check(tiny_deploy_dir, mode="parts"), _check(tiny_deploy_dir, mode="whole")
    assert parts["mode"] == "parts" and whole["mode"] == "whole"
    d = read_deploy(tiny_deploy_dir)
    assert [p["part"] for p in parts["parts"]] == [f"{kind} {k}" for k in range(len(d.segments))
                                                   for kind in ("segment", "gate") if kind == "segment"
                                                   or k < len(d.gates)]
    assert parts["all_layers_identical"] and whole["all_layers_identical"]
    assert list(parts["layers"]) == list(whole["layers"])
    for name, r in parts["layers"].items():  # the same spikes on Lava, part by part and as one network
        assert r["spikes_lava"] == whole["layers"][name]["spikes_lava"] and r["samples_checked"] == 2, name
    assert sum(r["spikes_lava"] for r in parts["layers"].values()) > 100
    assert parts["gate_stages"].keys() == whole["gate_stages"].keys() and parts["gate_stages"]
    assert parts["scores_identical"] and parts["samples"] == 2 and parts["accuracy"] == whole["accuracy"]
    # each part runs only its own steps: fewer than the whole network's steps times its share of processes
    assert all(p["steps"] == p["steps_planned"] < whole["steps"] for p in parts["parts"])


def test_a_wrong_weight_is_found_in_the_part_that_holds_it(tiny_deploy_dir, tmp_path):
    bad = tmp_path / "deploy"
    shutil.copytree(tiny_deploy_dir, bad)
    d = read_deploy(bad)
    last = len(d.segments) - 1
    with h5py.File(bad / d.segments[last]["file"], "r+") as f:
        first_synapse = min((k for k in f["layer"] if "weight" in f["layer"][k]), key=int)
        w = f["layer"][first_synapse]["weight"]
        w[...] = -w[...]  # the last segment's first layer with every weight negated
    r = _check(bad, mode="parts")
    first = d.segments[last]["layers"][0]
    assert not r["all_layers_identical"] and not r["layers"][first]["identical"]
    earlier = [n for s in d.segments[:last] for n in s["layers"]] + [gt["node"] for gt in d.gates]
    assert earlier and all(r["layers"][n]["identical"] for n in earlier)  # the parts before it are unaffected


def test_a_budget_is_shared_so_every_part_runs(tiny_deploy_dir, monkeypatch):
    fake = type("T", (), {"perf_counter": FakeClock()})
    monkeypatch.setattr(lava_sim, "time", fake)
    monkeypatch.setattr(lava_parts, "time", fake)
    r = _check(tiny_deploy_dir, n=3, mode="parts", budget_s=60.0)
    assert r["samples"] < 3 and "budget ended" in r["samples_reason"]
    assert all(p["steps"] >= 1 for p in r["parts"])  # every part got its turn
    stopped = [p for p in r["parts"] if p["stopped_by_budget"]]
    assert stopped and all(p["steps"] < p["steps_planned"] for p in stopped)
    checked = [v for v in r["layers"].values() if not v.get("not_checked")]
    assert checked and all(v["identical"] for v in checked)  # what was recorded agrees
    if any(v.get("not_checked") for v in r["layers"].values()):
        assert not r["all_layers_identical"]  # a layer with nothing recorded proves nothing


def test_the_samples_checked_fit_the_record_budget(tiny_deploy_dir, monkeypatch):
    d = read_deploy(tiny_deploy_dir)
    per_sample = 2 * verify.bytes_per_sample(d.graph)
    monkeypatch.setattr(verify, "LAVA_MEMORY_BUDGET", 2 * per_sample + 1)  # room for two samples' records
    assert verify.lava_samples_in_memory(d.graph, 5) == 2 and verify.lava_samples_in_memory(d.graph, 1) == 1
    monkeypatch.setattr(verify, "LAVA_MEMORY_BUDGET", 1)
    assert verify.lava_samples_in_memory(d.graph, 5) == 1  # never none
    monkeypatch.setattr(verify, "LAVA_MEMORY_BUDGET", 2 * per_sample + 1)
    r = _check(tiny_deploy_dir, n=3, mode="whole")
    assert r["samples"] == 2 and "2 of 3 requested samples fit" in r["samples_reason"]
    assert r["all_layers_identical"]


def test_auto_runs_the_whole_network_when_its_estimate_fits_the_budget(tiny_deploy_dir):
    d = read_deploy(tiny_deploy_dir)
    assert choose_mode(d, 2, "auto", 600.0)[0] == "whole"
    assert choose_mode(d, 2, "auto", None)[0] == "whole"
    mode, why = choose_mode(d, 2, "auto", 1e-6)
    assert mode == "parts" and "exceeds" in why
    assert choose_mode(d, 2, "parts", 600.0) == ("parts", "--lava-mode parts")
    with pytest.raises(ValueError):
        choose_mode(d, 2, "sideways", 600.0)


def test_a_part_alone_reproduces_the_emulator_record_of_its_output(tiny_deploy_dir):
    d = read_deploy(tiny_deploy_dir)
    x = tiny_input(1, seed=5)
    _, outputs = run_graph(d.graph, x.to(torch.float64), record=True)
    part = next(p for p in lava_parts.plan_parts(d, 1) if p.kind == "gate")
    run = lava_parts.run_part(d, part, x, outputs, "fixed_pt")
    got = run.recorded[part.layers[0]]
    assert run.samples == 1 and got.shape == tuple(outputs[part.layers[0]].shape)
    assert np.array_equal(got, np.rint(outputs[part.layers[0]].numpy()).astype(got.dtype))


@pytest.mark.slow
def test_host_gates_run_in_parts_too(tmp_path):
    run, out = tiny_run(tmp_path / "run"), tmp_path / "deploy"
    deploy.convert(run, out, "loihi2", lava_samples=0, log=lambda s: None, gate_placement="host")
    r = _check(out, mode="parts")
    assert r["all_layers_identical"] and not r["gate_stages"] and r["scores_identical"]

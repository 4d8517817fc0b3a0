"""Every benchmark end to end at toy size: the JSON has its fields and ratio = ours / peer.

``emulate`` starts Lava's simulator (about a minute here), so it is marked slow.
"""

import json
import math

import pytest

from tcja_deploy.bench import common
from tcja_deploy.bench.__main__ import parse_args, run_benchmark


def run_toy(name, tmp_path, **kw):
    opts = common.BenchOptions(size="toy", repeats=1, memory=False, out_dir=tmp_path, **kw)
    result, path = run_benchmark(name, opts)
    assert path.parent == tmp_path and path.name.startswith(f"{name}-") and path.suffix == ".json"
    doc = json.loads(path.read_text())
    check_document(doc, name)
    return doc


def check_document(doc, name):
    assert doc["benchmark"] == name and doc["timestamp"]
    machine = doc["machine"]
    for key in ("cpu_model", "cpu_count", "torch", "norse", "spikingjelly", "device", "host"):
        assert key in machine, key
    assert doc["options"]["size"] == "toy"
    assert doc["rows"], "no table rows"
    for row in doc["rows"]:
        for key in ("figure", "unit", "ours", "peer", "peer_name", "ratio", "better"):
            assert key in row, key
        if row["ours"] is not None and row["peer"] not in (None, 0):
            assert math.isclose(row["ratio"], row["ours"] / row["peer"], rel_tol=1e-9)
            assert row["ours"] > 0 and row["peer"] > 0


def test_train_step_toy(tmp_path):
    doc = run_toy("train-step", tmp_path)
    assert doc["size"]["T"] == 4 and doc["size"]["batch"] == 2
    assert doc["check"]["spikingjelly"]["spikes_equal"]
    assert sum(doc["check"]["spike_rates_ours"]) > 0
    assert {"samples/s", "s/step"} <= {r["unit"] for r in doc["rows"]}
    assert doc["samples_per_s"]["ours"] > 0 and doc["samples_per_s"]["spikingjelly"] > 0


@pytest.mark.slow
def test_train_step_ddp_scaling_toy(tmp_path):
    doc = run_toy("train-step", tmp_path, extra={"nproc": 2, "impls": ["ours"]})
    scaling = doc["ddp_scaling"]
    assert [r["processes"] for r in scaling["runs"]] == [1, 2] and scaling["backend"] == "gloo"
    assert all(r["samples_per_s"] > 0 for r in scaling["runs"])
    assert math.isclose(scaling["efficiency"], scaling["speedup"] / 2, rel_tol=1e-9)
    assert any(r["figure"].startswith("DDP train step") for r in doc["rows"])


def test_lif_layer_toy(tmp_path):
    doc = run_toy("lif-layer", tmp_path)
    per = doc["per_neurons"]["256"]
    assert per["check"]["norse"]["spikes_equal"] and per["check"]["spikingjelly"]["spikes_equal"]
    assert {r["peer_name"] for r in doc["rows"]} == {"norse", "spikingjelly"}


def test_memory_probe_runs_in_a_subprocess(tmp_path):
    opts = common.BenchOptions(size="toy", repeats=1, out_dir=tmp_path)
    mem = common.probe_memories("lif-layer", ["ours"], opts, {"T": 20, "batch": 4, "n": 256})
    assert "error" not in mem["ours"], mem
    assert mem["ours"]["peak_bytes"] >= 0 and mem["ours"]["rss_after_setup_bytes"] > 0


def test_convert_toy(tmp_path):
    doc = run_toy("convert", tmp_path)
    digits = doc["per_preset"]["digits"]
    assert digits["median_s"] > 0 and "graph.json" in digits["files"] and "model.onnx" in digits["files"]


def test_profile_toy(tmp_path):
    doc = run_toy("profile", tmp_path)
    assert doc["overhead"] > 0 and doc["goal_overhead"] == 1.2


@pytest.mark.slow
def test_emulate_toy(tmp_path):
    doc = run_toy("emulate", tmp_path)
    assert doc["check"]["all_identical"] and doc["check"]["spikes_emulator"] > 0
    assert doc["steps_per_s"]["emulator_record"] > doc["steps_per_s"]["lava_call"]


def test_cli_parses_the_documented_flags(tmp_path):
    name, opts = parse_args(["train-step", "--size", "full", "--device", "cuda", "--compile", "--amp",
                             "--repeats", "3", "--out-dir", str(tmp_path)])
    assert name == "train-step"
    assert (opts.size, opts.device, opts.compile, opts.amp, opts.repeats) == ("full", "cuda", True, True, 3)


def test_table_has_ours_peer_ratio():
    rows = [common.ratio_row("x", "ms", 2.0, 4.0, "peer", "lower")]
    table = common.format_table(rows)
    assert "ours/peer" in table and "0.500×" in table


def test_pipeline_toy(tmp_path):
    doc = run_toy("pipeline", tmp_path)
    r = doc["per_preset"]["digits"]
    assert r["convert_s"] > 0 and r["emulator_samples_per_s"] > 0 and r["train_step_s"] > 0
    assert r["lava"]["all_layers_identical"] and r["lava"]["samples_done"] == 1 and r["lava"]["processes"] > 50
    assert r["partition"]["chips"] == 1 and r["partition"]["system"]["name"] == "Oheo Gulch"
    assert {row["unit"] for row in doc["rows"]} == {"s", "samples/s", "steps/s"}

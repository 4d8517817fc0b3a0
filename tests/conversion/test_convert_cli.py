"""``python -m tcja_deploy.convert``: bad input gives one line and exit code 2; a tiny run converts end to end."""

import json
import os

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from tcja_deploy import convert
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion.graph import Graph

from tiny import tiny_run


@pytest.fixture
def run_dir(tmp_path):
    return tiny_run(tmp_path / "run")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_unknown_layer_type(run_dir, tmp_path, capsys):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"]["layers"][5] = {"type": "spiking_transformer", "heads": 4}
    (run_dir / "config.json").write_text(json.dumps(cfg))
    assert convert.main(["--run", str(run_dir), "--out", str(tmp_path / "d")]) == 2
    line = one_line_error(capsys)
    assert "layer 5" in line and "'spiking_transformer'" in line
    assert "supported layer types: avgpool, batchnorm, conv" in line
    assert not (tmp_path / "d").exists()


def test_a_gate_that_cannot_be_placed_on_neuro_cores(tmp_path, capsys):
    """A window of T = 60 steps plus the gate's latency exceeds Lava's 62-step delays: one line naming the
    layer and the limit, suggesting --gate host; nothing written."""
    from tcja_deploy.training.checkpoint import save_model
    from tiny import tiny_config, tiny_model

    run = tmp_path / "run"
    save_model(run, tiny_model(config=tiny_config(T=60)), {"preset": "tiny"})
    argv = ["--run", str(run), "--out", str(tmp_path / "d"), "--lava-samples", "0"]
    assert convert.main(argv) == 2
    line = one_line_error(capsys)
    assert "gate0" in line and "62-step delay limit" in line and "--gate host" in line, line
    assert not (tmp_path / "d").exists()


def test_run_without_weights(run_dir, tmp_path, capsys):
    (run_dir / "model.safetensors").unlink()
    assert convert.main(["--run", str(run_dir), "--out", str(tmp_path / "d")]) == 2
    assert "model.safetensors" in one_line_error(capsys)


def test_missing_run_dir(tmp_path, capsys):
    assert convert.main(["--run", str(tmp_path / "nope"), "--out", str(tmp_path / "d")]) == 2
    assert "run directory not found" in one_line_error(capsys)


def test_weights_that_do_not_match_the_config(run_dir, tmp_path, capsys):
    state = load_file(str(run_dir / "model.safetensors"))
    state["layers.0.module.weight"] = state["layers.0.module.weight"][:3]
    save_file(state, str(run_dir / "model.safetensors"))
    assert convert.main(["--run", str(run_dir), "--out", str(tmp_path / "d")]) == 2
    assert "do not match the config" in one_line_error(capsys)


def test_unsupported_target(run_dir, tmp_path, capsys):
    assert convert.main(["--target", "truenorth", "--run", str(run_dir), "--out", str(tmp_path / "d")]) == 2
    line = one_line_error(capsys)
    assert "truenorth" in line and "loihi2, lava-float, onnx" in line


def test_bad_device(run_dir, tmp_path, capsys):
    assert convert.main(["--device", "tpu:7", "--run", str(run_dir), "--out", str(tmp_path / "d")]) == 2
    assert "--device" in one_line_error(capsys)


def test_out_must_be_a_deploy_dir(run_dir, tmp_path, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    assert convert.main(["--run", str(run_dir), "--out", str(precious)]) == 2
    assert "no tcja_deploy command wrote" in one_line_error(capsys) and (precious / "thesis.tex").exists()
    assert convert.main(["--run", str(run_dir), "--out", str(run_dir)]) == 2
    assert "would write over the input" in one_line_error(capsys) and (run_dir / "model.safetensors").exists()


def test_onnx_target_writes_only_onnx(run_dir, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert convert.main(["--target", "onnx", "--run", str(run_dir), "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == [".tcja_deploy", "fidelity.json", "graph.json", "model.onnx"]
    fid = json.loads((out / "fidelity.json").read_text())
    assert fid["emulator"] is None and fid["lava"] is None and fid["onnx"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_convert_end_to_end(run_dir, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert convert.main(["--run", str(run_dir), "--out", str(out), "--lava-samples", "3"]) == 0
    printed = capsys.readouterr().out
    assert "spike agreement emulator vs Lava" in printed and "DIFFERS" not in printed
    files = sorted(os.listdir(out))
    assert files == [".tcja_deploy", "fidelity.json", "gate_0.npz", "gate_1.npz", "graph.json", "model.onnx", "segment_0.net",
                     "segment_1.net", "segment_2.net"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left
    assert oct(out.stat().st_mode)[-3:] == "755"
    doc = json.loads((out / "graph.json").read_text())
    # neuro-core gates: gate0 squeezes behind a pool (skew 1), gate1 its own input
    assert doc["target"] == "loihi2" and doc["latency_steps"] == 4 + NC.latency_steps("window", 4, 1) + 1 \
        + NC.latency_steps("window", 4, 0) + 1
    assert [s["file"] for s in doc["segments"]] == ["segment_0.net", "segment_1.net", "segment_2.net"]
    assert doc["meta"]["passes"][-1] == "quantize_loihi2" and "quantization" in doc["meta"]
    graph = Graph.from_dict(doc)
    gate = np.load(out / "gate_0.npz")
    assert str(gate["placement"]) == "neurocore" and graph.nodes["gate0"].placement == "neurocore"
    assert np.array_equal(gate["slope"], graph.nodes["gate0"].params["slope"])
    fid = json.loads((out / "fidelity.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert fid["lava"]["all_layers_identical"] and fid["lava"]["samples"] == 3
    stages = fid["lava"]["gate_stages"]
    assert set(stages) == {"gate0", "gate1"} and all(r["identical"] for s in stages.values() for r in s.values())
    assert set(stages["gate0"]) == {"squeeze", "select", "product", "clamp_relu", "clamp", "relu", "sum", "replay"}
    assert fid["float"]["accuracy"] is None  # random data: no labels
    assert set(fid["lava"]["layers"]) == {"conv0", "pool0", "conv1", "pool1", "gate0", "conv2", "gate1", "linear0"}
    assert fid["onnx"]["predictions_identical"] and fid["data"]["source"] == "random"
    # converting again replaces the directory whole
    assert convert.main(["--target", "onnx", "--run", str(run_dir), "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == [".tcja_deploy", "fidelity.json", "graph.json", "model.onnx"]


def test_dataset_of_a_run():
    from tcja_deploy.conversion.deploy import dataset_name
    from tcja_deploy.models import get_preset

    digits = get_preset("digits").model
    assert dataset_name(digits, {"preset": "digits", "encoding": "events"}) == "digits-events"
    assert dataset_name(digits, {"preset": "digits", "encoding": "images"}) == "digits-images"
    assert dataset_name(digits, {}) == "digits-events"
    assert dataset_name(digits, {"dataset": "fashion_mnist"}) == "fashion_mnist"
    assert dataset_name(digits, {"preset": "tiny"}) is None

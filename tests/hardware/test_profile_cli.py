"""python -m tcja_deploy.profile / report: error lines and exit codes, a whole run on a synthetic backend,
Ctrl-C leaving a partial profile, and (slow) the Lava and emulator backends agreeing on the counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic_activity import SyntheticBackend, synthetic_batches
from tcja_deploy import profile as profile_cli
from tcja_deploy import report as report_cli
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.hardware import backends, profiling
from tcja_deploy.hardware.lava_runtime import import_lava_runtime
from tcja_deploy.hardware.energy import REQUIRED

ROOT = Path(__file__).resolve().parents[2]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.fixture
def deploy_dir(tmp_path):
    d = tmp_path / "deploy" / "tiny"
    d.mkdir(parents=True)
    from tcja_deploy.conversion import graph as g

    graph = g.Graph({"input": g.Input((2, 8, 8)), "flatten0": g.Flatten(), "vote": g.Vote(1)},
                    {"preset": "digits", "T": 4})
    (d / "graph.json").write_text(json.dumps(graph.to_dict()))
    from tcja_deploy import outputs

    outputs.write_marker(d, "deploy")
    return d


@pytest.fixture
def synthetic(monkeypatch):
    """Route the CLI to the synthetic backend and synthetic samples."""
    backend = SyntheticBackend()
    monkeypatch.setattr(profiling, "get_backend", lambda name: backend)
    monkeypatch.setattr(profiling, "load_test_samples",
                        lambda dataset, T, samples, chunk, data_dir=None: (samples or 5, synthetic_batches(samples or 5, chunk, T)))
    return backend


@pytest.mark.skipif(backends.lava_loihi_missing() is None, reason="lava-loihi is installed here")
def test_loihi2_without_lava_loihi_is_one_line_and_exit_2(capsys, tmp_path):
    code = profile_cli.main(["--deploy", str(tmp_path / "nowhere"), "--backend", "loihi2", "--out", str(tmp_path / "p")])
    assert code == 2
    line = _one_error_line(capsys)
    assert "lava-loihi" in line and "loihi2" in line
    assert not (tmp_path / "p").exists()  # never a fake number


@pytest.mark.skipif(backends.lava_loihi_missing() is None, reason="lava-loihi is installed here")
def test_loihi2_error_from_the_real_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tcja_deploy.profile", "--deploy", str(tmp_path), "--backend",
                           "loihi2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Intel's lava-loihi" in lines[0]


def test_energy_profile_with_a_missing_constant_is_one_line_and_exit_2(capsys, tmp_path, deploy_dir):
    f = tmp_path / "mine.toml"
    consts = "\n".join(f"{k} = 1.0" for k in REQUIRED["cmos"] if k != "mac_pj")
    f.write_text(f'model = "cmos"\n[constants]\n{consts}\n')
    code = profile_cli.main(["--deploy", str(deploy_dir), "--energy-profile", str(f), "--out", str(tmp_path / "p")])
    assert code == 2
    line = _one_error_line(capsys)
    assert str(f) in line and "'mac_pj'" in line


def test_not_a_deploy_dir(capsys, tmp_path, synthetic):
    (tmp_path / "empty").mkdir()
    assert profile_cli.main(["--deploy", str(tmp_path / "empty"), "--out", str(tmp_path / "p")]) == 2
    assert "graph.json" in _one_error_line(capsys)


def test_profile_then_report(capsys, tmp_path, deploy_dir, synthetic):
    out = tmp_path / "profile" / "tiny"
    assert profile_cli.main(["--deploy", str(deploy_dir), "--samples", "5", "--chunk", "2", "--out", str(out),
                             "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "SynOps" in printed and "energy: SNN, Loihi 2" in printed and str(out / "profile.json") in printed
    doc = json.loads((out / "profile.json").read_text())
    assert doc["partial"] is False and doc["samples"]["done"] == 5
    assert doc["deploy"]["preset"] == "digits" and doc["deploy"]["dataset"] == "digits-events"
    assert doc["deploy"]["hash"].startswith("sha256:") and len(doc["deploy"]["hash"]) == 7 + 64
    assert {"lava-nc", "lava-dl", "torch"} <= set(doc["versions"])
    rep = tmp_path / "report" / "tiny"
    assert report_cli.main(["--profile", str(out), "--out", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert str(rep / "report.md") in printed and "accuracy" in printed
    assert (rep / "report.md").is_file() and (rep / "energy_breakdown.png").is_file()


def test_ctrl_c_keeps_a_partial_profile_and_exits_130(capsys, tmp_path, deploy_dir, synthetic):
    synthetic.interrupt_after = 1
    out = tmp_path / "p"
    code = profile_cli.main(["--deploy", str(deploy_dir), "--samples", "6", "--chunk", "2", "--out", str(out),
                             "--no-progress"])
    assert code == 130
    doc = json.loads((out / "profile.json").read_text())
    assert doc["partial"] is True and doc["samples"]["done"] == 2
    # a partial profile still makes a report, flagged as partial
    assert report_cli.main(["--profile", str(out), "--out", str(tmp_path / "r")]) == 0
    assert "Partial profile" in (tmp_path / "r" / "report.md").read_text()


def test_report_of_a_missing_profile(capsys, tmp_path):
    assert report_cli.main(["--profile", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "profile.json" in _one_error_line(capsys)


@pytest.fixture(scope="module")
def tiny_deploy(tmp_path_factory):
    """A random-weight conv → TCJA → pool → dense net, converted for loihi2 (graph.json + NetX + gate files)."""
    import torch

    try:  # before anything else imports Lava: earlier tests' progress bars fixed the multiprocessing context
        import_lava_runtime()
    except ImportError as e:
        pytest.skip(f"Lava is not importable: {e}")
    from tcja_deploy.conversion.deploy import convert
    from tcja_deploy.models import specs
    from tcja_deploy.models.network import TCJASNN
    from tcja_deploy.training.checkpoint import save_model

    config = specs.ModelConfig(preset="tiny", input_shape=(2, 8, 8), T=4, num_classes=2, layers=(
        specs.Conv(4), specs.BatchNorm(), specs.LIF(), specs.TCJAAttention(kernel_tla=2, kernel_cla=2),
        specs.MaxPool(2), specs.Flatten(), specs.Linear(6), specs.LIF(), specs.Vote(3)))
    torch.manual_seed(0)
    model = TCJASNN(config).eval()
    with torch.no_grad():  # enough current that every layer spikes
        for p in model.parameters():
            if p.dim() in (2, 4):
                p.mul_(6.0 if p.dim() == 4 else 40.0)
    root = tmp_path_factory.mktemp("tiny")
    save_model(root / "run", model, {"preset": "tiny"})
    convert(root / "run", root / "deploy", "loihi2", lava_samples=0)
    return root / "deploy"


@pytest.mark.slow
def test_lava_and_emulator_give_identical_counts(tiny_deploy):
    """The same samples through the bit-exact emulator and the Lava simulator → identical per-layer counts."""
    import numpy as np

    from tcja_deploy.hardware.counters import COUNT_KEYS, count_network

    rng = np.random.default_rng(0)
    frames = (rng.random((4, 3, 2, 8, 8)) < 0.3).astype(np.float32)
    labels = np.array([0, 1, 0])
    emu = count_network(backends.EmulatorBackend().run(read_deploy(tiny_deploy), frames, labels))
    lava = count_network(backends.LavaSimBackend().run(read_deploy(tiny_deploy), frames, labels))
    assert [l.name for l in emu.layers] == [l.name for l in lava.layers]
    assert all(l.counts["spikes"].sum() > 0 for l in emu.layers), "a silent layer makes the comparison weak"
    for le, ll in zip(emu.layers, lava.layers):
        for k in COUNT_KEYS:
            assert np.array_equal(le.counts[k], ll.counts[k]), (le.name, k)
    assert np.array_equal(emu.predictions, lava.predictions)
    assert emu.latency["pipeline_steps"] == lava.latency["pipeline_steps"]

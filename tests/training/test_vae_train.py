"""Training a spiking VAE through ``python -m tcja_deploy.train --preset vae_*``: run directory, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from tcja_deploy import train as train_cli
from tcja_deploy.models.presets import vae as vae_presets
from tcja_deploy.models.vae import VAEConfig
from tcja_deploy.training.checkpoint import load_state_dict
from tcja_deploy.training.config import TrainConfig
from tcja_deploy.training.vae_loop import train_vae
from tcja_deploy.training.vae_run import is_vae_run, load_vae

TINY = vae_presets.VAEPreset(
    model=VAEConfig(preset="vae_tiny", dataset="digits", in_channels=1, image_size=32, hidden=(2, 2, 3, 3),
                    latent_dim=4, k=2, T=3, kernel_tla=2, kernel_cla=2),
    epochs=2, batch_size=8, lr=1e-3, weight_decay=1e-3, loss="mmd", source="test")


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(vae_presets.VAE_PRESETS, "vae_tiny", TINY)
    return "vae_tiny"


def quiet(**kwargs):
    return dict(progress=False, log=lambda message: None, **kwargs)


def test_train_writes_a_vae_run_and_resume_continues_bit_identically(tmp_path, tiny_preset):
    full = tmp_path / "full"
    metrics = train_vae(TrainConfig(preset=tiny_preset, out=str(full), max_samples=16, seed=3), **quiet())
    assert metrics["epochs"] == 2 and metrics["use_tcja"] and 0 < metrics["test_reconstruction_mse"] < 4
    assert is_vae_run(full)
    config = json.loads((full / "config.json").read_text())
    assert config["kind"] == "vae" and config["vae"]["hidden"] == [2, 2, 3, 3]
    assert config["optimizer"]["name"] == "AdamW"
    lines = (full / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["p"] for line in lines] == [pytest.approx(0.1), pytest.approx(0.2)]
    model, _ = load_vae(full)
    assert model.config.use_tcja and not model.training

    # the same run killed right after epoch 1's checkpoint, then resumed: the same weights and metrics
    part = tmp_path / "part"

    def stop_after_epoch_1(message):
        if message.startswith("epoch 1/2:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(TrainConfig(preset=tiny_preset, out=str(part), max_samples=16, seed=3), progress=False,
                  log=stop_after_epoch_1)
    assert not (part / "metrics.json").exists() and (part / "train_state.safetensors").exists()
    resumed = train_vae(TrainConfig(resume=str(part)), **quiet())
    assert resumed["test_reconstruction_mse"] == metrics["test_reconstruction_mse"]
    a, b = load_state_dict(full / "model.safetensors"), load_state_dict(part / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_tcja_is_the_same_network_without_attention(tmp_path, tiny_preset):
    metrics = train_vae(TrainConfig(preset=tiny_preset, out=str(tmp_path / "r"), max_samples=8, epochs=1,
                                    no_tcja=True), **quiet())
    assert metrics["use_tcja"] is False and metrics["tcja_blocks"] == []
    model, _ = load_vae(tmp_path / "r")
    assert not any("tcja" in name for name in model.state_dict())


def test_tcja_blocks_choose_where_attention_goes(tmp_path, tiny_preset):
    metrics = train_vae(TrainConfig(preset=tiny_preset, out=str(tmp_path / "r"), max_samples=8, epochs=1,
                                    tcja_blocks="enc1, dec3"), **quiet())
    assert metrics["tcja_blocks"] == ["enc1", "dec3"]
    model, _ = load_vae(tmp_path / "r")
    assert sorted({n.split(".tcja.")[0] for n in model.state_dict() if ".tcja." in n}) == ["decoder.3", "encoder.1"]


def test_cli_trains_and_refuses_bad_input(tmp_path, tiny_preset, capsys):
    out = tmp_path / "cli"
    assert train_cli.main(["--preset", tiny_preset, "--out", str(out), "--max-samples", "8", "--epochs", "1"]) == 0
    assert "test reconstruction MSE" in capsys.readouterr().out
    cases = [
        (["--preset", tiny_preset, "--out", str(out)], "already holds a run"),
        (["--preset", tiny_preset, "--amp", "--out", str(tmp_path / "x")], "--amp: not available"),
        (["--preset", tiny_preset, "--loss", "mse", "--out", str(tmp_path / "x")], "--loss 'mse'"),
        (["--preset", "digits", "--no-tcja", "--out", str(tmp_path / "x")], "--no-tcja: applies"),
        (["--preset", "digits", "--tcja-blocks", "enc0", "--out", str(tmp_path / "x")], "--tcja-blocks: applies"),
        (["--preset", tiny_preset, "--tcja-blocks", "enc7", "--out", str(tmp_path / "x")], "--tcja-blocks enc7"),
        (["--preset", tiny_preset, "--tcja-blocks", "enc0", "--no-tcja", "--out", str(tmp_path / "x")],
         "contradicts"),
        (["--resume", str(out), "--epochs", "1", "--no-tcja"], "not --no-tcja"),
        (["--preset", "vae_mnist", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "x")],
         "MNIST not found"),
        (["--preset", "vae_cifar10", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "x")],
         "CIFAR10 not found"),
        (["--preset", "vae_celeba", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "x")],
         "CelebA not found"),
    ]
    for argv, message in cases:
        assert train_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "x").exists()


def test_lock_refuses_a_second_writer(tmp_path, tiny_preset):
    from tcja_deploy.errors import UserError
    from tcja_deploy.training.lock import run_lock

    run = tmp_path / "locked"
    run.mkdir()
    with run_lock(run):
        with pytest.raises(UserError, match="in use"):
            train_vae(TrainConfig(preset=tiny_preset, out=str(run), max_samples=8, epochs=1), **quiet())

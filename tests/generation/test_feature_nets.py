"""The in-project feature networks: train → load round trip, run directory, resume, cache, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tcja_deploy.errors import UserError
from tcja_deploy.generation import feature_nets
from tcja_deploy.generation.feature_models import FeatureNetConfig, ImageAutoencoder, default_config
from tcja_deploy.generation.feature_nets import (ensure_feature_nets, load_feature_net, train_feature_net)
from tcja_deploy.training import checkpoint
from tcja_deploy.training.state import STATE_FILE

QUIET = dict(progress=False, log=lambda message: None)
ONE_EPOCH = {"classifier": 1, "autoencoder": 1}


def tiny_set(n: int = 48, shape=(1, 16, 16), classes: int = 3, seed: int = 0):
    """Images in [−1, 1] whose class is a bright row band (learnable), labels int64."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.rand((n, *shape), generator=g) * 0.4 - 1.0
    band = shape[1] // classes
    for i, c in enumerate(labels.tolist()):
        images[i, :, c * band:(c + 1) * band] = 0.8
    return images, labels


@pytest.mark.parametrize("kind", ["classifier", "autoencoder"])
def test_train_then_load_gives_equal_features(tmp_path, kind):
    x, y = tiny_set()
    net = train_feature_net(kind, x, y, tmp_path / "run", epochs=2, test_images=x[:10], test_labels=y[:10], **QUIET)
    loaded = load_feature_net(tmp_path / "run")
    a, b = net.features(x), loaded.features(x)
    assert a.shape == (48, loaded.feature_dim) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # eval mode: a sample's features do not depend on its batch (to the rounding of other conv kernels)
    np.testing.assert_allclose(loaded.features(x, batch_size=7), b, rtol=0, atol=1e-5)
    assert loaded.config == net.config
    if kind == "classifier":
        p = loaded.probs(x)
        assert p.shape == (48, 3)
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(p, net.probs(x))
        with pytest.raises(UserError, match="does not reconstruct"):
            loaded.reconstruct(x)
    else:
        assert loaded.feature_dim == 64  # FSVAE's latent size for 1-channel images
        r = loaded.reconstruct(x)
        assert r.shape == x.shape and float(r.abs().max()) <= 1.0
        with pytest.raises(UserError, match="no class probabilities"):
            loaded.probs(x)


def test_run_directory_contents(tmp_path):
    x, y = tiny_set()
    train_feature_net("classifier", x, y, tmp_path / "run", epochs=3, test_images=x, test_labels=y, dataset="toy",
                      **QUIET)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == feature_nets.FORMAT
    assert config["network"] == {"kind": "classifier", "image_shape": [1, 16, 16], "num_classes": 3,
                                 "feature_dim": 64}
    assert config["train"]["epochs"] == 3 and config["train"]["train_samples"] == 48
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["kind"] == "classifier" and metrics["epochs"] == 3 and len(metrics["history"]) == 3
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_samples"] == 48
    assert [r["lr"] for r in metrics["history"]] == pytest.approx([1e-2, 7.5e-3, 2.5e-3])
    marker = json.loads((run / ".tcja_deploy").read_text())
    assert marker["kind"] == "feature_net" and marker["complete"] is True
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "config.json", "metrics.json", "model.safetensors", STATE_FILE]
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name not in (".tcja_deploy", ".lock")]


def test_autoencoder_learns_to_reconstruct(tmp_path):
    x, _ = tiny_set(64)
    net = train_feature_net("autoencoder", x, None, tmp_path / "ae", epochs=10, batch_size=8, test_images=x, **QUIET)
    history = net.metrics["history"]
    # a constant image at the mean scores about the pixel variance; training must beat that by far
    baseline = float(((x - x.mean(0)) ** 2).mean())
    assert history[-1]["test_recon_mse"] < history[0]["test_recon_mse"]
    assert net.metrics["test_recon_mse"] < 0.5 * baseline


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    x, y = tiny_set()
    straight = train_feature_net("classifier", x, y, tmp_path / "a", epochs=3, **QUIET)

    real_epoch = feature_nets._train_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(feature_nets, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_feature_net("classifier", x, y, tmp_path / "b", epochs=3, **QUIET)
    monkeypatch.setattr(feature_nets, "_train_epoch", real_epoch)
    assert (tmp_path / "b" / STATE_FILE).is_file() and not (tmp_path / "b" / "metrics.json").exists()
    with pytest.raises(UserError, match="did not finish"):
        load_feature_net(tmp_path / "b")
    resumed = train_feature_net("classifier", x, y, tmp_path / "b", epochs=3, resume=True, **QUIET)
    assert [r["epoch"] for r in resumed.metrics["history"]] == [1, 2, 3]
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_interrupt_in_the_first_epoch_leaves_no_directory(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_nets, "_train_epoch", interrupted)
    x, y = tiny_set()
    with pytest.raises(KeyboardInterrupt):
        train_feature_net("classifier", x, y, tmp_path / "run", epochs=2, **QUIET)
    assert not (tmp_path / "run").exists()


def test_resume_checks(tmp_path):
    x, y = tiny_set()
    with pytest.raises(UserError, match="no training-state checkpoint"):
        train_feature_net("classifier", x, y, tmp_path / "new", epochs=1, resume=True, **QUIET)
    train_feature_net("classifier", x, y, tmp_path / "run", epochs=1, **QUIET)
    x4, y4 = tiny_set(classes=4)
    with pytest.raises(UserError, match="trained a different network"):
        train_feature_net("classifier", x4, y4, tmp_path / "run", epochs=2, resume=True, **QUIET)


def test_bad_training_inputs(tmp_path):
    x, y = tiny_set()
    with pytest.raises(UserError, match="at least 2 classes"):
        train_feature_net("classifier", x, torch.zeros(48, dtype=torch.int64), tmp_path / "r", epochs=1, **QUIET)
    with pytest.raises(UserError, match="47 labels for 48 images"):
        train_feature_net("classifier", x, y[:47], tmp_path / "r", epochs=1, **QUIET)
    with pytest.raises(UserError, match="power of two"):
        train_feature_net("autoencoder", torch.zeros(4, 1, 12, 12), None, tmp_path / "r", epochs=1, **QUIET)
    with pytest.raises(UserError, match="kind"):
        train_feature_net("gan", x, y, tmp_path / "r", epochs=1, **QUIET)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="refusing to replace"):
        train_feature_net("classifier", x, y, tmp_path / "other", epochs=1, **QUIET)
    assert not (tmp_path / "r").exists()


def test_features_check_the_image_shape(tmp_path):
    x, y = tiny_set()
    net = train_feature_net("classifier", x, y, tmp_path / "run", epochs=1, **QUIET)
    with pytest.raises(UserError, match=r"expected shape \[N, 1, 16, 16\], got \[2, 1, 32, 32\]"):
        net.features(torch.zeros(2, 1, 32, 32))


def _one_line(message: str) -> bool:
    return "\n" not in message and len(message) < 400


def test_load_bad_files_raise_one_line_errors(tmp_path):
    x, y = tiny_set()
    train_feature_net("autoencoder", x, None, tmp_path / "run", epochs=1, **QUIET)
    run = tmp_path / "run"
    with pytest.raises(UserError, match="run directory not found"):
        load_feature_net(tmp_path / "missing")

    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[:100])
    with pytest.raises(UserError, match="model.safetensors: corrupted") as info:
        load_feature_net(run)
    assert _one_line(str(info.value))
    (run / "model.safetensors").unlink()
    (run / STATE_FILE).unlink()
    with pytest.raises(UserError, match="model.safetensors: weights file not found"):
        load_feature_net(run)

    # weights of another network (a classifier's) under this config
    other = ImageAutoencoder(FeatureNetConfig("autoencoder", (1, 16, 16), 0, 32))
    checkpoint.save_state_dict(run / "model.safetensors", other.state_dict())
    with pytest.raises(UserError, match="weights do not match the config") as info:
        load_feature_net(run)
    assert str(run / "model.safetensors") in str(info.value)

    config = run / "config.json"
    good = config.read_text()
    config.write_text("{not json")
    with pytest.raises(UserError, match="config.json: not valid JSON"):
        load_feature_net(run)
    config.write_text(json.dumps({"format": "tcja_deploy.graph/1"}))
    with pytest.raises(UserError, match="not a feature-net config"):
        load_feature_net(run)
    doc = json.loads(good)
    doc["network"]["kind"] = "gan"
    config.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="config.json: kind 'gan'"):
        load_feature_net(run)
    config.unlink()
    with pytest.raises(UserError, match="config.json: file not found"):
        load_feature_net(run)


def test_ensure_trains_once_then_loads(tmp_path):
    x, y = tiny_set()
    lines: list[str] = []
    splits, labels = {"train": x, "test": x[:12]}, {"train": y, "test": y[:12]}
    classifier, autoencoder = ensure_feature_nets("toy", splits, labels, tmp_path, epochs=ONE_EPOCH, progress=False,
                                                  log=lines.append)
    assert (tmp_path / "toy-classifier" / "model.safetensors").is_file()
    assert (tmp_path / "toy-autoencoder" / "model.safetensors").is_file()
    assert classifier.kind == "classifier" and autoencoder.kind == "autoencoder"
    assert "test_accuracy" in classifier.metrics and "test_recon_mse" in autoencoder.metrics
    trained = len(lines)
    again = ensure_feature_nets("toy", splits, labels, tmp_path, progress=False, log=lines.append)
    assert len(lines) == trained  # nothing trained the second time
    np.testing.assert_array_equal(again[0].features(x), classifier.features(x))
    np.testing.assert_array_equal(again[1].features(x), autoencoder.features(x))

    bigger = torch.zeros(48, 1, 32, 32)
    with pytest.raises(UserError, match=r"toy-classifier: trained on classifier images \[1, 16, 16\], these are "
                                        r"\[1, 32, 32\]; delete it to retrain"):
        ensure_feature_nets("toy", {"train": bigger}, {"train": y}, tmp_path, progress=False, log=lines.append)
    with pytest.raises(UserError, match="trained on 48 images, this train split has 40"):
        ensure_feature_nets("toy", {"train": x[:40]}, {"train": y[:40]}, tmp_path, progress=False, log=lines.append)


def test_ensure_without_classes_gives_no_classifier(tmp_path):
    x, _ = tiny_set(16)
    classifier, autoencoder = ensure_feature_nets("faces", {"train": x}, {"train": torch.zeros(16, dtype=torch.int64)},
                                                  tmp_path, epochs=ONE_EPOCH, progress=False, log=lambda m: None)
    assert classifier is None and autoencoder.kind == "autoencoder"
    assert not (tmp_path / "faces-classifier").exists()


def test_default_configs_follow_fsvae():
    assert default_config("autoencoder", (1, 32, 32)).feature_dim == 64
    assert default_config("autoencoder", (3, 32, 32)).feature_dim == 128
    ae64 = ImageAutoencoder(default_config("autoencoder", (3, 64, 64)))  # AELarge: 5 stride-2 layers to 2×2
    convs = [m for m in ae64.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512]
    assert ae64(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    ae32 = ImageAutoencoder(default_config("autoencoder", (1, 32, 32)))
    assert [c.out_channels for c in ae32.encoder if isinstance(c, torch.nn.Conv2d)] == [32, 64, 128, 256]
    assert ae32.latent.in_features == 256 * 4


def test_a_run_directory_in_use_is_refused(tmp_path):
    from tcja_deploy.training.lock import run_lock

    x, y = tiny_set()
    run = tmp_path / "run"
    train_feature_net("classifier", x, y, run, epochs=1, **QUIET)
    before = (run / "model.safetensors").read_bytes()
    with run_lock(run):
        with pytest.raises(UserError, match="in use by pid"):
            train_feature_net("classifier", x, y, run, epochs=1, seed=1, **QUIET)
    assert (run / "model.safetensors").read_bytes() == before


def test_a_new_run_replaces_an_old_feature_net_directory(tmp_path):
    x, y = tiny_set()
    run = tmp_path / "run"
    train_feature_net("classifier", x, y, run, epochs=2, **QUIET)
    net = train_feature_net("autoencoder", x, None, run, epochs=1, **QUIET)
    assert json.loads((run / "metrics.json").read_text())["kind"] == "autoencoder"
    assert len(net.metrics["history"]) == 1
    assert load_feature_net(run).kind == "autoencoder"

"""``python -m tcja_deploy.generate`` end to end on a tiny VAE run; the exit-2 cases of generate and convert."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tcja_deploy import convert as convert_cli
from tcja_deploy import generate
from tcja_deploy.models.presets import vae as vae_presets
from tcja_deploy.models.vae import VAEConfig
from tcja_deploy.training.config import TrainConfig
from tcja_deploy.training.vae_loop import train_vae

TINY = vae_presets.VAEPreset(
    model=VAEConfig(preset="vae_tiny", dataset="digits", in_channels=1, image_size=32, hidden=(2, 2, 3, 3),
                    latent_dim=4, k=2, T=3, kernel_tla=2, kernel_cla=2),
    epochs=1, batch_size=16, lr=1e-3, weight_decay=1e-3, loss="mmd", source="test")


@pytest.fixture(scope="module")
def tiny_vae_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(vae_presets.VAE_PRESETS, "vae_tiny", TINY)
    root = tmp_path_factory.mktemp("gen")
    train_vae(TrainConfig(preset="vae_tiny", out=str(root / "run"), max_samples=16), progress=False,
              log=lambda message: None)
    mp.undo()
    return root / "run"


@pytest.fixture
def fast_feature_nets(monkeypatch):
    """The feature networks train for one epoch (their quality is not under test here)."""
    from tcja_deploy.generation import feature_nets

    monkeypatch.setattr(feature_nets, "default_epochs", lambda *args, **kwargs: 1)


def test_generate_writes_pngs_and_finite_metrics(tiny_vae_run, tmp_path, fast_feature_nets, capsys):
    out = tmp_path / "gen"
    assert generate.main(["--run", str(tiny_vae_run), "--out", str(out), "--n", "24",
                          "--feature-nets", str(tmp_path / "fn")]) == 0
    assert "not comparable to Inception-based figures" in capsys.readouterr().out
    for name, (cols, rows) in {"samples.png": (8, 3), "reconstructions.png": (8, 8),
                               "interpolation.png": (10, 4)}.items():
        with Image.open(out / name) as img:
            assert img.format == "PNG"
            assert img.size == (2 * (cols * 34 + 2), 2 * (rows * 34 + 2)), name  # 32 px tiles, 2 px gaps, ×2
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_samples"] == 24 and m["n_test"] == 359 and m["use_tcja"] is True
    for key in ("reconstruction_mse", "autoencoder_fid", "classifier_fid", "classifier_score"):
        assert math.isfinite(m[key]["value"]), key
    for key in ("autoencoder_fid", "classifier_fid", "classifier_score"):
        assert m[key]["note"] == "not comparable to Inception-based figures"
    assert m["autoencoder_fid"]["value"] > 0 and 1 <= m["classifier_score"]["value"] <= 10
    # reconstruction MSE is that of the model's reconstructions (recomputed independently)
    from tcja_deploy.data.image_sets import load_image_set
    from tcja_deploy.training.vae_run import load_vae

    model, _ = load_vae(tiny_vae_run)
    test, _ = load_image_set("digits", "test")
    torch.manual_seed(0)
    recon = torch.cat([model.reconstruct(test[i:i + 128]) for i in range(0, len(test), 128)])
    assert m["reconstruction_mse"]["value"] == pytest.approx(float(((recon - test) ** 2).mean()), rel=1e-5)
    # run again into the same folder (feature nets now cached, not trained): replaced whole, the same numbers
    assert generate.main(["--run", str(tiny_vae_run), "--out", str(out), "--n", "24",
                          "--feature-nets", str(tmp_path / "fn")]) == 0
    again = json.loads((out / "metrics.json").read_text())
    for key in ("reconstruction_mse", "autoencoder_fid", "classifier_fid", "classifier_score"):
        assert again[key]["value"] == m[key]["value"], key


def test_grid_layout():
    images = torch.full((3, 1, 2, 2), -1.0)
    images[1] = 1.0
    g = generate.grid(images, columns=2, pad=1)
    assert g.shape == (2 * 3 + 1, 2 * 3 + 1, 1)
    assert (g[1:3, 1:3] == 0).all() and (g[1:3, 4:6] == 255).all() and (g[4:6, 1:3] == 0).all()
    assert (g[0] == 255).all()


def test_interpolation_goes_from_a_to_b():
    a, b = torch.zeros(4, 6), torch.ones(4, 6)
    steps = generate.interpolate_latents(a, b, 5, torch.Generator().manual_seed(0))
    assert torch.equal(steps[0], a) and torch.equal(steps[-1], b)
    counts = steps.sum(dim=(1, 2))
    assert bool((counts[1:] >= counts[:-1]).all())


def test_generate_and_convert_refuse_the_wrong_kind_of_run(tiny_vae_run, tmp_path, capsys):
    from tiny import tiny_run

    classifier = tiny_run(tmp_path / "classifier")
    assert generate.main(["--run", str(classifier), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "a classifier run" in err and err.count("\n") == 1
    assert convert_cli.main(["--target", "onnx", "--run", str(tiny_vae_run), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "a spiking-VAE run converts for --target loihi2 only" in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv,message", [
    (["--n", "0"], "--n 0: must be ≥ 1"),
    (["--inception", "/nonexistent/inception.pt"], "/nonexistent/inception.pt: Inception weights file not found"),
    (["--device", "tpu"], "--device"),
])
def test_generate_bad_flags(tiny_vae_run, tmp_path, capsys, argv, message):
    assert generate.main(["--run", str(tiny_vae_run), "--out", str(tmp_path / "g"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists()


def test_inception_without_clean_fid_is_one_line(tiny_vae_run, tmp_path, fast_feature_nets, capsys):
    import importlib.util
    import zipfile

    if importlib.util.find_spec("cleanfid") is not None:
        pytest.skip("clean-fid is installed: this checks the message when it is not")
    weights = tmp_path / "inception-2015-12-05.pt"
    with zipfile.ZipFile(weights, "w") as z:
        z.writestr("archive/data.pkl", b"")
    assert generate.main(["--run", str(tiny_vae_run), "--out", str(tmp_path / "g"), "--n", "8",
                          "--inception", str(weights), "--feature-nets", str(tmp_path / "fn")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # (the feature nets' training lines come first)
    assert err[-1].startswith("error: ") and "clean-fid" in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "g").exists()


def test_generate_refuses_an_unfinished_run(tiny_vae_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "unfinished"
    shutil.copytree(tiny_vae_run, run)
    (run / "metrics.json").unlink()
    assert generate.main(["--run", str(run), "--out", str(tmp_path / "g")]) == 2
    assert "unfinished run" in capsys.readouterr().err


def test_to_uint8_range():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 4)
    assert generate.to_uint8(x).ravel().tolist() == [0, 128, 255, 255]
    assert np.asarray(generate.to_uint8(x)).dtype == np.uint8

"""The decoder fidelity measurement: PSNR per image as defined, the float graph equal to the model in float32,
and Lava identical to the emulator (tiny VAE, seconds)."""

from __future__ import annotations

import math

import pytest
import torch

from tcja_deploy.hardware.vae_fidelity import decoder_fidelity, psnr_per_image
from vae_tiny import tiny_vae


def test_psnr_per_image_is_ten_log_of_four_over_mse():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.stack([torch.full((1, 2, 2), 0.1), torch.full((1, 2, 2), 1.0)])
    p = psnr_per_image(a, b)
    assert p[0].item() == pytest.approx(10 * math.log10(4 / 0.01))
    assert p[1].item() == pytest.approx(10 * math.log10(4.0))


def test_decoder_fidelity_on_a_tiny_vae():
    pytest.importorskip("lava")
    model = tiny_vae(seed=2)
    gen = torch.Generator().manual_seed(3)
    train, test = torch.rand(24, 1, 8, 8, generator=gen) * 2 - 1, torch.rand(6, 1, 8, 8, generator=gen) * 2 - 1
    r = decoder_fidelity(model, train, test, lava_samples=2, prior_calibration=16)
    assert r["float_vs_model"]["max_abs_float32"] < 1e-5
    assert r["test_reconstruction"]["n"] == 6 and r["prior_samples"]["n"] == 6
    s = r["test_reconstruction"]["psnr_db"]
    assert s["min"] <= s["median"] <= s["max"] and s["min"] > 10
    assert r["lava"]["samples"] == 2 and r["lava"]["all_layers_identical"]

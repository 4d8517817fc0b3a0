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


def test_encoder_fidelity_on_a_tiny_vae():
    """The float encoder graph gives the model's x exactly; the fixed-point chain is measured, not assumed equal."""
    from tcja_deploy.conversion import vae_graph as V
    from tcja_deploy.hardware.vae_fidelity import encoder_fidelity

    model = tiny_vae(seed=2)
    gen = torch.Generator().manual_seed(4)
    train, test = torch.rand(32, 1, 8, 8, generator=gen) * 2 - 1, torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
    float_dec = V.convert_decoder(model)
    fixed_dec = V.quantize_decoder(float_dec, (torch.rand(4, 16, 6, generator=gen) < 0.5).float())
    r = encoder_fidelity(model, train, test, float_dec, fixed_dec, seed=1)
    assert r["float_vs_model"]["agreement"] == 1.0 and 0 < r["float_vs_model"]["rate_a"] < 1
    assert 0.8 < r["latent_input"]["agreement"] <= 1 and r["latent_input"]["values"] == 4 * 8 * 6
    rec = r["reconstruction"]
    assert rec["n"] == 8 and rec["recon_mse_float"] > 0 and rec["recon_mse_fixed"] > 0
    assert r["graph"].quantized and r["graph"].nodes["input"].payload_bits > 0
    # the same random picks: with identical x the posterior z would agree everywhere; measured here
    assert 0 < r["posterior_z"]["agreement"] <= 1

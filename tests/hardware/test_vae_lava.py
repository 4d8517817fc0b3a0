"""The fixed-point VAE decoder and encoder on Lava's simulator equal the emulator spike for spike and code for code,
on every layer (docs/DESIGN.md §13)."""

from __future__ import annotations

import pytest
import torch

from tcja_deploy.conversion import vae_graph as V
from tcja_deploy.errors import UserError
from vae_tiny import latents, tiny_vae

pytest.importorskip("lava")

from tcja_deploy.hardware.vae_lava import compare_chain, chain_lags, run_chain_lava  # noqa: E402


@pytest.fixture(scope="module")
def decoder_on_lava():
    """A tiny quantized decoder, three latent trains and one Lava run of them (shared: Lava takes ~30 s)."""
    model = tiny_vae(seed=0)
    q = V.quantize_decoder(V.convert_decoder(model), latents(4, 64, 6, seed=4))
    z = latents(4, 3, 6, seed=11)
    return q, z, run_chain_lava(q, z)


def test_lava_decoder_equals_the_emulator_on_every_layer(decoder_on_lava):
    q, z, lava = decoder_on_lava
    result = compare_chain(q, z, lava=lava)
    assert set(result["layers"]) == {"from_latent.lif", "dec0.lif", "dec0.tcja_gate", "dec1.lif", "dec1.tcja_gate"}
    for name, layer in result["layers"].items():
        assert layer["events"] > 0, name  # every layer is active: equality is not 0 == 0
        assert layer["identical"], (name, layer)
    assert result["all_layers_identical"]
    # the lags are one step per synapse and a window gate's T + 8
    lags = chain_lags(q)
    assert lags["from_latent.lif"] == 2 and lags["dec0.lif"] == 3 and lags["dec0.tcja_gate"] == 3 + 4 + 8


def test_a_changed_integer_shows_up_as_a_difference(decoder_on_lava):
    """The comparison can fail: the same Lava run against an emulator whose first synapse differs."""
    q, z, lava = decoder_on_lava
    w = q.nodes["from_latent"].weight.copy()
    w[:, :] = 254
    other = q.replace({**q.nodes, "from_latent": type(q.nodes["from_latent"])(w)})
    result = compare_chain(other, z, lava=lava)
    assert not result["layers"]["from_latent.lif"]["identical"]
    assert not result["all_layers_identical"]


def test_runner_refuses_a_float_graph_and_wrong_latents():
    model = tiny_vae(seed=0)
    cuba = V.convert_decoder(model)
    with pytest.raises(UserError):
        run_chain_lava(cuba, latents(4, 1, 6))
    q = V.quantize_decoder(cuba, latents(4, 16, 6))
    with pytest.raises(UserError):
        run_chain_lava(q, torch.zeros(3, 1, 6))


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def encoder_on_lava():
    """A tiny quantized encoder (graded 8-bit image input, two conv blocks with neuro-core gates, to_latent), three
    images and one Lava run of them (shared; ~5 s)."""
    model = tiny_vae(seed=0)
    q = V.quantize_encoder(V.convert_encoder(model), _images(64, seed=3))
    x = V.encoder_input(_images(3, seed=8), model.config.T)
    return q, x, run_chain_lava(q, x)


def test_lava_encoder_equals_the_emulator_on_every_layer(encoder_on_lava):
    q, x, lava = encoder_on_lava
    assert q.nodes["input"].payload_bits > 0  # the images arrive as graded payloads
    result = compare_chain(q, x, lava=lava)
    assert set(result["layers"]) == {"enc0.lif", "enc0.tcja_gate", "enc1.lif", "enc1.tcja_gate", "to_latent.lif"}
    for name, layer in result["layers"].items():
        assert layer["events"] > 0, name
        assert layer["identical"], (name, layer)
    assert result["all_layers_identical"] and result["samples"] == 3
    lags = chain_lags(q)
    assert lags["enc0.lif"] == 2 and lags["enc0.tcja_gate"] == 2 + 4 + 8 and lags["to_latent.lif"] == 28


def test_a_changed_encoder_weight_shows_up_as_a_difference(encoder_on_lava):
    q, x, lava = encoder_on_lava
    node = q.nodes["enc1"]
    w = node.weight.copy()
    w.flat[0] = 254 if w.flat[0] != 254 else -254
    other = q.replace({**q.nodes, "enc1": type(node)(w, stride=node.stride, padding=node.padding,
                                                        scale=node.scale, input_scale=node.input_scale)})
    result = compare_chain(other, x, lava=lava)
    assert result["layers"]["enc0.lif"]["identical"]  # upstream of the change
    assert not result["layers"]["enc1.lif"]["identical"]
    assert not result["all_layers_identical"]


def test_runner_refuses_an_image_of_the_wrong_shape(encoder_on_lava):
    q, _, _ = encoder_on_lava
    with pytest.raises(UserError):
        run_chain_lava(q, V.encoder_input(_images(1, seed=1), 4)[:, :, :1])  # one channel, not the split two

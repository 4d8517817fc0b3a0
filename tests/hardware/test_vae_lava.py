"""The fixed-point VAE decoder on Lava's simulator equals the emulator spike for spike and code for code, on every
layer (docs/DESIGN.md §13)."""

from __future__ import annotations

import pytest
import torch

from tcja_deploy.conversion import vae_graph as V
from tcja_deploy.errors import UserError
from vae_tiny import latents, tiny_vae

pytest.importorskip("lava")

from tcja_deploy.hardware.vae_lava import compare_decoder, decoder_lags, run_decoder_lava  # noqa: E402


@pytest.fixture(scope="module")
def decoder_on_lava():
    """A tiny quantized decoder, three latent trains and one Lava run of them (shared: Lava takes ~30 s)."""
    model = tiny_vae(seed=0)
    q = V.quantize_decoder(V.convert_decoder(model), latents(4, 64, 6, seed=4))
    z = latents(4, 3, 6, seed=11)
    return q, z, run_decoder_lava(q, z)


def test_lava_decoder_equals_the_emulator_on_every_layer(decoder_on_lava):
    q, z, lava = decoder_on_lava
    result = compare_decoder(q, z, lava=lava)
    assert set(result["layers"]) == {"from_latent.lif", "dec0.lif", "dec0.tcja_gate", "dec1.lif", "dec1.tcja_gate"}
    for name, layer in result["layers"].items():
        assert layer["events"] > 0, name  # every layer is active: equality is not 0 == 0
        assert layer["identical"], (name, layer)
    assert result["all_layers_identical"]
    # the lags are one step per synapse and a window gate's T + 8
    lags = decoder_lags(q)
    assert lags["from_latent.lif"] == 2 and lags["dec0.lif"] == 3 and lags["dec0.tcja_gate"] == 3 + 4 + 8


def test_a_changed_integer_shows_up_as_a_difference(decoder_on_lava):
    """The comparison can fail: the same Lava run against an emulator whose first synapse differs."""
    q, z, lava = decoder_on_lava
    w = q.nodes["from_latent"].weight.copy()
    w[:, :] = 254
    other = q.replace({**q.nodes, "from_latent": type(q.nodes["from_latent"])(w)})
    result = compare_decoder(other, z, lava=lava)
    assert not result["layers"]["from_latent.lif"]["identical"]
    assert not result["all_layers_identical"]


def test_runner_refuses_a_float_graph_and_wrong_latents():
    model = tiny_vae(seed=0)
    cuba = V.convert_decoder(model)
    with pytest.raises(UserError):
        run_decoder_lava(cuba, latents(4, 1, 6))
    q = V.quantize_decoder(cuba, latents(4, 16, 6))
    with pytest.raises(UserError):
        run_decoder_lava(q, torch.zeros(3, 1, 6))

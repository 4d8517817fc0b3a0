"""The spiking VAE's decoder in the conversion IR: the float graph computes the model's images, the passes keep
them, the fixed-point graph has the Loihi 2 node kinds and survives graph.json (docs/DESIGN.md §13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import vae_graph as V
from tcja_deploy.conversion.execute import run_graph
from vae_tiny import latents, tiny_vae


@pytest.mark.parametrize("use_tcja", [True, False])
def test_float_graph_and_passes_compute_the_models_images(use_tcja):
    model = tiny_vae(use_tcja=use_tcja)
    z = latents(4, 7, 6)
    ref = model.decode(z).double()
    built = V.build_decoder_graph(model)
    kinds = [n.kind for n in built.nodes.values()]
    assert kinds.count("conv_transpose2d") == 2 and kinds[-1] == "image_readout"
    assert kinds.count("tcja") == (2 if use_tcja else 0)
    torch.testing.assert_close(run_graph(built, z.double()), ref, rtol=0, atol=1e-5)
    cuba = V.convert_decoder(model)
    assert cuba.meta["passes"] == ["fold_batchnorm", "tcja_to_gate", "lif_to_cuba"]
    assert not any(isinstance(n, (g.BatchNorm, g.LIF, g.TCJA)) for n in cuba.nodes.values())
    torch.testing.assert_close(run_graph(cuba, z.double()), ref, rtol=0, atol=1e-5)


def test_float_graph_follows_the_model_where_it_matters():
    """A change to one decoder weight changes the model and the graph alike (the graph reads the model)."""
    model = tiny_vae(seed=3)
    z = latents(4, 5, 6, seed=2)
    with torch.no_grad():
        model.decoder[1].layer.weight.mul_(-1.5)
    torch.testing.assert_close(run_graph(V.convert_decoder(model), z.double()), model.decode(z).double(), rtol=0,
                               atol=1e-5)


def test_fixed_point_graph_has_loihi_kinds_and_survives_json():
    model = tiny_vae()
    q = V.quantize_decoder(V.convert_decoder(model), latents(4, 32, 6, seed=4))
    kinds = [n.kind for n in q.nodes.values()]
    assert kinds == ["q_input", "q_linear", "q_cuba_lif", "unflatten", "q_conv_transpose2d", "q_cuba_lif", "q_gate",
                     "q_conv_transpose2d", "q_cuba_lif", "q_gate", "image_readout"]
    assert all(q.nodes[n].placement == "neurocore" for n in q.names if q.nodes[n].kind == "q_gate")
    for node in q.nodes.values():
        if isinstance(node, (g.QLinear, g.QConvTranspose2d)):
            w = np.asarray(node.weight)
            assert w.min() >= -256 and w.max() <= 254 and np.all(w % 2 == 0)
    # the readout reads the gate's codes: one code unit is the gate's payload scale
    assert q.nodes["output"].input_scale == pytest.approx(q.nodes["dec1.tcja_gate"].payload_scale)
    back = g.Graph.from_json(json.dumps(q.to_dict()))
    z = latents(4, 3, 6, seed=5)
    y0, r0 = run_graph(q, z.double(), record=True)
    y1, r1 = run_graph(back, z.double(), record=True)
    assert torch.equal(y0, y1)
    for name in V.chip_layers(q):
        assert torch.equal(r0[name], r1[name])
        assert r0[name].sum() > 0  # no silent layer in this test: the comparison means something


def test_unflatten_and_image_readout_check_their_shapes():
    with pytest.raises(g.ConversionError):
        g.Unflatten((2, 2, 2)).out_shape((9,))
    with pytest.raises(g.ConversionError):
        g.ImageReadout(np.ones((2, 1, 3, 3)), None, decay=1.5)

"""The spiking VAE's encoder in the conversion IR: the float graph computes ``SpikingVAE.features`` spike for spike,
the passes keep it, the fixed-point graph has the Loihi 2 node kinds and mostly agrees, and a conv's sparse matrix
is exactly torch's conv2d (docs/DESIGN.md §13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import transposed as TR
from tcja_deploy.conversion import vae_graph as V
from tcja_deploy.conversion.execute import run_graph
from tcja_deploy.conversion.vae_deploy import synapse_matrix
from vae_tiny import tiny_vae


def images(n: int, seed: int = 3, size: int = 8) -> torch.Tensor:
    """Images [n, 1, size, size] uniform in [−1, 1] (both signs: the split input matters)."""
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("use_tcja", [True, False])
def test_float_graph_and_passes_compute_the_models_latent_input(use_tcja):
    model = tiny_vae(use_tcja=use_tcja)
    x = images(24)
    ref = model.features(x)
    assert 0.05 < float(ref.mean()) < 0.95  # the comparison is not of silent (or saturated) outputs
    built = V.build_encoder_graph(model)
    kinds = [n.kind for n in built.nodes.values()]
    assert kinds.count("conv2d") == 2 and kinds[-1] == "lif" and kinds.count("tcja") == (2 if use_tcja else 0)
    assert built.nodes["input"].shape == (2, 8, 8)
    inp = V.encoder_input(x, model.config.T)
    assert torch.equal(inp[:, :, 0] - inp[:, :, 1], x[None, :, 0].expand(4, -1, -1, -1))
    assert torch.equal(run_graph(built, inp.float()), ref)  # float32, spike for spike
    cuba = V.convert_encoder(model)
    assert cuba.meta["passes"] == ["fold_batchnorm", "tcja_to_gate", "lif_to_cuba"]
    assert not any(isinstance(n, (g.BatchNorm, g.LIF, g.TCJA)) for n in cuba.nodes.values())
    assert torch.equal(run_graph(cuba, inp.double()), model.double().features(x.double()))


def test_float_graph_follows_the_model_where_it_matters():
    """A changed first-conv weight changes model and graph alike: the sign split carries the weights of both."""
    model = tiny_vae(seed=3)
    with torch.no_grad():
        model.encoder[0].layer.weight.mul_(-1.5)
    x = images(16, seed=4)
    assert torch.equal(run_graph(V.build_encoder_graph(model), V.encoder_input(x, 4)), model.features(x))


def test_fixed_point_encoder_has_loihi_kinds_mostly_agrees_and_survives_json():
    model = tiny_vae()
    cal, x = images(64, seed=5), images(32, seed=6)
    q = V.quantize_encoder(V.convert_encoder(model), cal)
    kinds = [n.kind for n in q.nodes.values()]
    assert kinds == ["q_input", "q_conv2d", "q_cuba_lif", "q_gate", "q_conv2d", "q_cuba_lif", "q_gate", "flatten",
                     "q_linear", "q_cuba_lif"]
    assert 3 <= q.nodes["input"].payload_bits <= 8  # a graded image payload
    assert all(q.nodes[n].placement == "neurocore" for n in q.names if q.nodes[n].kind == "q_gate")
    inp = V.encoder_input(x, 4).double()
    y, rec = run_graph(q, inp, record=True)
    ref = model.double().features(x.double())
    agreement = float((y == ref).double().mean())
    assert agreement > 0.9, agreement  # measured 0.98 on this tiny VAE (seed 0)
    back = g.Graph.from_json(json.dumps(q.to_dict()))
    y1, r1 = run_graph(back, inp, record=True)
    assert torch.equal(y, y1)
    for name in V.chip_layers(q):
        assert torch.equal(rec[name], r1[name])
        assert rec[name].sum() > 0, name


#: (Ci, Co, H, k, stride, padding): FSVAE's encoder block (32 → 16), odd sizes, stride 1 and 3, a 1×1 kernel.
CONV_CASES = [(2, 4, 32, 3, 2, 1), (3, 5, 7, 3, 1, 1), (2, 3, 9, 4, 2, 1), (2, 2, 10, 3, 3, 0), (4, 6, 5, 1, 1, 0)]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matrix_equals_conv2d_in_float64_and_integers(case):
    ci, co, h, k, s, p = case
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(co, ci, k, k, generator=gen, dtype=torch.float64)
    x = torch.randn(3, ci, h, h, generator=gen, dtype=torch.float64)
    ref = F.conv2d(x, w, stride=s, padding=p)
    m = TR.conv_matrix(w.numpy(), (ci, h, h), s, p)
    assert m.shape == (ref[0].numel(), x[0].numel())
    np.testing.assert_allclose(np.stack([m @ xi.reshape(-1).numpy() for xi in x]), ref.reshape(3, -1).numpy(),
                               rtol=0, atol=1e-12)
    # integers (8-bit even weights, 8-bit payloads): exact, and each entry is one kernel weight
    wi = (2 * torch.randint(-128, 128, (co, ci, k, k), generator=gen)).to(torch.int64)
    xi = torch.randint(0, 256, (3, ci, h, h), generator=gen).to(torch.int64)
    mi = TR.conv_matrix(wi.numpy(), (ci, h, h), s, p)
    ref_i = F.conv2d(xi.double(), wi.double(), stride=s, padding=p).round().to(torch.int64)  # exact below 2⁵³
    assert np.array_equal(np.stack([mi @ v.reshape(-1).numpy() for v in xi]), ref_i.reshape(3, -1).numpy())
    assert set(np.unique(mi.data)) <= set(np.unique(wi.numpy()))
    # one synapse per (output pixel, tap) whose input pixel lies inside the map, per nonzero weight of that tap
    ho = ref.shape[2]
    rows_in = {a: sum(1 for i in range(ho) if 0 <= i * s - p + a < h) for a in range(k)}
    assert mi.nnz == sum(int(np.count_nonzero(wi[:, :, a, b].numpy())) * rows_in[a] * rows_in[b]
                         for a in range(k) for b in range(k))


def test_synapse_matrix_of_a_q_conv2d_is_its_conv_and_groups_are_refused():
    w = 2 * np.random.default_rng(0).integers(-100, 100, (4, 2, 3, 3))
    node = g.QConv2d(w, stride=2, padding=1)
    m = synapse_matrix(node, (2, 8, 8))
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8))
    ref = F.conv2d(torch.tensor(x[None], dtype=torch.float64), torch.tensor(w, dtype=torch.float64), stride=2,
                   padding=1)
    assert np.array_equal(m @ x.reshape(-1), ref.reshape(-1).numpy().round().astype(np.int64))
    from tcja_deploy.errors import UserError

    with pytest.raises(UserError):
        synapse_matrix(g.QConv2d(np.zeros((4, 1, 3, 3)), groups=2), (2, 8, 8))

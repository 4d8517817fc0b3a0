"""The neuro-core gate's integer stages: limits, torch ≡ numpy, closeness to the float gate, causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import gate_math as gm
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion.graph import ConversionError


def params(T=6, C=5, H=4, W=4, mode="window", scale=1.0, seed=0, k=(3, 3)) -> gm.GateParams:
    rng = np.random.default_rng(seed)
    return gm.GateParams(T=T, C=C, H=H, W=W, w_tla=scale * rng.normal(0, 1, (C, C, k[0])),
                         w_cla=scale * rng.normal(0, 1, (T, T, k[1])), mode=mode)


def counts(p: gm.GateParams, n=16, rate=0.3, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).binomial(p.area, rate, size=(n, p.T, p.C))


@pytest.mark.parametrize("mode", ["window", "streaming"])
def test_torch_stages_equal_numpy_stages(mode):
    p = params(mode=mode)
    ng = NC.quantize_neurocore(p)
    c = counts(p)
    a, b = NC.stages(c, ng), NC.stages(torch.as_tensor(c), ng)
    for name in a:
        assert np.array_equal(a[name], b[name].numpy()), name


@pytest.mark.parametrize("scale", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("area", [(2, 2), (8, 8), (32, 32)])
def test_the_worst_case_stays_inside_every_limit(scale, area):
    p = params(scale=scale, H=area[0], W=area[1])
    ng = NC.quantize_neurocore(p)
    worst = np.full((1, p.T, p.C), p.area)
    rng = np.random.default_rng(3)
    for c in (worst, np.zeros_like(worst), rng.integers(0, p.area + 1, (64, p.T, p.C))):
        s = NC.stages(c, ng)
        assert s["squeeze"].max() <= 256
        assert np.abs(s["cla"]).max() < NC.BRANCH_LIMIT and np.abs(s["tla"]).max() < NC.BRANCH_LIMIT
        assert np.abs(s["cla"].astype(np.int64) * s["tla"]).max() < 1 << 31  # Lava's ProdNeuron multiplies in int32
        assert np.abs(s["product"]).max() + ng.knots[-1] < NC.SIGNED24
        assert 0 <= s["clamp"].min() and s["clamp"].max() <= 2 * ng.knots[-1] <= NC.CLAMP_RANGE
        assert (np.abs(ng.slope) <= 255).all() and np.abs(ng.slope[:, None] * s["clamp"].max()).max() < NC.SIGNED24
        assert 0 <= s["sum"].min() and s["sum"].max() < NC.SIGNED24
        assert 0 <= s["code"].min() and s["code"].max() <= 255


def test_the_linear_maps_are_the_two_convolutions():
    for mode in ("window", "streaming"):
        p = params(mode=mode, k=(2, 4))
        ng = NC.quantize_neurocore(p)
        m_cla, m_tla = NC.linear_maps(ng)
        z = counts(p, n=3).astype(np.int64)
        assert np.array_equal(np.einsum("tcud,nud->ntc", m_cla, z), gm._cla(z, ng.q_cla))
        assert np.array_equal(np.einsum("tcud,nud->ntc", m_tla, z), gm._tla(z, ng.q_tla, mode == "streaming"))


@pytest.mark.parametrize("mode", ["window", "streaming"])
@pytest.mark.parametrize("rate", [0.05, 0.3, 0.7])
def test_the_chip_gate_is_close_to_the_float_gate(mode, rate):
    p = params(mode=mode, scale=0.5)
    ng = NC.quantize_neurocore(p)
    c = counts(p, n=64, rate=rate)
    err = np.abs(NC.gate_value(c, ng) - gm.gate_float(c, p))
    assert err.max() < 0.05 and err.mean() < 0.01, (err.max(), err.mean())


def test_the_chip_sigmoid_is_the_pwl_sigmoid_within_a_code():
    """The stages compute pwl_sigmoid of the fused product to within the rounding of P, K and the slopes."""
    p = params(scale=0.5)
    ng = NC.quantize_neurocore(p)
    c = counts(p, n=64)
    s = NC.stages(c, ng)
    x = s["product"] * ng.x_unit
    assert np.abs(s["code"] / 255 - NC.pwl_sigmoid(x)).max() < 3 / 255


def test_pwl_sigmoid_torch_numpy_and_its_knots():
    x = np.linspace(-9, 9, 1001)
    assert np.allclose(NC.pwl_sigmoid(torch.as_tensor(x)).numpy(), NC.pwl_sigmoid(x), atol=1e-12)
    knots = np.asarray(NC.KNOTS_X)
    assert np.allclose(NC.pwl_sigmoid(knots), NC.knot_values())
    assert NC.pwl_sigmoid(-100.0) == 0.0 and NC.pwl_sigmoid(100.0) == 1.0
    assert np.abs(NC.pwl_sigmoid(x) - 1 / (1 + np.exp(-x))).max() < 0.02


def test_a_streaming_row_reads_no_later_step():
    p = params(mode="streaming")
    ng = NC.quantize_neurocore(p)
    c = counts(p, n=4)
    base = NC.gate_codes(c, ng)
    for t in range(p.T - 1):
        changed = c.copy()
        changed[:, t + 1:] = np.random.default_rng(t).integers(0, p.area + 1, changed[:, t + 1:].shape)
        assert np.array_equal(NC.gate_codes(changed, ng)[:, : t + 1], base[:, : t + 1])


def test_round_trip_through_arrays():
    ng = NC.quantize_neurocore(params())
    back = NC.NeurocoreGate.from_arrays(ng.to_arrays())
    c = counts(params())
    assert np.array_equal(NC.gate_codes(c, back), NC.gate_codes(c, ng))


def test_replay_delays_meet_at_the_final_product():
    for mode in ("window", "streaming"):
        ng = NC.quantize_neurocore(params(mode=mode))
        for skew in (0, 1):
            d_x, rho = NC.replay_delay(ng, skew)
            v = ng.valid_step()
            ls = 10
            assert all(ls + NC.SUM_STEP + 2 + v[t] + rho[t] == ls + skew + t + 1 + d_x for t in range(ng.T))
            assert NC.latency_steps(mode, ng.T, skew) == 1 + d_x


def test_a_window_longer_than_the_delay_limit_cannot_be_placed():
    with pytest.raises(NC.GatePlacementError, match="62"):
        NC.quantize_neurocore(params(T=60))
    NC.quantize_neurocore(params(T=60, mode="streaming"))  # no window to wait for


def test_the_pass_names_the_layer_and_suggests_the_host_gate(tiny_float_graph):
    from tcja_deploy.conversion import passes as P

    graph = tiny_float_graph
    for pass_ in (P.drop_dropout, P.fold_batchnorm, P.tcja_to_gate, P.maxpool_to_or, P.avgpool_fold, P.lif_to_cuba):
        graph = pass_(graph)
    long = graph.replace({name: g.evolve(node, w_cla=np.ones((70, 70, node.w_cla.shape[-1])))
                          if isinstance(node, g.Gate) else node for name, node in graph.items()}, T=70)
    with pytest.raises(ConversionError, match=r"cannot run on neuro cores.*--gate host"):
        P.quantize_loihi2(long, gate_placement="neurocore")
    q = P.quantize_loihi2(graph)
    assert {n.placement for n in q.nodes.values() if isinstance(n, g.QGate)} == {"neurocore"}
    host = P.quantize_loihi2(graph, gate_placement="host")
    assert {n.placement for n in host.nodes.values() if isinstance(n, g.QGate)} == {"host"}

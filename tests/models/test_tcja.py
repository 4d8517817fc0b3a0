"""TCJA against an independent loop implementation written from the paper's equations."""

import math

import pytest
import torch

from tcja_deploy.models.tcja import TCJA


def reference_gate_loops(x: torch.Tensor, w_tla: torch.Tensor, w_cla: torch.Tensor) -> torch.Tensor:
    """Gate [T, N, C] from explicit loops; PyTorch 'same' padding (extra pad of even kernels on the right).

    TLA_{n,c,t} = Σ_{c'} Σ_j w_tla[c, c', j] · Z_{n, t + j − l_tla, c'}   (local in time)
    CLA_{n,t,c} = Σ_{t'} Σ_j w_cla[t, t', j] · Z_{n, t', c + j − l_cla}   (local across channels)
    with l = (k − 1) // 2 and Z outside the range = 0.
    """
    T, N, C = x.shape[:3]
    z = [[[float(x[t, n, c].mean()) for c in range(C)] for t in range(T)] for n in range(N)]
    k_tla, k_cla = w_tla.shape[-1], w_cla.shape[-1]
    l_tla, l_cla = (k_tla - 1) // 2, (k_cla - 1) // 2
    gate = torch.zeros(T, N, C, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            for c in range(C):
                tla = 0.0
                for c2 in range(C):
                    for j in range(k_tla):
                        tt = t + j - l_tla
                        if 0 <= tt < T:
                            tla += float(w_tla[c, c2, j]) * z[n][tt][c2]
                cla = 0.0
                for t2 in range(T):
                    for j in range(k_cla):
                        cc = c + j - l_cla
                        if 0 <= cc < C:
                            cla += float(w_cla[t, t2, j]) * z[n][t2][cc]
                gate[t, n, c] = 1.0 / (1.0 + math.exp(-tla * cla))
    return gate


@pytest.mark.parametrize("k_tla,k_cla", [(4, 4), (2, 4), (3, 5), (1, 2)])
def test_tcja_matches_loop_reference(k_tla, k_cla):
    torch.manual_seed(k_tla * 10 + k_cla)
    T, N, C, H, W = 6, 2, 5, 3, 4
    layer = TCJA(T, C, kernel_tla=k_tla, kernel_cla=k_cla).double()
    with torch.no_grad():  # larger weights so the gate is far from 0.5 everywhere
        layer.tla.weight.mul_(4)
        layer.cla.weight.mul_(4)
    x = (torch.rand(T, N, C, H, W) > 0.6).double()
    expected = reference_gate_loops(x, layer.tla.weight, layer.cla.weight)
    gate = layer.gate(x)
    assert gate.shape == (T, N, C)
    assert torch.allclose(gate, expected, atol=1e-6, rtol=0)
    assert (gate - 0.5).abs().max() > 0.05  # a non-trivial gate was tested
    y = layer(x)
    assert torch.allclose(y, x * expected[..., None, None], atol=1e-6, rtol=0)


def test_tcja_matches_reference_convolutions():
    """Same function as the reference's padding='same' Conv1d pair (names swapped as in the paper)."""
    torch.manual_seed(0)
    T, N, C = 8, 3, 6
    layer = TCJA(T, C, kernel_tla=4, kernel_cla=2)
    ref_conv = torch.nn.Conv1d(T, T, 2, padding="same", bias=False)  # reference `conv` (our CLA)
    ref_conv_c = torch.nn.Conv1d(C, C, 4, padding="same", bias=False)  # reference `conv_c` (our TLA)
    ref_conv.weight.data.copy_(layer.cla.weight.data)
    ref_conv_c.weight.data.copy_(layer.tla.weight.data)
    x = (torch.rand(T, N, C, 4, 4) > 0.5).float()
    z = x.permute(1, 0, 2, 3, 4).mean(dim=(3, 4))
    out = torch.sigmoid(ref_conv_c(z.permute(0, 2, 1)).permute(2, 0, 1) * ref_conv(z).permute(1, 0, 2))
    assert torch.allclose(layer(x), x * out[..., None, None], atol=1e-6)


def test_causal_variant_ignores_future_inputs():
    torch.manual_seed(1)
    T, N, C, H, W = 7, 2, 4, 3, 3
    x = (torch.rand(T, N, C, H, W) > 0.5).float()
    x2 = x.clone()
    t_cut = 3
    x2[t_cut + 1:] = 1.0 - x2[t_cut + 1:]  # change every input after step t_cut
    causal = TCJA(T, C, kernel_tla=4, kernel_cla=4, causal=True)
    y, y2 = causal(x), causal(x2)
    assert torch.equal(y[: t_cut + 1], y2[: t_cut + 1])
    assert not torch.equal(y[t_cut + 1:], y2[t_cut + 1:])
    default = TCJA(T, C, kernel_tla=4, kernel_cla=4)
    default.load_state_dict(causal.state_dict())
    assert not torch.allclose(default(x)[: t_cut + 1], default(x2)[: t_cut + 1])


def test_tcja_rejects_wrong_T():
    layer = TCJA(4, 3)
    with pytest.raises(ValueError, match="T=4"):
        layer(torch.zeros(5, 1, 3, 2, 2))


def test_tcja_gradients_reach_both_kernels():
    torch.manual_seed(2)
    layer = TCJA(5, 4, 3, 3)
    x = (torch.rand(5, 2, 4, 3, 3) > 0.5).float()
    layer(x).sum().backward()
    assert layer.tla.weight.grad.abs().sum() > 0
    assert layer.cla.weight.grad.abs().sum() > 0

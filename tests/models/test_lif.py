"""The Norse LIF used by the models is the CUBA neuron of docs/DESIGN.md §3, written out by hand here."""

import torch

from tcja_deploy.models.lif import LIFConfig, LIFSequence


def cuba_loop(x: torch.Tensor, tau_mem: float, tau_syn: float, v_th: float) -> torch.Tensor:
    """i ← i + x; v ← v + (i − v)/τ_mem; i ← i(1 − 1/τ_syn); spike if v > θ; v ← 0 on spike."""
    i = torch.zeros_like(x[0])
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        i = i + x[t]
        v = v + (i - v) / tau_mem
        i = i * (1 - 1 / tau_syn)
        s = (v > v_th).float()
        v = v * (1 - s)
        out.append(s)
    return torch.stack(out)


def test_lif_sequence_is_cuba():
    torch.manual_seed(0)
    x = torch.rand(12, 3, 50) * 2.5
    for tau_mem, tau_syn in [(2.0, 1.0), (4.0, 2.0)]:
        lif = LIFSequence(LIFConfig(tau_mem=tau_mem, tau_syn=tau_syn, v_th=1.0))
        spikes = lif(x)
        expected = cuba_loop(x, tau_mem, tau_syn, 1.0)
        assert torch.equal(spikes, expected)
        assert 0 < spikes.mean() < 1


def test_lif_surrogate_gives_gradients():
    x = (torch.rand(6, 2, 10) * 3).requires_grad_()
    LIFSequence()(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

"""The fused LIF (``lif_window``) against ``norse.torch.LIF``: same spikes, same gradients to 1e-6."""

import pytest
import torch
from norse.torch import LIF as NorseLIF

import math

from tcja_deploy.models.lif import (FUSED_ONLY_SURROGATES, FUSED_SURROGATES, LIFConfig, LIFSequence, lif_window,
                                    surrogate_derivative)


def norse_and_fused(x: torch.Tensor, config: LIFConfig, weight: torch.Tensor):
    """(spikes, d(Σ weight·spikes)/dx) for Norse's LIF and the fused one, on copies of x."""
    results = []
    for run in (lambda t: NorseLIF(p=config.norse_parameters(), dt=1.0)(t)[0],
                lambda t: lif_window(t, config.norse_parameters(), 1.0)):
        xx = x.detach().clone().requires_grad_()
        spikes = run(xx)
        (spikes * weight).sum().backward()
        results.append((spikes.detach(), xx.grad))
    return results


CONFIGS = [
    LIFConfig(),  # the models' neuron: tau_mem 2, tau_syn 1
    LIFConfig(tau_mem=3.0, tau_syn=1.0, v_th=0.7),  # decay not a power of two
    LIFConfig(tau_mem=4.0, tau_syn=2.0),  # current carried over steps (CUBA)
    LIFConfig(tau_mem=1.5, tau_syn=5.0, v_th=1.3),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"mem{c.tau_mem}-syn{c.tau_syn}-th{c.v_th}")
@pytest.mark.parametrize("shape", [(25, 3, 40), (8, 2, 3, 5, 4)])
def test_fused_lif_equals_norse(config, shape):
    torch.manual_seed(len(shape) + int(10 * config.tau_mem))
    x = torch.randn(*shape) * 1.5 + 0.6
    weight = torch.randn(*shape)
    (ref_s, ref_g), (s, g) = norse_and_fused(x, config, weight)
    assert torch.equal(s, ref_s)
    assert 0.05 < s.mean() < 0.95  # spikes and silences both tested
    assert torch.allclose(g, ref_g, atol=1e-6, rtol=1e-6), (g - ref_g).abs().max()


@pytest.mark.parametrize("method", [m for m in FUSED_SURROGATES if m not in FUSED_ONLY_SURROGATES])
def test_fused_lif_surrogates(method):
    torch.manual_seed(1)
    config = LIFConfig(tau_mem=2.0, tau_syn=1.0, surrogate=method, alpha=2.0)
    x = torch.randn(30, 4, 50) * 1.5 + 0.6
    (ref_s, ref_g), (s, g) = norse_and_fused(x, config, torch.randn(30, 4, 50))
    assert torch.equal(s, ref_s)
    assert ref_g.abs().max() > 0
    assert torch.allclose(g, ref_g, atol=1e-6, rtol=1e-6), (g - ref_g).abs().max()


def test_fused_lif_float64_and_threshold_ties():
    """float64 stays float64 (as in Norse); an input that lands exactly on v_th does not spike (v > v_th)."""
    config = LIFConfig()
    x = torch.tensor([2.0, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64).reshape(5, 1)  # v_d = 1.0 exactly at t=0
    (ref_s, ref_g), (s, g) = norse_and_fused(x, config, torch.ones(5, 1, dtype=torch.float64))
    assert s.dtype == ref_s.dtype == torch.float64
    assert s[0, 0] == 0 and torch.equal(s, ref_s)
    assert torch.allclose(g, ref_g, atol=1e-12, rtol=1e-9)


def test_lif_sequence_implementations_agree_in_a_network():
    """Gradients reach the weights before the LIF identically with either implementation."""
    torch.manual_seed(3)
    x = torch.rand(12, 4, 30)
    grads = []
    for impl in ("fused", "norse"):
        torch.manual_seed(4)
        lin = torch.nn.Linear(30, 20)
        out = LIFSequence(LIFConfig(), implementation=impl)(lin(x) * 2)
        out.mean().backward()
        grads.append((out.detach(), lin.weight.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-5)


def test_no_grad_and_fallback():
    x = torch.rand(5, 2, 3) * 3
    with torch.no_grad():
        s = LIFSequence()(x)
    assert not s.requires_grad and s.shape == x.shape
    heavi = LIFSequence(LIFConfig(surrogate="heaviside"))  # no fused path: Norse runs it
    assert torch.equal(heavi(x), LIFSequence(implementation="norse")(x))
    with pytest.raises(ValueError):
        LIFSequence(implementation="cuda")


@pytest.mark.parametrize("chunk_steps", [1, 3, 7])
@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[2]], ids=["syn1", "syn2"])
def test_fused_lif_backward_chunks(monkeypatch, chunk_steps, config):
    """The backward's time chunks (1 step, several with a remainder) give the same gradients."""
    import tcja_deploy.models.lif as lif_module

    shape = (20, 3, 40)
    monkeypatch.setattr(lif_module, "CHUNK_ELEMENTS", chunk_steps * 3 * 40)
    torch.manual_seed(chunk_steps)
    x = torch.randn(*shape) * 1.5 + 0.6
    (ref_s, ref_g), (s, g) = norse_and_fused(x, config, torch.randn(*shape))
    assert torch.equal(s, ref_s)
    assert torch.allclose(g, ref_g, atol=1e-6, rtol=1e-6), (g - ref_g).abs().max()


class _FormulaSpike(torch.autograd.Function):
    """Heaviside (v > v_th) forward, the surrogate written from its formula backward (SpikingJelly's)."""

    @staticmethod
    def forward(ctx, u, method, alpha):
        ctx.save_for_backward(u)
        ctx.method, ctx.alpha = method, alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        if ctx.method == "atan":
            d = (a / 2) / (1 + (math.pi / 2 * a * u) ** 2)
        else:  # piecewise_quadratic
            d = torch.where(u.abs() > 1 / a, torch.zeros_like(u), a - a * a * u.abs())
        return grad * d, None, None


def formula_lif(x, config: LIFConfig):
    """Norse's LIF step (τ_syn = 1) with autograd through a formula surrogate; reset detached if configured."""
    a = torch.tensor(1.0 / config.tau_mem, dtype=torch.float32).item()
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        vd = v + a * (x[t] - v)
        z = _FormulaSpike.apply(vd - config.v_th, config.surrogate, config.alpha)
        zr = z.detach() if config.detach_reset else z
        v = (1 - zr) * vd
        out.append(z)
    return torch.stack(out)


@pytest.mark.parametrize("method,alpha", [("atan", 2.0), ("piecewise_quadratic", 1.0)])
@pytest.mark.parametrize("detach", [False, True])
def test_reference_surrogates_and_detached_reset_match_autograd(method, alpha, detach):
    torch.manual_seed(4)
    config = LIFConfig(tau_mem=2.0, tau_syn=1.0, surrogate=method, alpha=alpha, detach_reset=detach)
    x = torch.randn(25, 3, 40) * 1.5 + 0.8
    w = torch.randn(25, 3, 40)
    grads, spikes = [], []
    for run in (lambda t: formula_lif(t, config), lambda t: LIFSequence(config)(t)):
        xx = x.clone().requires_grad_()
        s = run(xx)
        (s * w).sum().backward()
        grads.append(xx.grad)
        spikes.append(s.detach())
    assert torch.equal(spikes[0], spikes[1])
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[1], grads[0], atol=1e-5, rtol=1e-5), (grads[1] - grads[0]).abs().max()


def test_detached_reset_changes_the_gradient():
    torch.manual_seed(5)
    x = torch.randn(20, 2, 30) * 1.5 + 0.8
    grads = []
    for detach in (False, True):
        xx = x.clone().requires_grad_()
        LIFSequence(LIFConfig(surrogate="atan", alpha=2.0, detach_reset=detach))(xx).sum().backward()
        grads.append(xx.grad)
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize("name,cls,alpha", [("atan", "ATan", 2.0), ("piecewise_quadratic", "PiecewiseQuadratic", 1.0)])
def test_surrogates_equal_spikingjellys(name, cls, alpha):
    surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    u = torch.linspace(-3, 3, 601, requires_grad=True)
    getattr(surrogate, cls)(alpha=alpha)(u).sum().backward()
    assert torch.allclose(surrogate_derivative(u.detach(), name, alpha), u.grad, atol=1e-6)


def test_norse_implementation_refuses_what_norse_lacks():
    with pytest.raises(ValueError, match="fused"):
        LIFSequence(LIFConfig(surrogate="atan"), implementation="norse")

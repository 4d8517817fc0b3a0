"""The spiking VAE: FSVAE's neuron in Norse's parameters, tdBN, loss terms with known values, shapes, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from tcja_deploy.models.lif import LIFSequence, surrogate_derivative
from tcja_deploy.models.tcja import TCJA
from tcja_deploy.models.vae import (FSVAE_DECAY, FSVAE_V_TH, SpikingVAE, TimeBatchNorm, VAEConfig, distance_loss,
                                    fsvae_lif_config, membrane_output, psp, scheduled_p, vae_loss)

TINY = VAEConfig(preset="t", dataset="digits", in_channels=1, image_size=8, hidden=(4, 6), latent_dim=5, k=3, T=4)


class _Rect(torch.autograd.Function):
    """FSVAE's SpikeAct: u > V_th forward, 1 for |u − V_th| < 0.5 backward (kamata1729/FullySpikingVAE)."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > FSVAE_V_TH).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ((u - FSVAE_V_TH).abs() < 0.5).to(u.dtype)


def fsvae_lif(x: torch.Tensor) -> torch.Tensor:
    """FSVAE's recurrence written out: u_t = 0.25·u_{t−1}·(1 − o_{t−1}) + x_t, o_t = u_t > 0.2 (time first)."""
    u = torch.zeros_like(x[0])
    o = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        u = FSVAE_DECAY * u * (1 - o) + x[t]
        o = _Rect.apply(u)
        out.append(o)
    return torch.stack(out)


def test_norse_lif_is_fsvae_lif_spike_for_spike_and_in_gradient():
    torch.manual_seed(0)
    x = (torch.randn(16, 64, 50, dtype=torch.float64) * 0.3 + 0.1).float()
    x1 = x.clone().requires_grad_(True)
    x2 = x.double().clone().requires_grad_(True)
    ours = LIFSequence(fsvae_lif_config())(x1)
    ref = fsvae_lif(x2)
    assert ours.sum() > 1000 and (1 - ours).sum() > 1000  # both spiking and silence occur
    assert torch.equal(ours.double(), ref.detach())
    g = torch.randn_like(ours)
    ours.backward(g)
    ref.backward(g.double())
    assert torch.allclose(x1.grad.double(), x2.grad, atol=1e-5), (x1.grad.double() - x2.grad).abs().max()
    assert x1.grad.abs().sum() > 0


def test_rectangle_surrogate_has_unit_area():
    u = torch.linspace(-2, 2, 40001)
    d = surrogate_derivative(u, "rectangle", 4 / 3)
    assert d.unique().tolist() == [0.0, pytest.approx(4 / 3)]
    assert float(d.sum() * (u[1] - u[0])) == pytest.approx(1.0, abs=1e-3)
    assert float(d[(u.abs() < 0.37)].min()) > 0 and float(d[(u.abs() > 0.38)].max()) == 0


def test_time_batch_norm_is_tdbn():
    torch.manual_seed(1)
    bn = TimeBatchNorm(3, alpha=2.0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 0.1, -0.1]))
    x = torch.randn(4, 5, 3, 2, 2) * 3 + 1
    y = bn(x)
    mean = x.mean(dim=(0, 1, 3, 4), keepdim=True)
    var = x.var(dim=(0, 1, 3, 4), unbiased=False, keepdim=True)
    expected = 2.0 * FSVAE_V_TH * (x - mean) / torch.sqrt(var + 1e-5) * bn.weight.view(1, 1, 3, 1, 1) \
        + bn.bias.view(1, 1, 3, 1, 1)
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.allclose(bn.running_mean, 0.1 * mean.flatten(), atol=1e-6)
    before = bn.running_mean.clone()
    bn(x * 5, update_stats=False)
    assert torch.equal(bn.running_mean, before)


def test_psp_and_membrane_output_known_values():
    x = torch.tensor([[1.0], [0.0], [1.0]])
    assert psp(x).flatten().tolist() == [0.5, 0.25, 0.625]  # s += (x − s)/2
    out = torch.ones(3, 1, 1, 1, 1)
    assert float(membrane_output(out)) == pytest.approx(math.tanh(0.64 + 0.8 + 1.0))


def test_distance_and_loss_terms_on_known_inputs():
    q = torch.zeros(2, 1, 1, 4)
    p = torch.zeros(2, 1, 1, 4)
    q[..., :2] = 1  # firing probability 1/2 at both steps
    # PSP of 1/2, 1/2: 1/4, 3/8; of 0: 0 → mean of squares (1/16 + 9/64)/2
    assert float(distance_loss(q, p, "mmd")) == pytest.approx((1 / 16 + 9 / 64) / 2)
    kl = 2 * (0.5 * math.log(0.51 / 0.01) + 0.5 * math.log(0.51 / 1.01))
    assert float(distance_loss(q, p, "kld")) == pytest.approx(kl, rel=1e-6)
    assert float(distance_loss(q, q, "mmd")) == 0 and abs(float(distance_loss(q, q, "kld"))) < 1e-7
    images, recon = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)
    terms = vae_loss(images, recon, q, p, "mmd")
    assert float(terms["reconstruction"]) == pytest.approx(0.25)
    assert float(terms["loss"]) == pytest.approx(0.25 + (1 / 16 + 9 / 64) / 2)
    assert float(vae_loss(images, recon, q, p, "kld")["loss"]) == pytest.approx(0.25 + 1e-4 * kl, rel=1e-6)
    assert scheduled_p(0, 10) == pytest.approx(0.1) and scheduled_p(5, 10) == pytest.approx(0.2)


def test_fsvae_shapes_and_tcja_placement():
    c = VAEConfig()  # FSVAE's MNIST network at 32×32 with TCJA everywhere
    model = SpikingVAE(c)
    assert sum(isinstance(m, TCJA) for m in model.modules()) == 8
    assert [b.layer.out_channels for b in model.encoder] == [32, 64, 128, 256]
    assert [b.layer.out_channels for b in model.decoder] == [128, 64, 32, 32]
    assert model.posterior.layers[-1].layer.out_features == 128 * 20
    ablation = SpikingVAE(VAEConfig(use_tcja=False))
    assert not any(isinstance(m, TCJA) for m in ablation.modules())
    only = SpikingVAE(VAEConfig(tcja_blocks=("enc3", "dec0")))
    assert [n for n, m in only.named_modules() if isinstance(m, TCJA)] == ["encoder.3.tcja", "decoder.0.tcja"]
    with pytest.raises(ValueError, match="tcja_blocks"):
        VAEConfig(tcja_blocks=("enc9",))
    with pytest.raises(ValueError, match="image_size"):
        VAEConfig(image_size=64)
    large = VAEConfig(image_size=64, hidden=(32, 64, 128, 256, 512), in_channels=3)
    assert VAEConfig.from_dict(large.to_dict()) == large


def test_tiny_forward_shapes_ranges_and_spikes():
    torch.manual_seed(0)
    model = SpikingVAE(TINY)
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    out = model(x, p=0.3)
    assert out["recon"].shape == (6, 1, 8, 8) and out["recon"].abs().max() < 1
    assert out["z"].shape == (4, 6, 5) and out["q_z"].shape == (4, 6, 5, 3) == out["p_z"].shape
    assert set(out["z"].unique().tolist()) <= {0.0, 1.0}
    # z is one of its step's k candidates
    assert bool(((out["q_z"] == out["z"].unsqueeze(-1)).any(-1)).all())
    terms = vae_loss(x, out["recon"], out["q_z"], out["p_z"])
    terms["loss"].backward()
    assert model.encoder[0].layer.weight.grad.abs().sum() > 0 and model.posterior.layers[0].layer.weight.grad is not None
    model.eval()
    s = model.sample(3, torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8) and s.abs().max() < 1
    assert torch.equal(s, model.sample(3, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="expected images"):
        model.reconstruct(torch.zeros(2, 3, 8, 8))


def test_posterior_is_autoregressive_in_eval_mode():
    """In eval mode the step-by-step draws equal a read-out of the final full pass (tdBN uses running stats)."""
    torch.manual_seed(3)
    model = SpikingVAE(TINY).eval()
    x = (torch.rand(4, 8, 5) < 0.5).float()  # latent input spikes [T, N, L]
    z, q_z = model.posterior_sample(x, torch.Generator().manual_seed(1))
    # recompute q_z from the drawn z: input [x_t, z_{t−1}]
    z_prev = torch.cat([torch.zeros(1, 8, 5), z[:-1]])
    assert torch.equal(model.posterior(torch.cat([x, z_prev], -1)), q_z)


def test_presets_carry_fsvae_settings():
    from tcja_deploy.models.presets.vae import VAE_PRESET_NAMES, get_vae_preset

    assert set(VAE_PRESET_NAMES) == {"vae_digits", "vae_mnist", "vae_fashion_mnist", "vae_cifar10", "vae_celeba"}
    for name, channels, size in (("vae_mnist", 1, 32), ("vae_fashion_mnist", 1, 32), ("vae_cifar10", 3, 32),
                                 ("vae_celeba", 3, 64)):
        p = get_vae_preset(name)
        assert (p.epochs, p.batch_size, p.lr, p.weight_decay, p.loss) == (150, 250, 1e-3, 1e-3, "mmd")
        m = p.model
        assert (m.T, m.latent_dim, m.k, m.in_channels, m.image_size) == (16, 128, 20, channels, size)
        assert m.hidden[:4] == (32, 64, 128, 256) and len(m.hidden) == (5 if size == 64 else 4)
    assert get_vae_preset("vae_digits", T=4).model.T == 4


def test_fsvae_size_network_runs_on_cifar_shaped_images():
    from tcja_deploy.models.presets.vae import get_vae_preset

    torch.manual_seed(0)
    model = SpikingVAE(get_vae_preset("vae_cifar10", T=2).model)
    out = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert out["recon"].shape == (2, 3, 32, 32) and out["q_z"].shape == (2, 2, 128, 20)

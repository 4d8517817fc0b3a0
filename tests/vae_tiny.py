"""A tiny spiking VAE and latent spike trains for the decoder-conversion tests (imported by test files;
pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch

from tcja_deploy.models.vae import SpikingVAE, VAEConfig


def tiny_vae(seed: int = 0, use_tcja: bool = True) -> SpikingVAE:
    """A two-block VAE (8×8 images, latent 6, T = 4) with non-trivial tdBN statistics, in eval mode."""
    torch.manual_seed(seed)
    cfg = VAEConfig(preset="tiny", dataset="digits", in_channels=1, image_size=8, hidden=(4, 8), latent_dim=6, k=3,
                    T=4, use_tcja=use_tcja)
    return make_every_layer_spike(SpikingVAE(cfg)).eval()


def make_every_layer_spike(model: SpikingVAE) -> SpikingVAE:
    """Random tdBN statistics and gains (in place, from torch's global generator) that make every layer of an
    untrained VAE spike, so that equality checks do not compare zeros."""
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "running_mean"):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(2, 6)
                mod.bias.uniform_(-0.1, 0.3)
    return model


def latents(T: int, N: int, L: int, seed: int = 1, p: float = 0.5) -> torch.Tensor:
    return (torch.rand(T, N, L, generator=torch.Generator().manual_seed(seed)) < p).float()

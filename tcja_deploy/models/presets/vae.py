"""Spiking-VAE presets (image generation): FSVAE's settings per dataset, and a small embedded default.

FSVAE's settings (Kamata et al., AAAI 2022; kamata1729/FullySpikingVAE ``NetworkConfigs/*.yaml`` and
``main_fsvae.py``): T = 16 (the image repeated at each step), latent 128, k = 20, batch 250, 150 epochs,
AdamW lr 1e-3, betas (0.9, 0.999), weight decay 1e-3, constant learning rate, the "MMD" loss, scheduled
sampling; MNIST / Fashion-MNIST / CIFAR10 at 32×32 with conv channels 32/64/128/256 (``FSVAE``), CelebA at
64×64 with 32/64/128/256/512 (``FSVAE_large``). TCJA after every conv block is ours (see
:mod:`tcja_deploy.models.vae`).

``vae_digits`` (ours) is sized to train on two CPU cores in minutes: scikit-learn's digits at 32×32, half
FSVAE's channels (16/32/64/128), latent 32, T = 8, batch 32 (the 1,438 training digits would give only six
steps per epoch at 250), 20 epochs; everything else as FSVAE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tcja_deploy.models.vae import VAEConfig

FSVAE_SOURCE = "FSVAE (Kamata et al., AAAI 2022), kamata1729/FullySpikingVAE NetworkConfigs/*.yaml + TCJA (ours)"


@dataclass(frozen=True)
class VAEPreset:
    """A spiking-VAE preset: the network and its training defaults.

    Attributes:
        model: the architecture (dataset, image size, channels, latent, k, T, TCJA placement).
        epochs, batch_size, lr: training defaults (AdamW, constant learning rate).
        weight_decay: AdamW's decoupled weight decay.
        loss: ``mmd`` or ``kld``.
        source: where the values come from.
    """

    model: VAEConfig
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    loss: str
    source: str

    def with_T(self, T: int | None) -> "VAEPreset":
        if T is None or T == self.model.T:
            return self
        return replace(self, model=replace(self.model, T=T))


def _fsvae(name: str, dataset: str, channels: int, size: int, hidden: tuple[int, ...]) -> VAEPreset:
    model = VAEConfig(preset=name, dataset=dataset, in_channels=channels, image_size=size, hidden=hidden,
                      latent_dim=128, k=20, T=16)
    return VAEPreset(model=model, epochs=150, batch_size=250, lr=1e-3, weight_decay=1e-3, loss="mmd",
                     source=FSVAE_SOURCE)


FSVAE_HIDDEN = (32, 64, 128, 256)

VAE_PRESETS: dict[str, VAEPreset] = {
    "vae_digits": VAEPreset(
        model=VAEConfig(preset="vae_digits", dataset="digits", in_channels=1, image_size=32, hidden=(16, 32, 64, 128),
                        latent_dim=32, k=20, T=8),
        epochs=20, batch_size=32, lr=1e-3, weight_decay=1e-3, loss="mmd",
        source="ours: FSVAE's network at half the channels, latent 32, T = 8, for two CPU cores"),
    "vae_mnist": _fsvae("vae_mnist", "mnist", 1, 32, FSVAE_HIDDEN),
    "vae_fashion_mnist": _fsvae("vae_fashion_mnist", "fashion_mnist", 1, 32, FSVAE_HIDDEN),
    "vae_cifar10": _fsvae("vae_cifar10", "cifar10", 3, 32, FSVAE_HIDDEN),
    "vae_celeba": _fsvae("vae_celeba", "celeba", 3, 64, FSVAE_HIDDEN + (512,)),
}
VAE_PRESET_NAMES = tuple(VAE_PRESETS)


def is_vae_preset(name: str | None) -> bool:
    """Whether ``name`` is a spiking-VAE preset."""
    return name in VAE_PRESETS


def get_vae_preset(name: str, T: int | None = None) -> VAEPreset:
    """The VAE preset ``name`` (at ``T`` steps); unknown names raise ValueError."""
    if name not in VAE_PRESETS:
        raise ValueError(f"unknown VAE preset {name!r}; choose one of: {', '.join(VAE_PRESET_NAMES)}")
    return VAE_PRESETS[name].with_T(T)


#: FSVAE's published results per dataset (Kamata et al., AAAI 2022, Table 1, as given to this project):
#: reconstruction MSE, Inception Score, FID (Inception features) and autoencoder-FID (their autoencoder).
FSVAE_RESULTS: dict[str, dict[str, float]] = {
    "mnist": {"reconstruction_mse": 0.031, "inception_score": 6.209, "fid": 97.06, "autoencoder_fid": 35.54},
    "fashion_mnist": {"reconstruction_mse": 0.031, "inception_score": 4.551, "fid": 90.12, "autoencoder_fid": 15.75},
    "cifar10": {"reconstruction_mse": 0.066, "inception_score": 2.945, "fid": 175.5, "autoencoder_fid": 133.9},
    "celeba": {"reconstruction_mse": 0.051, "inception_score": 3.697, "fid": 101.6, "autoencoder_fid": 112.9},
}

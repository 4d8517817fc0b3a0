"""A fully spiking variational autoencoder with optional TCJA: FSVAE (Kamata et al., "Fully Spiking
Variational Autoencoder", AAAI 2022) built from this project's Norse LIF and TCJA layers.

The architecture and training objective follow the authors' code (kamata1729/FullySpikingVAE,
``fsvae_models/fsvae.py``, ``fsvae_prior.py``, ``fsvae_posterior.py``, ``snn_layers.py``); the code here is
ours. Every tensor is time-major: images [N, C, H, W] in [−1, 1], spikes [T, N, C, H, W] or [T, N, F].

- **Encoder**: the image, repeated at each of the T steps, through ``len(hidden)`` blocks
  Conv 3×3 stride 2 → tdBN → LIF (32/64/128/256 channels in FSVAE), flattened, then Linear → tdBN → LIF to
  ``latent_dim`` features x_t.
- **Posterior** q(z_t | x_≤t, z_<t): three Linear → tdBN(α = 2) → LIF layers (2L → 2L → 4L → L·k) on
  [x_t, z_{t−1}] (z_{−1} = 0). Each of the L latents has k candidate spikes; one, chosen uniformly at random,
  is z_t. z is drawn step by step (each step's MLP pass sees the steps before; no gradient), then the whole
  window is run once more with gradient and the same choices are read out of it (FSVAE's procedure).
- **Prior** p(z_t | z_<t): the same MLP shape on z_{t−1} (L → 2L → 4L → L·k). While training, from step
  :data:`SCHEDULED_FROM` on, each step's input is with probability p the prior's own most likely spike
  (candidate mean > ½) instead of the posterior's (scheduled sampling, p rising 0.1 → 0.3 over the epochs).
  Sampling: z_t is a random candidate of the prior's output given its own z_<t.
- **Decoder**: Linear → tdBN → LIF to hidden[−1]·2·2, reshaped [hidden[−1], 2, 2], ``len(hidden) − 1``
  ConvTranspose 3×3 stride 2 (output padding 1) → tdBN → LIF blocks, one more to hidden[0] channels at full
  size, then a ConvTranspose 3×3 stride 1 to the image channels (no BN, no LIF). The image is
  ``tanh(Σ_t 0.8^(T−1−t) · out_t)`` (FSVAE's ``MembraneOutputLayer``).
- **tdBN** (Zheng et al. 2021, as FSVAE): per channel over (T, N, H, W), output ``α·V_th·x̂·γ + β`` with
  V_th = 0.2 (FSVAE's threshold) and α = 1 (2 in prior and posterior).
- **Loss** (:func:`vae_loss`): MSE(reconstruction, image) + the "MMD" term, the mean squared difference of
  the PSP-filtered (τ = 2) firing probabilities of posterior and prior; or, with ``loss="kld"``, 1e-4 × the
  Bernoulli KL divergence.

**Neurons.** FSVAE's LIF is ``u_t = 0.25·u_{t−1}·(1 − o_{t−1}) + x_t``, spike when u_t > 0.2, with a
rectangular surrogate of width ±0.5 and height 1 around the threshold. Norse's LIF with τ_syn = 1 is
``v_t = (1 − 1/τ_mem)·v_{t−1} + x_t/τ_mem`` with reset to 0 (docs/DESIGN.md §3); with τ_mem = 4/3 and
v = 0.75·u it is the same recurrence, so v_th = 0.75·0.2 = 0.15 gives the same spikes, and the surrogate
``rectangle`` with α = 4/3 (box |v − v_th| < 0.375 of height 4/3) gives the same gradient with respect to
x (:func:`fsvae_lif_config`; proved spike for spike in ``tests/models/test_vae.py``).

**TCJA (ours).** The TCJA paper adds TCJA to FSVAE but no public code shows where. Our placement: a TCJA
layer (:class:`~tcja_deploy.models.tcja.TCJA`, kernels ``kernel_tla`` × ``kernel_cla``) after the LIF of
each block named in ``tcja_blocks`` — by default every convolutional block of the encoder and of the
decoder (``enc0`` … ``enc3``, ``dec0`` … ``dec3``; ``dec3`` is the full-size block before the output
convolution). ``use_tcja=False`` builds the same network without them (the ablation).

Deviations from FSVAE (ours): the step-by-step sampling passes normalise with the batch statistics of the
steps so far but do not update tdBN's running statistics (FSVAE updates them on every pass); scheduled
sampling draws its coin from torch's generator (FSVAE: Python's ``random``), one coin per step for the whole
batch as FSVAE.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcja_deploy.models.lif import LIFConfig, LIFSequence
from tcja_deploy.models.tcja import GATE_FUNCTIONS, TCJA

#: FSVAE's threshold and leak (``snn_layers.py``: Vth = 0.2, tau = 0.25) in its own units.
FSVAE_V_TH = 0.2
FSVAE_DECAY = 0.25
#: Weight of output step t in the image: OUTPUT_DECAY^(T−1−t) (FSVAE's MembraneOutputLayer).
OUTPUT_DECAY = 0.8
#: PSP filter of the MMD term: syn_t = syn_{t−1} + (x_t − syn_{t−1})/τ (FSVAE's PSP, τ = 2).
PSP_TAU = 2.0
#: Scheduled sampling replaces the prior's input only from this step on (FSVAE: ``t >= 5``).
SCHEDULED_FROM = 5
#: Scheduled-sampling probability over training: P_START at epoch 0, rising linearly towards P_END.
P_START, P_END = 0.1, 0.3
#: Weight of the KL term with ``loss="kld"`` (FSVAE's loss_function_kld).
KLD_WEIGHT = 1e-4
VAE_LOSSES = ("mmd", "kld")


def fsvae_lif_config() -> LIFConfig:
    """FSVAE's LIF expressed in Norse's parameters (see the module docstring): τ_syn = 1, τ_mem = 4/3,
    v_th = 0.15, rectangular surrogate α = 4/3, gradient through the reset (as FSVAE's autograd)."""
    tau_mem = 1.0 / (1.0 - FSVAE_DECAY)
    scale = 1.0 - FSVAE_DECAY  # v = scale · u
    return LIFConfig(tau_mem=tau_mem, tau_syn=1.0, v_th=scale * FSVAE_V_TH, surrogate="rectangle",
                     alpha=1.0 / (2 * 0.5 * scale), detach_reset=False)


def block_names(depth: int) -> tuple[str, ...]:
    """Names of the convolutional blocks a TCJA can follow: ``enc0`` … ``enc{depth−1}``, ``dec0`` … ``dec{depth−1}``."""
    return tuple(f"enc{i}" for i in range(depth)) + tuple(f"dec{i}" for i in range(depth))


@dataclass(frozen=True)
class VAEConfig:
    """The spiking VAE's architecture (saved as ``config.json``'s ``vae`` entry).

    Attributes:
        preset: the preset it came from (``vae_digits``, ...).
        dataset: image set (:data:`tcja_deploy.data.image_sets.NAMES`).
        in_channels, image_size: images [in_channels, image_size, image_size]; image_size must be
            2·2^len(hidden) (the latent grid is 2×2, as FSVAE's).
        hidden: channels of the encoder's conv blocks (the decoder mirrors them); FSVAE (32, 64, 128, 256),
            its CelebA variant (32, 64, 128, 256, 512).
        latent_dim: L, latent spike trains (FSVAE 128).
        k: candidate spikes per latent and step (FSVAE 20).
        T: time steps (FSVAE 16).
        use_tcja: add TCJA layers after the blocks in ``tcja_blocks`` (False: the ablation).
        tcja_blocks: where (see :func:`block_names`); empty → every block.
        kernel_tla, kernel_cla: TCJA kernels (time steps, channels).
        causal: causal TCJA (:class:`~tcja_deploy.models.tcja.TCJA`'s ``causal``).
        gate_function: ``sigmoid`` or ``pwl``.
    """

    preset: str = "vae_digits"
    dataset: str = "digits"
    in_channels: int = 1
    image_size: int = 32
    hidden: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = 128
    k: int = 20
    T: int = 16
    use_tcja: bool = True
    tcja_blocks: tuple[str, ...] = ()
    kernel_tla: int = 4
    kernel_cla: int = 4
    causal: bool = False
    gate_function: str = "sigmoid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "tcja_blocks", tuple(str(b) for b in self.tcja_blocks))
        ints = {"in_channels": self.in_channels, "image_size": self.image_size, "latent_dim": self.latent_dim,
                "k": self.k, "T": self.T, "kernel_tla": self.kernel_tla, "kernel_cla": self.kernel_cla}
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.T > 4096:
            raise ValueError(f"T must be at most 4096, got {self.T}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty list of channel counts ≥ 1, got {list(self.hidden)}")
        if self.image_size != 2 * 2 ** len(self.hidden):
            raise ValueError(f"image_size {self.image_size} needs {int(math.log2(max(self.image_size, 2))) - 1} conv "
                             f"blocks (2·2^blocks), hidden has {len(self.hidden)}")
        unknown = sorted(set(self.tcja_blocks) - set(block_names(len(self.hidden))))
        if unknown:
            raise ValueError(f"tcja_blocks {unknown}: unknown; blocks are {', '.join(block_names(len(self.hidden)))}")
        if self.gate_function not in GATE_FUNCTIONS:
            raise ValueError(f"gate_function must be one of {GATE_FUNCTIONS}, got {self.gate_function!r}")
        if not isinstance(self.use_tcja, bool) or not isinstance(self.causal, bool):
            raise ValueError("use_tcja and causal must be true or false")

    @property
    def attention_blocks(self) -> tuple[str, ...]:
        """The blocks followed by a TCJA layer (none when ``use_tcja`` is False)."""
        if not self.use_tcja:
            return ()
        return self.tcja_blocks or block_names(len(self.hidden))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["tcja_blocks"] = list(self.hidden), list(self.tcja_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEConfig":
        """Inverse of :meth:`to_dict`; unknown keys or bad values raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError("the vae entry must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown VAE config field(s) {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(str(e)) from None


class TimeBatchNorm(nn.Module):
    """tdBN on time-major activations [T, N, C, ...]: per channel over (T, N, ...), scaled by α·V_th.

    Output ``α·V_th·(x − μ)/√(σ² + ε)·γ + β`` (FSVAE's tdBatchNorm); running statistics as BatchNorm's
    (momentum 0.1, unbiased running variance). ``update_stats=False`` in :meth:`forward` normalises a
    training batch by its own statistics without updating the running ones.
    """

    def __init__(self, channels: int, alpha: float = 1.0, v_th: float = FSVAE_V_TH, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        self.channels, self.scale, self.eps, self.momentum = channels, alpha * v_th, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor, update_stats: bool = True) -> Tensor:
        flat = x.flatten(0, 1)  # [T·N, C, ...]
        track = self.training and update_stats
        if track:
            self.num_batches_tracked.add_(1)
        y = F.batch_norm(flat, self.running_mean if (track or not self.training) else None,
                         self.running_var if (track or not self.training) else None,
                         self.weight * self.scale, self.bias, self.training, self.momentum, self.eps)
        return y.view_as(x)


def _per_step(layer: nn.Module, x: Tensor) -> Tensor:
    """Apply a 2-D layer to every step of [T, N, C, H, W] (folded into the batch)."""
    y = layer(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class SpikingBlock(nn.Module):
    """Conv / ConvTranspose / Linear → tdBN → LIF (→ TCJA) on [T, N, ...] → spikes [T, N, ...]."""

    def __init__(self, layer: nn.Module, channels: int, T: int, lif: LIFConfig, bn_alpha: float = 1.0,
                 attention: TCJA | None = None):
        super().__init__()
        self.layer, self.bn, self.lif = layer, TimeBatchNorm(channels, bn_alpha), LIFSequence(lif)
        self.tcja = attention

    def forward(self, x: Tensor, update_stats: bool = True) -> Tensor:
        y = self.lif(self.bn(_per_step(self.layer, x), update_stats))
        return self.tcja(y) if self.tcja is not None else y


class BernoulliMLP(nn.Module):
    """The prior's or posterior's three Linear → tdBN(α = 2) → LIF layers: [T, N, in] → spikes [T, N, L, k]."""

    def __init__(self, in_features: int, latent_dim: int, k: int, T: int, lif: LIFConfig):
        super().__init__()
        widths = (in_features, 2 * latent_dim, 4 * latent_dim, latent_dim * k)
        self.latent_dim, self.k = latent_dim, k
        self.layers = nn.ModuleList(
            SpikingBlock(nn.Linear(a, b), b, T, lif, bn_alpha=2.0) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: Tensor, update_stats: bool = True) -> Tensor:
        for layer in self.layers:
            x = layer(x, update_stats)
        return x.view(x.shape[0], x.shape[1], self.latent_dim, self.k)


def pick_candidates(candidates: Tensor, index: Tensor) -> Tensor:
    """z [..., L] = candidates [..., L, k] at ``index`` [..., L] (int64 in [0, k))."""
    return candidates.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def random_candidates(shape: tuple[int, ...], k: int, device: torch.device,
                      generator: torch.Generator | None = None) -> Tensor:
    """Uniform candidate indices in [0, k) of ``shape`` (drawn on the CPU, from ``generator`` if given)."""
    return torch.randint(0, k, shape, generator=generator).to(device)


def psp(x: Tensor, tau: float = PSP_TAU) -> Tensor:
    """PSP filter over time of [T, ...]: s_t = s_{t−1} + (x_t − s_{t−1})/τ, s_{−1} = 0."""
    out, s = [], torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        s = s + (x[t] - s) / tau
        out.append(s)
    return torch.stack(out)


def membrane_output(x: Tensor, decay: float = OUTPUT_DECAY) -> Tensor:
    """The image from the last layer's output [T, N, C, H, W]: ``tanh(Σ_t decay^(T−1−t)·x_t)`` in (−1, 1)."""
    T = x.shape[0]
    weights = decay ** torch.arange(T - 1, -1, -1, dtype=x.dtype, device=x.device)
    return torch.tanh(torch.einsum("t,t...->...", weights, x))


def scheduled_p(epoch: int, epochs: int) -> float:
    """Scheduled-sampling probability of 0-based ``epoch`` of ``epochs``: P_START + (P_END − P_START)·epoch/epochs."""
    return P_START + (P_END - P_START) * epoch / max(epochs, 1)


def distance_loss(q_z: Tensor, p_z: Tensor, loss: str = "mmd") -> Tensor:
    """The latent term from candidate spikes q_z, p_z [T, N, L, k].

    ``mmd``: mean over (T, N, L) of (PSP(q̄) − PSP(p̄))², q̄/p̄ the candidate means (firing probabilities);
    ``kld``: the Bernoulli KL(q̄ ‖ p̄) with 0.01 added inside the logs, summed over (T, L), mean over N.
    """
    q, p = q_z.mean(-1), p_z.mean(-1)  # [T, N, L]
    if loss == "mmd":
        return ((psp(q) - psp(p)) ** 2).mean()
    if loss == "kld":
        kl = q * torch.log((q + 1e-2) / (p + 1e-2)) + (1 - q) * torch.log((1 - q + 1e-2) / (1 - p + 1e-2))
        return kl.sum(dim=(0, 2)).mean()
    raise ValueError(f"loss must be one of {VAE_LOSSES}, got {loss!r}")


def vae_loss(images: Tensor, recon: Tensor, q_z: Tensor, p_z: Tensor, loss: str = "mmd") -> dict[str, Tensor]:
    """{"loss", "reconstruction", "distance"}: MSE(recon, images) + distance (× KLD_WEIGHT for ``kld``)."""
    reconstruction = F.mse_loss(recon, images)
    distance = distance_loss(q_z, p_z, loss)
    weight = KLD_WEIGHT if loss == "kld" else 1.0
    return {"loss": reconstruction + weight * distance, "reconstruction": reconstruction, "distance": distance}


class SpikingVAE(nn.Module):
    """FSVAE with optional TCJA (module docstring). Images [N, C, H, W] in [−1, 1]; latents [T, N, L] spikes."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        lif = fsvae_lif_config()
        depth, attn = len(c.hidden), set(c.attention_blocks)

        def tcja(name: str, channels: int) -> TCJA | None:
            if name not in attn:
                return None
            return TCJA(c.T, channels, c.kernel_tla, c.kernel_cla, causal=c.causal, gate_function=c.gate_function)

        enc, in_ch = [], c.in_channels
        for i, h in enumerate(c.hidden):
            enc.append(SpikingBlock(nn.Conv2d(in_ch, h, 3, stride=2, padding=1), h, c.T, lif,
                                    attention=tcja(f"enc{i}", h)))
            in_ch = h
        self.encoder = nn.ModuleList(enc)
        flat = c.hidden[-1] * 4
        self.to_latent = SpikingBlock(nn.Linear(flat, c.latent_dim), c.latent_dim, c.T, lif)
        self.posterior = BernoulliMLP(2 * c.latent_dim, c.latent_dim, c.k, c.T, lif)
        self.prior = BernoulliMLP(c.latent_dim, c.latent_dim, c.k, c.T, lif)
        self.from_latent = SpikingBlock(nn.Linear(c.latent_dim, flat), flat, c.T, lif)
        rev = tuple(reversed(c.hidden))
        outs = rev[1:] + (c.hidden[0],)
        self.decoder = nn.ModuleList(
            SpikingBlock(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), b, c.T, lif,
                         attention=tcja(f"dec{i}", b))
            for i, (a, b) in enumerate(zip(rev, outs)))
        self.output = nn.ConvTranspose2d(c.hidden[0], c.in_channels, 3, stride=1, padding=1)
        assert len(self.decoder) == depth

    # -- encoder / latent ------------------------------------------------------------------------------------

    def features(self, images: Tensor) -> Tensor:
        """Latent input x [T, N, L] (spikes) of images [N, C, H, W] (shown at every step)."""
        self._check_images(images)
        x = images.unsqueeze(0).expand(self.config.T, *images.shape)
        for block in self.encoder:
            x = block(x)
        return self.to_latent(x.flatten(2))

    def posterior_sample(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(z [T, N, L] spikes, q_z [T, N, L, k] candidate spikes) for latent input x [T, N, L]."""
        T, N, L = x.shape
        k = self.config.k
        index = random_candidates((T, N, L), k, x.device, generator)
        z_prev = x.new_zeros(T, N, L)  # z_prev[t] = z_{t−1}, z_{−1} = 0
        with torch.no_grad():
            for t in range(T - 1):
                inp = torch.cat([x[: t + 1].detach(), z_prev[: t + 1]], dim=-1)
                q_t = self.posterior(inp, update_stats=False)[-1]  # [N, L, k]
                z_prev[t + 1] = pick_candidates(q_t, index[t])
        q_z = self.posterior(torch.cat([x, z_prev], dim=-1))
        return pick_candidates(q_z, index), q_z

    def prior_given(self, z: Tensor, p: float = 0.0) -> Tensor:
        """p_z [T, N, L, k]: the prior's candidates given z_<t (z [T, N, L], detached).

        While training with ``p`` > 0, the input of step t + 1 ≥ :data:`SCHEDULED_FROM` + 1 is, with
        probability p per step, the prior's own most likely spike (candidate mean > ½, ties broken by 1e-3
        noise) instead of z_t (scheduled sampling).
        """
        z = z.detach()
        T, N, L = z.shape
        z_prev = torch.cat([z.new_zeros(1, N, L), z[:-1]], dim=0)
        if self.training and p > 0:
            with torch.no_grad():
                for t in range(SCHEDULED_FROM, T - 1):
                    if float(torch.rand(())) < p:
                        prob = self.prior(z_prev[: t + 1], update_stats=False)[-1].mean(-1)
                        prob = prob + 1e-3 * torch.randn_like(prob)
                        z_prev[t + 1] = (prob > 0.5).to(z.dtype)
        return self.prior(z_prev)

    def encode(self, images: Tensor, p: float = 0.0, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """(z [T, N, L], q_z [T, N, L, k], p_z [T, N, L, k]) for images [N, C, H, W] in [−1, 1]."""
        z, q_z = self.posterior_sample(self.features(images), generator)
        return z, q_z, self.prior_given(z, p)

    # -- decoder ---------------------------------------------------------------------------------------------

    def decode(self, z: Tensor) -> Tensor:
        """Images [N, C, H, W] in (−1, 1) from latent spikes z [T, N, L]."""
        T, N, _ = z.shape
        x = self.from_latent(z).view(T, N, self.config.hidden[-1], 2, 2)
        for block in self.decoder:
            x = block(x)
        return membrane_output(_per_step(self.output, x))

    def forward(self, images: Tensor, p: float = 0.0) -> dict[str, Tensor]:
        """{"recon" [N, C, H, W], "z" [T, N, L], "q_z", "p_z" [T, N, L, k]}."""
        z, q_z, p_z = self.encode(images, p)
        return {"recon": self.decode(z), "z": z, "q_z": q_z, "p_z": p_z}

    @torch.no_grad()
    def reconstruct(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Reconstructions [N, C, H, W] in (−1, 1) of images [N, C, H, W] (one posterior sample each)."""
        z, _ = self.posterior_sample(self.features(images), generator)
        return self.decode(z)

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latent spike trains [T, n, L] drawn from the prior, one step at a time."""
        c = self.config
        device = self.output.weight.device
        z = torch.zeros(c.T + 1, n, c.latent_dim, device=device)  # z[t + 1] = z_t, z[0] = 0
        for t in range(c.T):
            p_t = self.prior(z[: t + 1], update_stats=False)[-1]  # [n, L, k]
            z[t + 1] = pick_candidates(p_t, random_candidates((n, c.latent_dim), c.k, device, generator))
        return z[1:]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n generated images [n, C, H, W] in (−1, 1)."""
        return self.decode(self.sample_latents(n, generator))

    def _check_images(self, images: Tensor) -> None:
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"expected images [N, {c.in_channels}, {c.image_size}, {c.image_size}], got "
                             f"{tuple(images.shape)}")

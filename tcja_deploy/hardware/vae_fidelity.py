"""Fidelity of the spiking VAE's fixed-point decoder and encoder (docs/DESIGN.md §13): float graph vs model, fixed
point vs float per image (and, for the encoder, per latent-input spike), and Lava vs emulator on every on-chip
layer.

All images are [N, C, H, W] on the [−1, 1] scale; PSNR is ``10·log10(4 / MSE)`` per image (peak-to-peak 2).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from tcja_deploy.conversion import vae_graph as V
from tcja_deploy.conversion.execute import run_graph
from tcja_deploy.models.vae import SpikingVAE

#: Latent trains per batch when the decoder graphs run over a split.
BATCH = 64


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N] PSNR in dB between images a, b [N, ...] on the [−1, 1] scale (peak-to-peak 2); inf where equal."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse)


def decode_graph(graph, z: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """Images [N, C, H, W] (float64) of a decoder graph for latents z [T, N, L], in batches of samples."""
    return torch.cat([run_graph(graph, zb.to(torch.float64)) for zb in z.split(batch, 1)])


def posterior_latents(model: SpikingVAE, images: torch.Tensor, generator: torch.Generator,
                      batch: int = 128) -> torch.Tensor:
    """One posterior latent train [T, N, L] per image [N, C, H, W] (the reconstruction's latents)."""
    with torch.no_grad():
        return torch.cat([model.posterior_sample(model.features(b), generator)[0] for b in images.split(batch)], 1)


def _stats(p: torch.Tensor) -> dict[str, float]:
    return {"mean": float(p.mean()), "median": float(p.median()), "min": float(p.min()), "max": float(p.max())}


def decoder_fidelity(model: SpikingVAE, train: torch.Tensor, test: torch.Tensor, lava_samples: int = 3,
                     prior_calibration: int = 256, seed: int = 0) -> dict[str, Any]:
    """Convert ``model``'s decoder (calibrated on the posterior latents of ``train`` and ``prior_calibration`` prior
    samples) and measure it.

    Returns ``{"float_vs_model": {...}, "test_reconstruction": {...}, "prior_samples": {...}, "lava": {...},
    "graph": fixed-point Graph, "float_graph": its float CUBA graph, "latents": {"prior", "test"} [T, N, L], "images": {"prior_float", "prior_fixed"}
    [N, C, H, W] float64}``: PSNR statistics fixed vs float per image (dB) on the test reconstructions and on
    as many prior samples, the test reconstruction MSE of both, the float32 float graph's largest deviation from
    ``model.decode``, and :func:`tcja_deploy.hardware.vae_lava.compare_chain` on ``lava_samples`` latents
    (all but one from the prior, the last a test posterior; 0: no Lava run). Seeded by ``seed``.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    z_train = posterior_latents(model, train, gen)
    z_test = posterior_latents(model, test, gen)
    with torch.no_grad():
        z_prior = model.sample_latents(len(test), gen)
        z_cal = torch.cat([z_train, model.sample_latents(prior_calibration, gen)], 1)
        ref = torch.cat([model.decode(zb) for zb in z_prior.split(BATCH, 1)]).double()
    t0 = time.perf_counter()
    float_graph = V.convert_decoder(model)
    graph = V.quantize_decoder(float_graph, z_cal)
    out: dict[str, Any] = {"convert_seconds": time.perf_counter() - t0, "calibration_latents": int(z_cal.shape[1])}
    f32 = torch.cat([run_graph(float_graph, zb.float()) for zb in z_prior.split(BATCH, 1)]).double()
    out["float_vs_model"] = {"n": int(z_prior.shape[1]), "max_abs_float32": float((f32 - ref).abs().max())}
    images: dict[str, torch.Tensor] = {}
    for name, z in (("test_reconstruction", z_test), ("prior_samples", z_prior)):
        yf, yq = decode_graph(float_graph, z), decode_graph(graph, z)
        if name == "prior_samples":
            images = {"prior_float": yf, "prior_fixed": yq}
        entry = {"n": int(z.shape[1]), "psnr_db": _stats(psnr_per_image(yf, yq))}
        if name == "test_reconstruction":
            entry["recon_mse_float"] = float(((yf - test.double()) ** 2).mean())
            entry["recon_mse_fixed"] = float(((yq - test.double()) ** 2).mean())
        out[name] = entry
    if lava_samples > 0:
        from tcja_deploy.hardware.vae_lava import compare_chain

        z_l = torch.cat([z_prior[:, : lava_samples - 1], z_test[:, :1]], 1)
        out["lava"] = compare_chain(graph, z_l)
    out["graph"], out["float_graph"] = graph, float_graph
    out["latents"] = {"prior": z_prior, "test": z_test}
    out["images"] = images
    return out


def encode_graph(graph, images: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """Latent input x [T, N, L] (float64 spikes) of an encoder graph for images [N, C, H, W], in batches."""
    T = int(graph.meta["T"])
    dtype = torch.float64 if graph.quantized else images.dtype
    return torch.cat([run_graph(graph, V.encoder_input(b, T).to(dtype)) for b in images.split(batch)], 1).double()


def _agreement(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Spike agreement of two trains [T, N, L]: fraction of equal values, and each one's firing rate."""
    return {"agreement": float((a == b).double().mean()), "rate_a": float(a.double().mean()),
            "rate_b": float(b.double().mean()), "values": int(a.numel())}


def encoder_fidelity(model: SpikingVAE, train: torch.Tensor, test: torch.Tensor, float_decoder, fixed_decoder,
                     seed: int = 0) -> dict[str, Any]:
    """Convert ``model``'s encoder (calibrated on the ``train`` images) and measure it on the ``test`` images.

    Returns ``{"float_vs_model": x agreement of the float32 float graph with ``model.features``,
    "latent_input": x agreement fixed vs float (``rate_a`` fixed, ``rate_b`` float), "posterior_z": the same for
    the posterior's z drawn from either x with the same random choices, "reconstruction": {"n", "psnr_db" (fixed
    encoder + fixed decoder vs float encoder + float decoder, per image), "recon_mse_float", "recon_mse_fixed"},
    "graph": fixed-point encoder Graph, "convert_seconds"}``. The float chain is ``model.features`` → posterior →
    ``float_decoder``; the fixed chain the fixed-point encoder → the same host posterior → ``fixed_decoder``.
    """
    model.eval()
    t0 = time.perf_counter()
    float_graph = V.convert_encoder(model)
    graph = V.quantize_encoder(float_graph, train)
    out: dict[str, Any] = {"convert_seconds": time.perf_counter() - t0, "calibration_images": int(len(train))}
    with torch.no_grad():
        x_model = torch.cat([model.features(b) for b in test.split(BATCH)], 1).double()
    x_float = encode_graph(float_graph, test.float())
    x_fixed = encode_graph(graph, test)
    out["float_vs_model"] = _agreement(x_float, x_model)
    out["latent_input"] = _agreement(x_fixed, x_model)
    with torch.no_grad():
        z_float = model.posterior_sample(x_model.float(), torch.Generator().manual_seed(seed))[0]
        z_fixed = model.posterior_sample(x_fixed.float(), torch.Generator().manual_seed(seed))[0]
    out["posterior_z"] = _agreement(z_fixed, z_float)
    yf, yq = decode_graph(float_decoder, z_float), decode_graph(fixed_decoder, z_fixed)
    out["reconstruction"] = {"n": int(len(test)), "psnr_db": _stats(psnr_per_image(yf, yq)),
                             "recon_mse_float": float(((yf - test.double()) ** 2).mean()),
                             "recon_mse_fixed": float(((yq - test.double()) ** 2).mean())}
    out["graph"] = graph
    return out

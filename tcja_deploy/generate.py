"""Sample and measure a trained spiking VAE: ``python -m tcja_deploy.generate --run RUN --out DIR``.

Writes DIR whole (a temporary folder renamed when complete; marker ``.tcja_deploy`` kind ``generate``):

- ``samples.png``: a grid of images drawn from the prior;
- ``reconstructions.png``: test images (odd rows) above their reconstructions (even rows);
- ``interpolation.png``: per row, the latent spike trains of two test images mixed step by step (ours: at
  mixing weight a, each latent spike is taken from the second image where a fixed uniform draw is < a);
- ``metrics.json``: reconstruction MSE on the test split; autoencoder-FID (FSVAE's definition: the Fréchet
  distance of an ANN autoencoder's latent features, generated vs test images); classifier-FID and a classifier
  score (the Inception Score formula on an in-project classifier's softmax). The feature networks are trained
  in the project (``python -m tcja_deploy.feature_net``; here on first use, cached in ``--feature-nets``), so
  these numbers are **not comparable to Inception-based figures**. ``--inception FILE`` adds the standard
  FID with clean-fid / torch-fidelity's Inception weights when the user has that file.

A classifier run, an unfinished run or a bad flag: one line ``error: ...`` on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tcja_deploy.errors import OneLineParser, UserError, cli_main

NOT_COMPARABLE = "not comparable to Inception-based figures"
DIR_KIND = "generate"
GRID_COLUMNS = 8
RECON_PAIRS = 4  # rows of originals (each followed by its reconstructions)
INTERP_ROWS, INTERP_STEPS = 4, 10


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.generate", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a spiking-VAE run directory (train --preset vae_*)")
    p.add_argument("--out", type=Path, required=True, help="output directory (PNGs, metrics.json; replaced whole)")
    p.add_argument("--n", type=int, help="generated images scored (default: as many as the test split, ≤ 10000)")
    p.add_argument("--inception", type=Path, metavar="FILE",
                   help="clean-fid / torch-fidelity Inception weights: adds the standard FID")
    p.add_argument("--feature-nets", type=Path, metavar="DIR",
                   help="cache of the in-project feature networks (default: feature_nets/ next to the run)")
    p.add_argument("--data-dir", help="dataset root (default: the run's)")
    p.add_argument("--download", action="store_true", help="download a missing dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass (default 128)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def check_args(args: argparse.Namespace) -> None:
    for name in ("n", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be ≥ 1")
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed {args.seed}: must lie in [0, 2^63)")
    if args.inception is not None:
        from tcja_deploy.generation.inception import check_inception_file

        check_inception_file(args.inception)  # before any work: exists, readable, a TorchScript archive


# ---------------------------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------------------------


def to_uint8(images):
    """[N, C, H, W] in [−1, 1] → uint8 [N, H, W, C] (0–255)."""
    import torch

    x = ((images.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(images, columns: int, pad: int = 2):
    """uint8 [rows·H + pads, columns·W + pads, C] tiling [N, C, H, W] images in [−1, 1] row by row (white gaps)."""
    import numpy as np

    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, columns)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = tiles[i]
    return out


def save_png(path: Path, pixels, scale: int = 1) -> None:
    """Write a uint8 [H, W, 1 | 3] array as PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path, format="PNG")


def interpolate_latents(z_a, z_b, steps: int, generator):
    """[steps, T, L] spike trains from z_a to z_b ([T, L]): step a takes z_b where a fixed U(0,1) draw < a."""
    import torch

    u = torch.rand(z_a.shape, generator=generator).to(z_a.device)
    weights = torch.linspace(0, 1, steps, device=z_a.device)
    return torch.stack([torch.where(u < a, z_b, z_a) for a in weights])


# ---------------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------------


def _batched(fn, images, batch_size: int):
    import torch

    return torch.cat([fn(images[i: i + batch_size]) for i in range(0, len(images), batch_size)])


def measure(model, test, samples, recon, classifier, autoencoder, train_sample) -> dict[str, Any]:
    """The metrics.json entries: reconstruction MSE, autoencoder-FID, classifier-FID and score, references."""
    from tcja_deploy.generation.metrics import frechet_distance, inception_score, reconstruction_mse

    out: dict[str, Any] = {
        "reconstruction_mse": {"value": reconstruction_mse(recon, test), "split": "test",
                               "definition": "mean squared error of [−1, 1] pixels, one posterior sample per image"},
    }
    ae_test, ae_fake = autoencoder.features(test), autoencoder.features(samples)
    out["autoencoder_fid"] = {
        "value": frechet_distance(ae_fake, ae_test), "features": f"in-project ANN autoencoder latent "
        f"({autoencoder.feature_dim}-d, FSVAE's autoencoder-FID definition)", "against": "test split",
        "note": NOT_COMPARABLE, "train_vs_test": frechet_distance(autoencoder.features(train_sample), ae_test)}
    if classifier is not None:
        cl_test, cl_fake = classifier.features(test), classifier.features(samples)
        splits = min(10, len(samples), len(test))  # the usual 10 splits, fewer for very small sets
        score, std = inception_score(classifier.probs(samples), splits)
        ref_score, _ = inception_score(classifier.probs(test), splits)
        out["classifier_fid"] = {
            "value": frechet_distance(cl_fake, cl_test), "features": f"in-project CNN classifier "
            f"({classifier.feature_dim}-d pooled features)", "against": "test split", "note": NOT_COMPARABLE,
            "train_vs_test": frechet_distance(classifier.features(train_sample), cl_test)}
        out["classifier_score"] = {"value": score, "std": std, "splits": splits,
                                   "definition": "exp(E KL(p(y|x) ‖ p(y))) on the in-project classifier's softmax "
                                                 "(the Inception Score formula)",
                                   "test_split_value": ref_score, "note": NOT_COMPARABLE}
    return out


def feature_cache(args: argparse.Namespace) -> Path:
    return args.feature_nets if args.feature_nets is not None else args.run.resolve().parent / "feature_nets"


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_args(args)
    import torch

    from tcja_deploy.training.plan import resolve_device

    device = resolve_device(args.device)

    from tcja_deploy import atomic, outputs
    from tcja_deploy.data.image_sets import load_image_set
    from tcja_deploy.generation.feature_nets import ensure_feature_nets
    from tcja_deploy.models.presets.vae import FSVAE_RESULTS
    from tcja_deploy.training.vae_run import load_vae

    t0 = time.perf_counter()
    model, train_config = load_vae(args.run, device)
    c = model.config
    outputs.check_out_dir(args.out, DIR_KIND, inputs=[args.run])
    data_dir = args.data_dir or train_config.get("data_dir")
    data_dir = Path(data_dir) if data_dir else None
    images, labels = {}, {}
    for split in ("train", "test"):
        images[split], labels[split] = load_image_set(c.dataset, split, data_dir, download=args.download)
    test = images["test"]
    n = args.n or min(len(test), 10_000)
    gen = torch.Generator().manual_seed(args.seed)
    classifier, autoencoder = ensure_feature_nets(c.dataset, images, labels, feature_cache(args))
    torch.manual_seed(args.seed)  # after the feature nets: the same draws whether they were cached or trained
    recon = _batched(lambda b: model.reconstruct(b.to(device)).cpu(), test, args.batch_size)
    samples = torch.cat([model.sample(min(args.batch_size, n - i)).cpu() for i in range(0, n, args.batch_size)])
    train_pick = torch.randperm(len(images["train"]), generator=gen)[: len(test)]
    metrics: dict[str, Any] = {
        "run": str(args.run), "preset": c.preset, "dataset": c.dataset, "use_tcja": c.use_tcja,
        "tcja_blocks": list(c.attention_blocks), "epochs": train_config.get("epochs"), "n_samples": n,
        "n_test": len(test), "seed": args.seed, "feature_nets": str(feature_cache(args)),
        **measure(model, test, samples, recon, classifier, autoencoder, images["train"][train_pick]),
    }
    if args.inception is not None:
        from tcja_deploy.generation.inception import standard_fid

        metrics["inception_fid"] = {"value": standard_fid(test, samples, args.inception, device=device),
                                    "weights": str(args.inception), "against": "test split"}
    if c.dataset in FSVAE_RESULTS:
        metrics["fsvae_paper"] = {**FSVAE_RESULTS[c.dataset], "note": "FSVAE's published figures (Inception-based "
                                  "FID/IS; their own autoencoder): for orientation, not comparable to ours"}
    with atomic.atomic_dir(args.out) as tmp:
        save_png(tmp / "samples.png", grid(samples[: GRID_COLUMNS * GRID_COLUMNS], GRID_COLUMNS), scale=2)
        k = RECON_PAIRS * GRID_COLUMNS
        pairs = torch.stack([test[:k].view(RECON_PAIRS, GRID_COLUMNS, *test.shape[1:]),
                             recon[:k].view(RECON_PAIRS, GRID_COLUMNS, *test.shape[1:])], 1).flatten(0, 2)
        save_png(tmp / "reconstructions.png", grid(pairs, GRID_COLUMNS), scale=2)
        with torch.no_grad():
            ends = test[: 2 * INTERP_ROWS].to(device)
            z, _ = model.posterior_sample(model.features(ends), gen)  # [T, 2R, L]
            strips = [interpolate_latents(z[:, 2 * r], z[:, 2 * r + 1], INTERP_STEPS, gen) for r in range(INTERP_ROWS)]
            mixed = torch.cat(strips).transpose(0, 1)  # [T, R·steps, L]
            frames = model.decode(mixed).cpu()
        save_png(tmp / "interpolation.png", grid(frames, INTERP_STEPS), scale=2)
        metrics["seconds"] = time.perf_counter() - t0
        atomic.write_json(tmp / "metrics.json", metrics)
        outputs.write_marker(tmp, DIR_KIND)
    line = f"reconstruction MSE {metrics['reconstruction_mse']['value']:.4f}, autoencoder-FID " \
           f"{metrics['autoencoder_fid']['value']:.2f}"
    if "classifier_fid" in metrics:
        line += f", classifier-FID {metrics['classifier_fid']['value']:.2f}, classifier score " \
                f"{metrics['classifier_score']['value']:.2f}"
    print(f"{line} ({NOT_COMPARABLE}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

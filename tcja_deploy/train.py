"""Train a TCJA-SNN on a preset's dataset and write a run directory.

Usage: ``python -m tcja_deploy.train [--preset digits] [--epochs N] ... [--resume RUN_DIR]``; on several
processes or machines: ``torchrun --nproc-per-node N -m tcja_deploy.train ...`` (DistributedDataParallel).
With no arguments: the ``digits`` preset (scikit-learn digits as DVS events) on CUDA if available,
else CPU. Writes a run directory (default ``runs/<preset>-<YYYYmmdd-HHMMSS>``) with
``model.safetensors``, ``config.json``, ``metrics.json``, ``metrics.jsonl`` and the resume checkpoint
``train_state.safetensors``. Bad input: one line ``error: ...`` on stderr, exit code 2.
``--preset vae_*`` trains a spiking VAE for image generation instead (single process; same run directory
layout, docs/FORMATS.md §7; ``--no-tcja`` for the ablation), then ``python -m tcja_deploy.generate``.
"""

from __future__ import annotations

import argparse
import sys

# OMP_WAIT_POLICY=PASSIVE is set in tcja_deploy/__init__.py, before torch loads.

from tcja_deploy.errors import OneLineParser, UserError, cli_main  # noqa: E402
from tcja_deploy.models.presets import PRESET_NAMES  # noqa: E402
from tcja_deploy.models.presets.vae import VAE_PRESET_NAMES  # noqa: E402
from tcja_deploy.models.vae import VAE_LOSSES  # noqa: E402
from tcja_deploy.models.tcja import GATE_FUNCTIONS  # noqa: E402
from tcja_deploy.training.config import ENCODINGS, LOSSES, RECIPES, TrainConfig  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.train", description=__doc__.splitlines()[0])
    p.add_argument("--preset", help=f"network preset: {', '.join(PRESET_NAMES)} (default: digits); spiking VAEs "
                                    f"(image generation): {', '.join(VAE_PRESET_NAMES)}")
    p.add_argument("--data-dir", help="dataset root folder (default: the data module's)")
    p.add_argument("--epochs", type=int, help="training epochs (default: preset)")
    p.add_argument("--batch-size", type=int,
                   help="samples per optimizer step: the global batch, split evenly across torchrun's ranks "
                        "(a multiple of the world size; default: preset)")
    p.add_argument("--lr", type=float, help="Adam learning rate, cosine-annealed over the epochs (default: preset)")
    p.add_argument("--T", type=int, help="time steps per sample (default: preset)")
    p.add_argument("--loss", choices=LOSSES + VAE_LOSSES,
                   help="mse: firing rate vs one-hot (reference); ce: cross-entropy; VAEs: mmd (FSVAE's default) or kld")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: cuda if available, else cpu)")
    p.add_argument("--amp", action="store_true", help="float16 autocast on CUDA (no effect on CPU: warns)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order, dropout (default: 0)")
    p.add_argument("--out", help="run directory (default: runs/<preset>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last completed epoch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="training augmentation (default: the dataset's)")
    p.add_argument("--download", action="store_true", help="download a missing dataset")
    p.add_argument("--encoding", choices=tuple(ENCODINGS), help="digits only: DVS events or static images")
    p.add_argument("--max-samples", type=int, metavar="N", help="use at most N samples per split (smoke tests)")
    p.add_argument("--recipe", choices=RECIPES, default="ours",
                   help="ours (default) or reference: the reference code's surrogate (ATan / PiecewiseQuadratic), "
                        "detached reset, AMP, drop_last and 1024 epochs (presets with reference code)")
    p.add_argument("--drop-last", action=argparse.BooleanOptionalAction, default=None,
                   help="drop the last incomplete training batch (default: the recipe's; ours keeps it)")
    p.add_argument("--causal", action="store_true",
                   help="causal (streaming) TCJA: each step's gate reads steps ≤ t only, so the chip needs no window")
    p.add_argument("--gate-function", choices=GATE_FUNCTIONS, default="sigmoid",
                   help="the gate's squashing: sigmoid (the paper) or pwl, the piecewise-linear sigmoid the "
                        "neuro-core gate computes (train for what the chip does)")
    p.add_argument("--no-tcja", action="store_true",
                   help="vae_* presets: the same spiking VAE without TCJA layers (the ablation)")
    p.add_argument("--tcja-blocks", metavar="LIST",
                   help="vae_* presets: the blocks followed by TCJA, comma-separated, e.g. enc0,enc1,dec3 "
                        "(default: every conv block of encoder and decoder)")
    p.add_argument("--sync-bn", action="store_true",
                   help="distributed runs: BatchNorm statistics over all ranks (SyncBatchNorm, CUDA only)")
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from command-line arguments (each flag sets the field of the same name)."""
    args = build_parser().parse_args(argv)
    return TrainConfig(**vars(args))


@cli_main
def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    from tcja_deploy.training.vae_loop import train_vae, wants_vae

    if wants_vae(config):
        metrics = train_vae(config)
        print(f"test reconstruction MSE {metrics['test_reconstruction_mse']:.4f} after {metrics['epochs']} epochs "
              f"({metrics['seconds']:.0f} s on {metrics['device']}); run: {metrics['run_dir']}; "
              f"next: python -m tcja_deploy.generate --run {metrics['run_dir']} --out DIR")
        return 0
    if config.no_tcja or config.tcja_blocks is not None:
        flag = "--no-tcja" if config.no_tcja else "--tcja-blocks"
        raise UserError(f"{flag}: applies to the spiking-VAE presets (vae_*) only")
    from tcja_deploy.training.loop import train

    metrics = train(config)
    print(f"test accuracy {metrics['test_accuracy']:.2%} after {metrics['epochs']} epochs "
          f"({metrics['seconds']:.0f} s on {metrics['device']}); run: {metrics['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

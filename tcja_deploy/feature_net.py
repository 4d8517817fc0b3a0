"""Train an in-project feature network for the image metrics (classifier-FID and score, autoencoder-FID).

Usage: ``python -m tcja_deploy.feature_net --kind classifier|autoencoder --dataset NAME --out RUN
[--data-dir D] [--download] [--epochs N] [--seed S] [--resume]``. Trains on the dataset's train split,
scores on its test split and writes a feature-net run directory (docs/FORMATS.md, "Feature-net run
directory"). ``generate`` trains the same networks by itself into its cache when none is given; this
command makes one explicitly. Their FIDs are not comparable to Inception-based figures.
Bad input: one line ``error: ...`` on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# OMP_WAIT_POLICY=PASSIVE is set in tcja_deploy/__init__.py, before torch loads.

from tcja_deploy.errors import OneLineParser, UserError, cli_main  # noqa: E402

# Copies of tcja_deploy.generation.feature_models.KINDS and tcja_deploy.data.image_sets.NAMES (so that parsing
# needs no torch import; a test keeps them equal).
KINDS = ("classifier", "autoencoder")
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "celeba")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.feature_net", description=__doc__.splitlines()[0])
    p.add_argument("--kind", required=True, choices=KINDS, help="classifier (CNN) or autoencoder (FSVAE's ANN AE)")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="image set (its train split trains the net)")
    p.add_argument("--data-dir", help="dataset root folder (default: the data module's)")
    p.add_argument("--download", action="store_true", help="download a missing dataset")
    p.add_argument("--epochs", type=int, help="passes over the train split (default: about 450 classifier / 400 "
                                              "autoencoder optimizer steps)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order (default: 0)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue --out from its last completed epoch")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be ≥ 1, got {args.epochs}")
    import torch

    from tcja_deploy.data.image_sets import load_image_set
    from tcja_deploy.generation.feature_nets import train_feature_net

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device!r}: not a device (cpu, cuda, cuda:N)") from None
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
    train_x, train_y = load_image_set(args.dataset, "train", data_dir, args.download)
    test_x, test_y = load_image_set(args.dataset, "test", data_dir, args.download)
    net = train_feature_net(args.kind, train_x, train_y, Path(args.out), args.epochs, args.seed, test_images=test_x,
                            test_labels=test_y, dataset=args.dataset, resume=args.resume, device=device,
                            progress=not args.no_progress)
    m = net.metrics
    score = (f"test accuracy {m['test_accuracy']:.2%}" if "test_accuracy" in m
             else f"test reconstruction MSE {m['test_recon_mse']:.4f} (images in [-1, 1])")
    print(f"{args.dataset} {args.kind}: {score} after {m['epochs']} epochs ({m['seconds']:.0f} s); run: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

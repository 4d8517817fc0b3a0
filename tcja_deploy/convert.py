"""Convert a trained run for a target: ``python -m tcja_deploy.convert --target loihi2 --run RUN --out DEPLOY``.

Writes the deploy directory (graph.json, segment_<k>.net, gate_<k>.npz, model.onnx, fidelity.json;
see :mod:`tcja_deploy.conversion.deploy`) and prints the fidelity table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcja_deploy.conversion.targets import TARGET_NAMES as TARGETS
from tcja_deploy.errors import OneLineParser, UserError, cli_main


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.convert", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="run directory (config.json + model.safetensors)")
    p.add_argument("--out", type=Path, required=True, help="deploy directory to write (replaced whole)")
    p.add_argument("--target", default="loihi2",
                   help=f"one of: {', '.join(TARGETS)} (default loihi2)")
    p.add_argument("--lava-samples", type=int, default=16,
                   help="test samples run on the Lava simulator (0: none; default 16)")
    p.add_argument("--lava-budget", type=float, default=600.0, metavar="SECONDS",
                   help="wall-time budget of the Lava simulation: it stops after this many seconds and checks the "
                        "samples completed by then, at least one (default 600)")
    p.add_argument("--gate", choices=("neurocore", "host"), default="neurocore",
                   help="loihi2: where the TCJA gates run: neurocore (standard Lava processes on neuro cores, "
                        "default) or host (our Python process, in lock-step with the chip)")
    p.add_argument("--device", default="cpu", help="torch device of the float model and the emulator (default cpu)")
    return p


def check_device(name: str) -> None:
    """A one-line UserError for a device torch does not know or this machine lacks."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: CUDA is not available on this machine")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.target not in TARGETS:
        raise UserError(f"--target {args.target!r}: unknown target; choose one of: {', '.join(TARGETS)}")
    check_device(args.device)
    from tcja_deploy.training.vae_run import is_vae_run

    if is_vae_run(args.run):
        raise UserError(f"--run {args.run}: a spiking-VAE run (image generation); convert takes classifier runs "
                        f"(the VAE's conversion for the chip does not exist yet)")
    from tcja_deploy.conversion import fidelity
    from tcja_deploy.conversion.deploy import convert
    from tcja_deploy.hardware.verify import lava_check

    fid = convert(args.run, args.out, args.target, args.lava_samples, args.device, lava_check=lava_check,
                  gate_placement=args.gate, lava_budget_s=args.lava_budget)
    print(fidelity.format_table(fid))
    print(f"wrote {args.out} in {fid['seconds']['total']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

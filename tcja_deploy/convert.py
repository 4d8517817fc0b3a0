"""Convert a trained run for a target: ``python -m tcja_deploy.convert --target loihi2 --run RUN --out DEPLOY``.

Writes the deploy directory (graph.json, segment_<k>.net, gate_<k>.npz, model.onnx, fidelity.json;
see :mod:`tcja_deploy.conversion.deploy`) and prints the fidelity table. A spiking-VAE run (``--preset vae_*``)
gets a VAE deploy directory instead (its decoder; :mod:`tcja_deploy.hardware.vae_convert`, loihi2 only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcja_deploy.conversion.deploy import DEFAULT_BUDGET_S
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
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                   help="wall time the whole convert aims at: the Lava check, run last, gets what the conversion and "
                        "the other checks leave (at least 30 s) and checks the samples, or the steps of sample 0, "
                        f"completed by then (default {DEFAULT_BUDGET_S:g})")
    p.add_argument("--lava-budget", type=float, default=None, metavar="SECONDS",
                   help="at most this many seconds for the Lava check (default: what --budget leaves; VAE runs: 600)")
    p.add_argument("--lava-mode", choices=("auto", "whole", "parts"), default="auto",
                   help="the Lava check: whole (the assembled network), parts (each segment and gate alone on the "
                        "emulator's records of its inputs; far faster for paper-size networks), auto (parts when the "
                        "whole run's estimate exceeds the Lava budget; default)")
    p.add_argument("--gate", choices=("neurocore", "host"), default="neurocore",
                   help="loihi2: where the TCJA gates run: neurocore (standard Lava processes on neuro cores, "
                        "default) or host (our Python process, in lock-step with the chip)")
    p.add_argument("--device", default="cpu", help="torch device of the float model and the emulator (default cpu)")
    p.add_argument("--feature-nets", type=Path, metavar="DIR",
                   help="VAE runs: folder of the feature nets for the FIDs, trained there on first use (default: "
                        "feature_nets next to the run, as generate uses)")
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


def convert_vae_run(args: argparse.Namespace) -> int:
    """A spiking-VAE run: its decoder for Loihi 2 (neuro-core gates), the VAE deploy directory."""
    if args.target != "loihi2":
        raise UserError(f"--run {args.run}: a spiking-VAE run converts for --target loihi2 only, not {args.target!r}")
    if args.gate != "neurocore":
        raise UserError(f"--run {args.run}: a spiking-VAE run's gates run on neuro cores only (--gate neurocore)")
    from tcja_deploy.hardware.vae_convert import convert_vae, format_table

    fid = convert_vae(args.run, args.out, args.lava_samples, 600.0 if args.lava_budget is None else args.lava_budget,
                      args.device, args.feature_nets)
    print(format_table(fid))
    print(f"wrote {args.out} in {fid['seconds']['total']:.1f} s")
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.target not in TARGETS:
        raise UserError(f"--target {args.target!r}: unknown target; choose one of: {', '.join(TARGETS)}")
    check_device(args.device)
    from tcja_deploy.training.vae_run import is_vae_run

    if is_vae_run(args.run):
        return convert_vae_run(args)
    from tcja_deploy.conversion import fidelity
    from tcja_deploy.conversion.deploy import convert
    from tcja_deploy.hardware.verify import lava_check

    fid = convert(args.run, args.out, args.target, args.lava_samples, args.device, lava_check=lava_check,
                  gate_placement=args.gate, lava_budget_s=args.lava_budget, budget_s=args.budget,
                  lava_mode=args.lava_mode)
    print(fidelity.format_table(fid))
    print(f"wrote {args.out} in {fid['seconds']['total']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

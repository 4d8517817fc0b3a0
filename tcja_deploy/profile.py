"""Profile a deployed network: ``python -m tcja_deploy.profile --deploy DIR --backend lava-sim --samples 32 --out DIR``.

Runs the backend (``emulator``: bit-exact, whole test set by default; ``lava-sim``: the Lava simulator,
32 samples by default; ``loihi2``: Loihi 2 via Intel's lava-loihi, measured power and time) on the
first test samples of the deploy directory's dataset, counts spikes, SynOps, neuron updates and gate
arithmetic per layer, estimates energy with named profiles, and writes ``profile.json`` and
``raster.npz`` into ``--out``. A VAE deploy directory (``convert`` of a ``vae_*`` run) is profiled per generated
image and per reconstruction (:mod:`tcja_deploy.hardware.vae_profile`; emulator or lava-sim, 8 latent trains per
workload by default on lava-sim). Ctrl-C keeps the samples done so far (``"partial": true``).
Bad input: one line ``error: ...`` on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcja_deploy.errors import OneLineParser, UserError, cli_main

from tcja_deploy.hardware.profiling import BACKENDS


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.profile", description=__doc__.splitlines()[0])
    p.add_argument("--deploy", required=True, help="deploy directory written by python -m tcja_deploy.convert")
    p.add_argument("--backend", choices=BACKENDS, default="emulator", help="what runs the network (default: emulator)")
    p.add_argument("--samples", type=int, help="first N test samples (default: all for emulator, 32 otherwise)")
    p.add_argument("--out", help="profile directory (default: profile/<deploy dir name>)")
    p.add_argument("--energy-profile", metavar="FILE",
                   help="TOML/JSON energy profile replacing the built-in one of its model (neuromorphic or cmos)")
    p.add_argument("--chunk", type=int, help="samples per backend call; profile.json is rewritten after each")
    p.add_argument("--data-dir", help="dataset root folder (default: the data module's; the embedded digits need none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tcja_deploy.hardware.profiling import run_profile
    from tcja_deploy.hardware.report_writer import summary_rows, text_table

    out = Path(args.out) if args.out else Path("profile") / Path(args.deploy).resolve().name
    from tcja_deploy.hardware.vae_profile import is_vae_deploy

    if is_vae_deploy(args.deploy):
        from tcja_deploy.hardware import vae_profile

        if args.data_dir:
            raise UserError("--data-dir: a VAE deploy directory carries its latent trains (latents.npz); none needed")
        top = vae_profile.run_vae_profile(args.deploy, args.backend, out, samples=args.samples,
                                          energy_profile=args.energy_profile, chunk_size=args.chunk,
                                          progress=not args.no_progress)
        print(text_table(("quantity", "value", "unit / note"), vae_profile.summary_rows(top)))
        print(f"profile: {out / 'profile.json'}  (report: python -m tcja_deploy.report --profile {out} "
              f"--out report/{out.name})")
        return 0
    doc = run_profile(args.deploy, args.backend, out, samples=args.samples, energy_profile=args.energy_profile,
                      chunk_size=args.chunk, progress=not args.no_progress, data_dir=args.data_dir)
    print(text_table(("quantity", "value", "unit / note"), summary_rows(doc)))
    print(f"profile: {out / 'profile.json'}  (report: python -m tcja_deploy.report --profile {out} --out report/{out.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

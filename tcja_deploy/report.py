"""Write the report of a profile: ``python -m tcja_deploy.report --profile profile/digits --out report/digits``.

Reads ``profile.json`` (and ``raster.npz``) from ``--profile`` and writes ``report.md``, ``tables.tex``
(booktabs), ``layers.csv``, a copy of ``profile.json`` and PNG plots into ``--out``; prints where the
report is and its summary table. A VAE profile gets the VAE report (energy per generated image and per
reconstruction, the fidelity figures, each workload's report; :mod:`tcja_deploy.hardware.vae_report`).
Bad input: one line ``error: ...`` on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcja_deploy.errors import OneLineParser, cli_main


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tcja_deploy.report", description=__doc__.splitlines()[0])
    p.add_argument("--profile", required=True, help="profile directory (or its profile.json)")
    p.add_argument("--out", help="report directory (default: report/<profile dir name>)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tcja_deploy.hardware.report_writer import placement_rows, summary_rows, text_table, write_report

    src = Path(args.profile)
    name = (src if src.is_dir() else src.parent).resolve().name
    out = Path(args.out) if args.out else Path("report") / name
    from tcja_deploy.hardware import vae_report

    if vae_report.is_vae_profile(src):
        doc = vae_report.write_vae_report(src, out)
        print(text_table(vae_report.ENERGY_HEADER, vae_report.energy_rows(doc)))
        print(f"report: {out / 'report.md'}  (tables.tex, summary.csv, profile.json, energy_per_image.png, "
              f"generation/, reconstruction/, {vae_report.ENCODER_DIR}/)")
        return 0
    doc = write_report(src, out)
    print(text_table(("quantity", "value", "unit / note"), summary_rows(doc)))
    placement = placement_rows(doc)
    if placement:
        print("\nTCJA gate placement (both counted on this run; energies: Loihi 2 estimates per inference):")
        print(text_table(*placement))
    print(f"report: {out / 'report.md'}  (tables.tex, layers.csv, profile.json, "
          "firing_rate.png, synops.png, energy_breakdown.png, raster.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

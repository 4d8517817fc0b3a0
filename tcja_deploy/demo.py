"""The whole chain on the embedded default (scikit-learn digits as DVS events):

train → convert (Loihi 2 fixed point, NetX + ONNX, fidelity) → profile on the Lava simulator → report.

Usage: ``python -m tcja_deploy.demo [--workdir DIR] [--samples N]``. Each stage is the same function
its CLI runs; a finished stage's output is reused when the demo is run again (delete the folder to
start over).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tcja_deploy.errors import cli_main


def _stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcja_deploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("demo_out"), help="folder for runs/deploy/profile/report")
    parser.add_argument("--samples", type=int, default=16, help="test samples run on the Lava simulator")
    args = parser.parse_args(argv)
    work: Path = args.workdir
    run_dir, deploy_dir = work / "runs" / "digits", work / "deploy" / "digits"
    profile_dir, report_dir = work / "profile" / "digits", work / "report" / "digits"
    start = time.perf_counter()

    from tcja_deploy import convert, profile, report, train

    _stage("1/4 train (preset digits, event encoding)")
    if (run_dir / "metrics.json").is_file():
        print(f"reusing {run_dir}")
    else:
        rc = train.main(["--out", str(run_dir)])
        if rc:
            return rc

    _stage("2/4 convert (target loihi2)")
    rc = convert.main(["--target", "loihi2", "--run", str(run_dir), "--out", str(deploy_dir),
                       "--lava-samples", str(args.samples)])
    if rc:
        return rc

    _stage("3/4 profile (Lava simulator)")
    rc = profile.main(["--deploy", str(deploy_dir), "--backend", "lava-sim", "--samples", str(args.samples),
                       "--out", str(profile_dir)])
    if rc:
        return rc

    _stage("4/4 report")
    rc = report.main(["--profile", str(profile_dir), "--out", str(report_dir)])
    if rc:
        return rc
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; report: {report_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

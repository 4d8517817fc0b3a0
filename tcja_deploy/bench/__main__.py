"""``python -m tcja_deploy.bench <name> [options]``: run one benchmark, print its table, write its JSON."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tcja_deploy.bench import common
from tcja_deploy.bench.registry import BENCHMARKS, load_benchmark


def parse_args(argv: list[str] | None = None) -> tuple[str, common.BenchOptions]:
    p = argparse.ArgumentParser(prog="python -m tcja_deploy.bench", description=__doc__)
    p.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    p.add_argument("--size", choices=("toy", "cpu", "full"), default="cpu",
                   help="problem size: cpu (reduced, default), full (the issue's sizes), toy (seconds)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--amp", action="store_true", help="autocast: bfloat16 on CPU, float16 on CUDA")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions per implementation (default 5)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory measurement")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out-dir", type=Path, default=common.DEFAULT_OUT_DIR, help="where the JSON goes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impls", default=None,
                   help="comma-separated implementations to compare (benchmark-specific; see bench/NOTES.md)")
    p.add_argument("--preset", action="append", default=None,
                   help="convert, pipeline: preset(s) to time (repeatable)")
    p.add_argument("--nproc", type=int, default=None,
                   help="train-step: also time the step data-parallel on N processes (torchrun, DDP) vs 1")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error("--repeats must be ≥ 1")
    extra = {}
    if a.impls:
        extra["impls"] = [s.strip() for s in a.impls.split(",") if s.strip()]
    if a.preset:
        extra["presets"] = a.preset
    if a.nproc:
        extra["nproc"] = a.nproc
    opts = common.BenchOptions(size=a.size, device=a.device, compile=a.compile, amp=a.amp, repeats=a.repeats,
                               memory=a.memory, threads=a.threads, out_dir=a.out_dir, seed=a.seed, extra=extra)
    return a.name, opts


def run_benchmark(name: str, opts: common.BenchOptions) -> tuple[dict, Path]:
    """Run one benchmark; returns its result dict and the JSON path. Raises BenchUnavailable if it can't run."""
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise common.BenchUnavailable("--device cuda: no CUDA device is available here")
    module = load_benchmark(name)
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = module.run(opts)
    result.setdefault("load_average_start", load_start)
    return result, common.write_results(name, result, opts)


def main(argv: list[str] | None = None) -> int:
    name, opts = parse_args(argv)
    try:
        result, path = run_benchmark(name, opts)
    except common.BenchUnavailable as e:
        print(f"{name}: not run: {e}", file=sys.stderr)
        return 2
    print(f"{name} — size {opts.size}, device {opts.device}" + (", compiled" if opts.compile else "")
          + (", amp" if opts.amp else ""))
    if result.get("notes"):
        for line in result["notes"]:
            print(f"  {line}")
    print(common.format_table(result["rows"]))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Child process of :func:`tcja_deploy.bench.common.probe_memories`: peak RSS growth of one step.

Usage (internal): ``python -m tcja_deploy.bench._probe '<json spec>'``; prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch

from tcja_deploy.bench import common
from tcja_deploy.bench.registry import load_benchmark


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    o = dict(spec["options"])
    o["out_dir"] = Path(o["out_dir"])
    opts = common.BenchOptions(**o)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    module = load_benchmark(spec["bench"])
    step = module.make_step(spec["impl"], opts, spec["case"])
    gc.collect()
    before, method = common.start_peak_rss()
    for _ in range(2):
        step()
    after = common.peak_rss_bytes()
    print(json.dumps({"peak_bytes": after - before, "rss_after_setup_bytes": before, "method": method}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

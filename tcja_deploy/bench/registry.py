"""Benchmark names → modules (imported on demand, so a missing dependency only hits its benchmark)."""

from __future__ import annotations

import importlib
from types import ModuleType

BENCHMARKS: dict[str, str] = {
    "train-step": "tcja_deploy.bench.train_step",
    "lif-layer": "tcja_deploy.bench.lif_layer",
    "emulate": "tcja_deploy.bench.emulate",
    "convert": "tcja_deploy.bench.convert",
    "profile": "tcja_deploy.bench.profile_overhead",
    "pipeline": "tcja_deploy.bench.pipeline",
}


def load_benchmark(name: str) -> ModuleType:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name])

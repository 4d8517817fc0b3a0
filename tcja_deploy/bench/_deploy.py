"""Randomly initialized runs and their conversion, for the convert / emulate / profile benchmarks.

No training and no dataset: a preset's network is built with seeded random weights, made active
(:func:`activate`: BatchNorm statistics and Linear scales from random input spikes, so that the
neurons spike at a few per cent as a trained network does, instead of not at all), saved as a run
directory, and converted for ``loihi2`` with the
conversion stage's own functions — the part of ``tcja_deploy.conversion.deploy.convert`` before
its fidelity checks (load run, build graph, passes with calibration, NetX/gate/ONNX export,
graph.json). Calibration uses random spikes (density 0.2, as ``convert``'s fallback when the
dataset is missing) with a stated sample count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from tcja_deploy import outputs

SPIKE_DENSITY = 0.2


def random_spikes(T: int, n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Binary frames [T, n, *shape] with ``SPIKE_DENSITY`` ones."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, n, *shape), generator=g) < SPIKE_DENSITY).float()


def activate(model: Any, x: torch.Tensor) -> None:
    """Data-dependent scaling of a random model, layer by layer on input spikes x [T, N, C, H, W].

    Every BatchNorm takes the statistics of its input on x (so its output is standardized), and
    every Linear not followed by a BatchNorm is scaled so its output on x has standard deviation 1
    (LSUV-style). The model is left in eval mode.
    """
    from tcja_deploy.models import specs

    layers = list(model.config.layers)
    model.eval()
    h = x
    with torch.no_grad():
        for i, (spec, module) in enumerate(zip(layers, model.layers)):
            if isinstance(spec, specs.BatchNorm):
                bn = module.module
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: exactly this batch's statistics
                bn.train()
                module(h)
                bn.eval()
                bn.momentum = 0.1
            elif isinstance(spec, specs.Linear) and not (i + 1 < len(layers) and isinstance(layers[i + 1], specs.BatchNorm)):
                std = float(module(h).std())
                if std > 0:
                    module.module.weight.mul_(1.0 / std)
                    if module.module.bias is not None:
                        module.module.bias.mul_(1.0 / std)
            h = module(h)


def make_random_run(preset: str, run_dir: Path, seed: int = 0, activation_samples: int = 2) -> Any:
    """Save a seeded random, :func:`activate`-d model of ``preset`` as a run directory; returns its ModelConfig."""
    from tcja_deploy.models.network import TCJASNN
    from tcja_deploy.models.presets import get_preset
    from tcja_deploy.training import checkpoint

    p = get_preset(preset)
    torch.manual_seed(seed)
    model = TCJASNN(p.model).eval()
    activate(model, random_spikes(p.model.T, activation_samples, tuple(p.model.input_shape), seed + 3))
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save_model(run_dir, model, {"preset": preset, "dataset": p.dataset, "note": "random weights (bench)"})
    return p.model


def calibration_bytes(config: Any, samples: int) -> int:
    """Rough memory of the calibration run: every layer's float64 output over T × samples, kept at once."""
    from tcja_deploy.models.network import infer_shapes

    per_step = 0
    for shape in [tuple(config.input_shape)] + infer_shapes(config):
        n = 1
        for d in shape:
            n *= int(d)
        per_step += n
    return int(per_step * config.T * samples * 8)


def mem_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def convert_without_fidelity(run_dir: Path, out_dir: Path, calibration_x: torch.Tensor,
                             target_name: str = "loihi2", gate_placement: str = "neurocore") -> dict[str, float]:
    """Convert ``run_dir`` into ``out_dir`` as ``conversion.deploy.convert`` does, minus fidelity.

    Returns seconds per phase: ``load``, ``passes`` (with calibration), ``netx_export`` (with the
    read-back check of each file), ``onnx_export``, ``graph_json`` and ``total``.
    """
    from tcja_deploy.conversion.build import build_graph, load_run
    from tcja_deploy.conversion.deploy import write_artifacts
    from tcja_deploy.conversion.targets import get_target, run_passes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = t = time.perf_counter()
    target = get_target(target_name)
    model, _train = load_run(run_dir)
    seconds["load"] = time.perf_counter() - t

    t = time.perf_counter()
    float_graph = build_graph(model)
    graph = run_passes(target, float_graph, calibration_x,
                       **({"gate_placement": gate_placement} if target_name == "loihi2" else {}))
    onnx_graph = run_passes(get_target("onnx"), float_graph)
    seconds["passes"] = time.perf_counter() - t

    write_artifacts(graph, onnx_graph, target, Path(run_dir), out_dir, calibration_x[:, :2], seconds)
    outputs.write_marker(out_dir, "deploy")  # complete as a deploy directory (the benchmark measures no fidelity)
    seconds["total"] = time.perf_counter() - t0
    return seconds


def random_deploy(preset: str, workdir: Path, calibration_samples: int, seed: int = 0,
                  gate_placement: str = "neurocore") -> tuple[Path, Any]:
    """A converted (loihi2) deploy directory of a random ``preset`` model under ``workdir``; (dir, config)."""
    run = workdir / "run"
    config = make_random_run(preset, run, seed) if not (run / "config.json").exists() else None
    if config is None:
        from tcja_deploy.training.checkpoint import load_run_config

        config = load_run_config(run)[0]
    x_cal = random_spikes(config.T, calibration_samples, tuple(config.input_shape), seed + 11)
    out = workdir / f"deploy-{gate_placement}"
    convert_without_fidelity(run, out, x_cal, gate_placement=gate_placement)
    return out, config

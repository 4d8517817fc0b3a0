"""The conversion stage: a run directory → a deploy directory, with its fidelity measured.

Deploy directory (written in a temporary folder next to ``--out`` and renamed whole when complete):

- ``graph.json``: the converted graph (schema in :mod:`tcja_deploy.conversion.graph`: ``format``,
  ``nodes``, ``edges``, ``meta``) plus these keys::

      "target":        "loihi2" | "lava-float" | "onnx"
      "source_run":    the run directory converted
      "meta":          {"T", "num_classes", "preset", "input_shape", "passes": [pass names in order],
                        "quantization": {layer: {"scale": β, "limited_by": "weights" | "threshold" | "bias"
                                          | "state", "weight_levels_used": max |w_int|}},
                        "calibration": {"samples", "input_max", "input_integer", "u_max": {neuron: max |u|}}}
      "segments":      [{"index", "file": "segment_<k>.net" | null (float), "input_from": node name,
                         "input_shape": [C, H, W] | [F], "input_payload_bits": 0 = binary | bits,
                         "nodes": [graph nodes in it], "layers": [its synapse nodes = NetX layers],
                         "output_shape"}]
      "gates":         [{"index", "node", "file": "gate_<k>.npz", "squeeze_from": node whose spikes are
                         squeezed, "s_shape": [C, H, W] squeezed, "x_shape": [C, H', W'] gated,
                         "mode": "window" | "streaming", "payload_bits", "placement"}]
      "latency_steps": synaptic hops + each gate's latency (null for onnx)
      "readout":       (only when the network ends in a non-spiking linear) {"node": readout node, "host": true,
                        "input_from": the layer whose recorded output it reads, "nodes": host-side nodes (flattens,
                        readout, vote)}: run on the host in float64, after the chip; no NetX segment holds it
      "lava":          {"select_tag", "reset_interval": T, "input_pad_steps" (0), "delay_lines" ({}: older
                        directories aligned gate windows with identity delay lines), "gate_phases": {gate: phase},
                        "lags": {node: Lava step at which sample 0, step 0 leaves it}, "notes"}
      "files":         [every file of the directory]

  Segment k runs as ``netx.hdf5.Network(segment_<k>.net, input_message_bits=input_payload_bits)``;
  gate k as ``TCJAGate(QuantizedGate.from_arrays(np.load(gate_<k>.npz)), ...)``; the chain order is
  segment 0 → gate 0 → segment 1 → … (:mod:`tcja_deploy.hardware.lava_sim` wires it);
- ``segment_<k>.net``: NetX HDF5 per trunk segment (target loihi2);
- ``gate_<k>.npz``: the gate's fields (``gate_math.QuantizedGate.to_arrays()``; loihi2 and lava-float);
- ``model.onnx``: the float network over a window, input ``spikes`` [T, N, C, H, W] → ``scores`` [N, K];
- ``fidelity.json``: :mod:`tcja_deploy.conversion.fidelity`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from tcja_deploy import atomic, outputs
from tcja_deploy.conversion import fidelity as F
from tcja_deploy.conversion import gate_math, netx_export, onnx_export
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.build import build_graph, load_run
from tcja_deploy.conversion.execute import auto_batch_size, bytes_per_sample, scores_of_graph
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.conversion.layers import latency_steps, plan_timing
from tcja_deploy.conversion.targets import Target, get_target, run_passes
from tcja_deploy.errors import UserError

#: The Lava check of a conversion, supplied by the hardware stage (:func:`tcja_deploy.hardware.verify.lava_check`):
#: ``(deploy_dir, graph, x [T, n, C, H, W], labels [n], float_scores [n, K], select_tag, log) → fidelity["lava"]``.
LavaCheck = Callable[..., Optional[dict]]

CALIBRATION_SAMPLES = 256
RANDOM_SAMPLES = 64


# ------------------------------------------------------------------------------------------- data
def dataset_name(model_config, train: dict) -> Optional[str]:
    """The dataset a run was trained on: config.json ``train.dataset`` if present, else from its preset and
    ``train.encoding``; None when neither is known."""
    if train.get("dataset"):
        return str(train["dataset"])
    from tcja_deploy.models.presets import PRESET_NAMES, get_preset
    from tcja_deploy.training.config import dataset_name as train_dataset_name

    preset = train.get("preset") or model_config.preset
    if preset not in PRESET_NAMES:
        return None
    return train_dataset_name(get_preset(preset, model_config.T), train.get("encoding"))


def _stack(dataset, max_samples: Optional[int]) -> tuple[torch.Tensor, np.ndarray]:
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    xs, ys = [], []
    for i in range(n):
        frames, label = dataset[i]
        xs.append(torch.as_tensor(frames, dtype=torch.float32))
        ys.append(int(label))
    return torch.stack(xs, 1), np.asarray(ys, dtype=np.int64)


def load_data(model_config, train: dict, log: Callable[[str], None] = print):
    """(test x [T, N, C, H, W], test labels, calibration x, description). Falls back to random spikes
    (labels −1) when the run's dataset cannot be loaded here."""
    name = dataset_name(model_config, train)
    T, shape = model_config.T, tuple(model_config.input_shape)
    if name is not None:
        try:
            from tcja_deploy.data.registry import get_dataset

            pair = get_dataset(name, T, data_dir=train.get("data_dir"))
            if tuple(pair.input_shape) != shape:
                raise UserError(f"dataset {name!r} has frames {pair.input_shape}, the model expects {shape}")
            x_test, y_test = _stack(pair.test, None)
            x_cal, _ = _stack(pair.train, CALIBRATION_SAMPLES)
            return x_test, y_test, x_cal, {"dataset": name, "source": "dataset", "test_samples": int(len(y_test))}
        except (UserError, ImportError, OSError) as e:
            log(f"warning: cannot load dataset {name!r} ({e}); measuring fidelity on random spikes")
    else:
        log(f"warning: the run names no dataset this version knows (preset {model_config.preset!r}); "
            f"measuring fidelity on random spikes (fidelity.json data.source = 'random')")
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((T, RANDOM_SAMPLES) + shape, generator=gen) < 0.2).float()
    return x, np.full(RANDOM_SAMPLES, -1), x, {"dataset": name or "unknown", "source": "random",
                                                 "test_samples": RANDOM_SAMPLES}


# ---------------------------------------------------------------------------------------- writing
def deploy_document(graph: g.Graph, target: Target, run_dir: Path, segs: list[dict], gate_list: list[dict],
                    latency: Optional[int], files: list[str]) -> dict:
    doc = graph.to_dict()
    doc["target"] = target.name
    doc["source_run"] = str(run_dir)
    doc["segments"] = segs
    doc["gates"] = gate_list
    doc["latency_steps"] = latency
    readouts = [n for n, node in graph.items() if isinstance(node, g.Readout)]
    if readouts:
        host = g.host_nodes(graph)
        names = graph.names
        doc["readout"] = {"node": readouts[0], "host": True, "input_from": names[names.index(host[0]) - 1],
                          "nodes": host}
    if target.lava_tag and segs:
        timing = plan_timing(graph, segs, gate_list)
        doc["lava"] = {"select_tag": target.lava_tag, "reset_interval": int(graph.meta["T"]),
                       "input_pad_steps": timing["pad"],
                       "delay_lines": {str(k): v for k, v in timing["delays"].items()},
                       "gate_phases": timing["phases"],
                       "lags": timing["lags"],
                       "notes": "lags: Lava step (1-based) at which sample 0, step 0 leaves each layer (the source "
                                "sends it at step 1); NetX reset_offset of segment k = (lag of its first layer − 1) "
                                "mod T; gate_phases: each gate's windows start at the Lava steps ≡ 1 + phase (mod T)"}
    doc["files"] = files
    return doc


def write_gates(out: Path, graph: g.Graph, gate_list: list[dict]) -> None:
    for gate in gate_list:
        node = graph.nodes[gate["node"]]
        if isinstance(node, g.QGate):
            arrays = node.params
        else:  # float gate (lava-float): the float weights, quantized with defaults for completeness
            if node.gate_function != "sigmoid":
                raise ConversionError(f"node {gate['node']!r} was trained with the {node.gate_function!r} gate "
                                      f"function; the lava-float gate process computes the sigmoid: use --target "
                                      f"loihi2 (its neuro-core gate computes the pwl sigmoid)")
            c, h, w = gate["s_shape"]
            params = gate_math.GateParams(T=int(graph.meta["T"]), C=c, H=h, W=w, w_tla=node.w_tla, w_cla=node.w_cla,
                                          mode=node.mode)
            arrays = gate_math.quantize_gate(params).to_arrays()
        np.savez(out / gate["file"], **{k: np.asarray(v) for k, v in arrays.items()})


def write_artifacts(graph: g.Graph, onnx_graph: g.Graph, target: Target, run_dir: Path, out: Path,
                    onnx_input: torch.Tensor, seconds: dict[str, float],
                    extra_files: tuple[str, ...] = ()) -> tuple[list[dict], list[dict], Optional[int], list[str]]:
    """Write a converted graph's deploy files into ``out``.

    NetX segments (each read back by NetX), gate parameters (Lava targets only), ``model.onnx`` traced on
    ``onnx_input`` [T, N, C, H, W] and ``graph.json``, whose file list also names ``extra_files``.
    Phase times (s) go into ``seconds``. Returns (segments, gates, latency in steps, files).
    """
    files: list[str] = []
    segs: list[dict] = []
    gate_list: list[dict] = []
    latency: Optional[int] = None
    t = time.perf_counter()
    if target.lava_tag:
        segs, gate_list = netx_export.segments(graph), netx_export.gates(graph)
        latency = latency_steps(graph)
        for seg in segs:
            if seg["file"]:
                netx_export.export_segment(graph, seg, out / seg["file"])
                netx_export.check_segment_file(graph, seg, out / seg["file"])
                files.append(seg["file"])
        write_gates(out, graph, gate_list)
        files += [gate["file"] for gate in gate_list]
        seconds["netx_export"] = time.perf_counter() - t
    t = time.perf_counter()
    onnx_export.export_onnx(onnx_graph, out / "model.onnx", onnx_input)
    files.append("model.onnx")
    seconds["onnx_export"] = time.perf_counter() - t
    t = time.perf_counter()
    files += ["graph.json", *extra_files]
    doc = deploy_document(graph, target, run_dir, segs, gate_list, latency, files)
    (out / "graph.json").write_text(json.dumps(doc))
    seconds["graph_json"] = time.perf_counter() - t
    return segs, gate_list, latency, files


# ---------------------------------------------------------------------------------------- convert
#: The wall time a convert aims at by default (``--budget``): issue 16's 10 minutes for a paper-size network.
DEFAULT_BUDGET_S = 600.0
#: Seconds of ``--budget`` kept back for what follows the Lava check (fidelity.json, the marker, the rename).
BUDGET_RESERVE_S = 5.0
#: The Lava check runs for at least this long even when the other passes have used up ``--budget``.
MIN_LAVA_BUDGET_S = 30.0


def lava_budget(budget_s: Optional[float], elapsed_s: float, lava_budget_s: Optional[float]) -> tuple[Optional[float], str]:
    """(seconds, why) the Lava check may take: what the convert's ``budget_s`` leaves after ``elapsed_s`` (less
    :data:`BUDGET_RESERVE_S`, at least :data:`MIN_LAVA_BUDGET_S`), and never more than ``lava_budget_s``."""
    if budget_s is None:
        return lava_budget_s, "no --budget" if lava_budget_s is None else f"--lava-budget {lava_budget_s:g} s"
    left = max(MIN_LAVA_BUDGET_S, budget_s - elapsed_s - BUDGET_RESERVE_S)
    if lava_budget_s is not None and lava_budget_s < left:
        return float(lava_budget_s), f"--lava-budget {lava_budget_s:g} s"
    return float(left), (f"what the {budget_s:g} s --budget left after {elapsed_s:.0f} s of conversion and checks"
                         + ("" if left > MIN_LAVA_BUDGET_S else f" (at least {MIN_LAVA_BUDGET_S:g} s)"))


def convert(run_dir: Path, out_dir: Path, target_name: str = "loihi2", lava_samples: int = 16,
            device: str = "cpu", log: Callable[[str], None] = print,
            gate_payload_bits: Optional[int] = None, lava_check: Optional[LavaCheck] = None,
            gate_placement: str = "neurocore", lava_budget_s: Optional[float] = None,
            budget_s: Optional[float] = DEFAULT_BUDGET_S, lava_mode: str = "auto") -> dict:
    """Convert ``run_dir`` for ``target_name`` into ``out_dir`` (atomically); returns the fidelity dict.

    ``lava_check`` runs the first ``lava_samples`` test samples on Lava and compares them with the emulator
    (the hardware stage's :func:`tcja_deploy.hardware.verify.lava_check`, in ``lava_mode``); None: no Lava check.
    ``budget_s`` is the wall time the whole convert aims at: the Lava check, run last, gets what the other steps
    leave (:func:`lava_budget`), never more than ``lava_budget_s``; the samples or steps completed by then are
    checked.
    """
    if lava_samples < 0:
        raise UserError(f"--lava-samples {lava_samples}: must be ≥ 0")
    for flag, v in (("--lava-budget", lava_budget_s), ("--budget", budget_s)):
        if v is not None and not (0 < v < float("inf")):
            raise UserError(f"{flag} {v}: must be a positive number of seconds")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    outputs.check_out_dir(out_dir, "deploy", inputs=[run_dir])
    outputs.clean_stale_temporaries(out_dir)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    model, train = load_run(run_dir)
    x_test, y_test, x_cal, data_info = load_data(model.config, train, log)
    seconds["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    options: dict = {"gate_payload_bits": gate_payload_bits} if gate_payload_bits else {}
    if target_name == "loihi2":
        options["gate_placement"] = gate_placement
    try:
        float_graph = build_graph(model)
        target = get_target(target_name, x_cal, **options)
        graph = run_passes(target, float_graph)
    except ConversionError as e:
        raise UserError(f"{run_dir}: {e}") from None
    onnx_graph = run_passes(get_target("onnx"), float_graph)
    seconds["passes"] = time.perf_counter() - t

    fid: dict = {"data": data_info, "target": target.name, "T": int(model.config.T),
                 "gate_placement": gate_placement if target_name == "loihi2" else None}
    with atomic.atomic_dir(out_dir) as tmp:
        try:
            _, _, latency, _ = write_artifacts(graph, onnx_graph, target, run_dir, tmp, x_test[:, :2], seconds,
                                               extra_files=("fidelity.json",))
        except ConversionError as e:
            raise UserError(f"{run_dir}: {e}") from None
        fid["latency_steps"] = latency

        # ---- fidelity
        t = time.perf_counter()
        batch = auto_batch_size(float_graph)  # float passes in batches that fit memory (1 at dvs128 size)
        float_scores = F.scores_of(model, x_test, batch_size=batch, device=device)
        fid["float"] = {"accuracy": F.accuracy(float_scores, y_test), "samples": int(len(y_test))}
        seconds["float_model"] = time.perf_counter() - t

        fid["emulator"] = None
        if target.lava_tag:
            t = time.perf_counter()
            acc = F.accuracy(scores_of_graph(graph, x_test, device=device), y_test)
            fid["emulator"] = {"accuracy": acc, "samples": int(len(y_test)),
                               "accuracy_drop_pp": 100 * (fid["float"]["accuracy"] - acc),
                               "quantized": target.quantized}
            seconds["emulator"] = time.perf_counter() - t

        t = time.perf_counter()
        n_onnx, onnx_reason = onnx_check_samples(float_graph, x_test.shape[1])
        onnx = onnx_export.check_onnx_against(tmp / "model.onnx", model, float_scores[:n_onnx], x_test[:, :n_onnx],
                                              batch_size=batch)
        onnx["module_vs_torch"] = onnx_export.check_module(onnx_graph, model, x_test[:, :n_onnx], batch_size=batch)
        onnx["samples_reason"] = onnx_reason
        fid["onnx"] = onnx
        seconds["onnx_check"] = time.perf_counter() - t

        fid["lava"] = None
        n = min(lava_samples, x_test.shape[1])
        if target.lava_tag and n > 0 and lava_check is not None:  # last: it gets what the budget leaves
            t = time.perf_counter()
            lava_s, why = lava_budget(budget_s, t - t0, lava_budget_s)
            fid["budget"] = {"total_s": budget_s, "lava_s": lava_s, "lava_reason": why}
            fid["lava"] = lava_check(tmp, graph, x_test[:, :n], y_test[:n], float_scores[:n],
                                     select_tag=target.lava_tag, log=log, budget_s=lava_s, mode=lava_mode)
            if fid["lava"] is not None and "error" not in fid["lava"]:
                seconds["lava"] = time.perf_counter() - t
        fid["targets_met"] = F.targets_met(fid)
        seconds["total"] = time.perf_counter() - t0
        fid["seconds"] = seconds
        fid = json_safe(fid)
        (tmp / "fidelity.json").write_text(json.dumps(fid, indent=2, allow_nan=False) + "\n")
        outputs.write_marker(tmp, "deploy")  # last: readers take only a complete deploy directory
    return fid


#: ONNX and module checks of a network whose float pass takes more than ONNX_FULL_CHECK_BYTES a sample run on the
#: first ONNX_CHECK_SAMPLES test samples: their question (does the exported file compute the model?) does not
#: need the whole test set, and at dvs128_gesture's size each sample costs three more float passes.
ONNX_FULL_CHECK_BYTES = 64 << 20
ONNX_CHECK_SAMPLES = 16


def onnx_check_samples(float_graph, n_test: int) -> tuple[int, str]:
    """(samples, reason): how many test samples the ONNX and module checks run on."""
    per = bytes_per_sample(float_graph)
    if per <= ONNX_FULL_CHECK_BYTES or n_test <= ONNX_CHECK_SAMPLES:
        return n_test, "the whole test set"
    return ONNX_CHECK_SAMPLES, (f"the first {ONNX_CHECK_SAMPLES} of {n_test} test samples: the float pass takes "
                                f"{per / 2**20:.0f} MiB a sample (> {ONNX_FULL_CHECK_BYTES >> 20} MiB)")


def json_safe(v):
    """Non-finite floats → None, so a fidelity.json is strict JSON: NaN (an accuracy without labels), an infinite
    PSNR (identical images) or an undefined ratio."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return v

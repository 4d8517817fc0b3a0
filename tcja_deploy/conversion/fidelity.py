"""Fidelity of a conversion, measured every time (``fidelity.json``, printed as a table by the CLI).

- accuracy of the float (Norse) model and of the emulator, on the whole test set;
- accuracy of the Lava simulation on the first ``--lava-samples`` test samples, and per-layer spike
  agreement between emulator and Lava on those samples (fraction of equal [T, N, neuron] entries;
  graded gate outputs compare payload codes) — measured by the hardware stage
  (:mod:`tcja_deploy.hardware.verify`), which the convert CLI hands to :func:`conversion.deploy.convert`;
- ONNX vs torch: max |Δscore| and whether predictions are identical, like for like: onnxruntime's
  result does not depend on the batch while torch's float32 convs round differently per batch size,
  so samples where the two differ by a spike are re-run in torch one at a time
  (:func:`onnx_export.check_onnx_against`); plus the exported module vs the trained model before ONNX;
- latency in time steps.

``fidelity.json`` schema::

    {"data": {"dataset": str, "test_samples": int, "source": "dataset" | "random"},
     "target": str, "T": int, "latency_steps": int,
     "float": {"accuracy": float, "samples": int},
     "emulator": {"accuracy": float, "samples": int, "accuracy_drop_pp": float} | null,
     "lava": {"accuracy": float, "samples": int, "float_accuracy_same_samples": float,
              "emulator_accuracy_same_samples": float, "steps": int, "seconds": float,
              "layers": {name: {"agreement": float, "identical": bool, "spikes_emulator": int,
                                "spikes_lava": int}},
              "all_layers_identical": bool} | {"error": str, ...} | null,
     "onnx": {"max_abs_diff": float, "predictions_identical": bool, "samples": int, "samples_differing": int,
              "rerun_one_at_a_time": int, "torch_batch_effect": {...same keys} | null,
              "module_vs_torch": {...same keys}, "samples_reason": str} | null,
     "targets_met": {name: bool}, "seconds": {stage: float}}
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tcja_deploy.conversion.execute import predictions

#: Fidelity targets on the digits default (docs/DESIGN.md §5).
MAX_ACCURACY_DROP_PP = 1.0
MAX_ONNX_DIFF = 1e-4


def scores_of(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """The trained model's scores [N, K] on x [T, N, C, H, W] (eval mode, no gradients), computed on ``device``."""
    model.eval().to(device)
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[1], batch_size):
            out.append(model(x[:, i:i + batch_size].to(device=device, dtype=torch.float32)).cpu().numpy())
    model.cpu()
    return np.concatenate(out, 0)


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0 or np.all(np.asarray(labels) < 0):
        return float("nan")
    return float(np.mean(predictions(scores) == np.asarray(labels)))


#: Issue 10's goal for the digits default with the gate on neuro cores.
NEUROCORE_MAX_DROP_PP = 0.5


def targets_met(fid: dict) -> dict:
    """The fidelity targets, each True / False; targets that could not be measured (no labels) are left out."""
    met = {}
    if fid.get("emulator"):
        drop = fid["emulator"].get("accuracy_drop_pp")
        if drop is not None and not math.isnan(drop):
            met["accuracy_drop_le_1pp"] = drop <= MAX_ACCURACY_DROP_PP
        if drop is not None and not math.isnan(drop) and fid.get("gate_placement") == "neurocore":
            met["neurocore_gate_drop_le_0.5pp"] = drop <= NEUROCORE_MAX_DROP_PP
    if fid.get("lava"):
        met["lava_spikes_100pct_every_layer"] = bool(fid["lava"]["all_layers_identical"])
    if fid.get("onnx"):
        met["onnx_max_diff_le_1e-4"] = fid["onnx"]["max_abs_diff"] <= MAX_ONNX_DIFF
        met["onnx_predictions_identical"] = bool(fid["onnx"]["predictions_identical"])
    return met


def _pct(v) -> str:
    return "   n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:6.2f} %"


def format_table(fid: dict) -> str:
    """The fidelity as a plain-text table."""
    placement = f", gate on {fid['gate_placement']}" if fid.get("gate_placement") else ""
    rows = [f"fidelity ({fid['target']}{placement}, data: {fid['data']['source']} {fid['data']['dataset']}, "
            f"T = {fid['T']}, latency {fid['latency_steps']} steps)"]
    flt = fid["float"]
    rows.append(f"  {'float (Norse) accuracy':34s} {_pct(flt['accuracy'])}   ({flt['samples']} samples)")
    if fid.get("emulator"):
        e = fid["emulator"]
        drop = e["accuracy_drop_pp"]
        drop = "" if drop is None or math.isnan(drop) else f", drop {drop:+.2f} pp"
        rows.append(f"  {'emulator accuracy':34s} {_pct(e['accuracy'])}   ({e['samples']} samples{drop})")
    if fid.get("lava") and "error" in fid["lava"]:
        rows.append(f"  {'Lava simulation':34s} FAILED: {fid['lava']['error']}")
    elif fid.get("lava"):
        lv = fid["lava"]
        if lv.get("samples_reason"):
            rows.append(f"  {'Lava samples checked':34s} {lv['samples']:>6d}     ({lv['samples_reason']}; "
                        f"estimated {lv.get('estimated_s', 0):,.0f} s before the run)")
        rows.append(f"  {'Lava simulation accuracy':34s} {_pct(lv['accuracy'])}   ({lv['samples']} samples; "
                    f"emulator on them {_pct(lv['emulator_accuracy_same_samples']).strip()}, "
                    f"float {_pct(lv['float_accuracy_same_samples']).strip()}; {lv['steps']} steps, "
                    f"{lv['seconds']:.1f} s)")
        if fid.get("budget"):
            rows.append(f"  {'Lava budget':34s} {fid['budget']['lava_s']:>6.0f} s   ({fid['budget']['lava_reason']})")
        for part in lv.get("parts") or []:
            rows.append(f"    {part['part']:16s} {part['samples']} sample(s), {part['steps']} of {part['steps_planned']} "
                        f"steps, {part['seconds']:.1f} s ({part['processes']} processes"
                        + ("; stopped by the budget)" if part["stopped_by_budget"] else ")"))
        rows.append("  spike agreement emulator vs Lava:")
        for name, r in lv["layers"].items():
            verdict = "NOT CHECKED" if r.get("not_checked") else "identical" if r["identical"] else "DIFFERS"
            scope = f", {r['steps_checked']} steps of sample 0" if "steps_checked" in r else ""
            rows.append(f"    {name:16s} {_pct(r['agreement'])}  {verdict}"
                        f"  ({r.get('spikes_emulator', 0)} / {r.get('spikes_lava', 0)} events{scope})")
        for gate, stages in (lv.get("gate_stages") or {}).items():
            rows.append(f"  gate stages on neuro cores ({gate}), Lava vs emulator, every step:")
            for stage, r in stages.items():
                verdict = "NOT CHECKED" if r.get("not_checked") else "identical" if r["identical"] else "DIFFERS"
                rows.append(f"    {gate + '.' + stage:16s} {_pct(r['agreement'])}  {verdict}  "
                            f"({r['nonzero']} nonzero values)")
    if fid.get("onnx"):
        o = fid["onnx"]
        rows.append(f"  {'ONNX (onnxruntime) vs torch':34s} max |Δ| = {o['max_abs_diff']:.2e}, predictions "
                    f"{'identical' if o['predictions_identical'] else 'DIFFER'} ({o['samples']} samples)")
        tb = o.get("torch_batch_effect")
        if tb:
            rows.append(f"    ({o['rerun_one_at_a_time']} samples re-run one at a time in torch: batched torch "
                        f"differs from itself there by up to {tb['max_abs_diff']:.2e}, float32 rounding at a "
                        f"threshold)")
    if fid.get("targets_met"):
        rows.append("  targets: " + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in fid["targets_met"].items()))
    return "\n".join(rows)

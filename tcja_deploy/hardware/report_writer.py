"""The report of a profile: report.md, tables.tex (booktabs), layers.csv, a copy of profile.json, PNG plots.

Input: a profile directory written by :mod:`tcja_deploy.hardware.profiling` (profile.json, and
raster.npz for the raster plot) or a profile.json file. The report directory is written whole and
atomically (:func:`tcja_deploy.atomic.atomic_dir`).

Files:
- ``report.md``: what was run, on what, with which energy profile; summary table; per-layer table;
  energy scenarios with their citations; caveats.
- ``tables.tex``: the summary and per-layer tables (``\\usepackage{booktabs}``), ready to ``\\input``.
- ``layers.csv``: one row per layer, every count's mean and std, resources, energies.
- ``profile.json``: the profile the report was made from.
- ``firing_rate.png``, ``synops.png``, ``energy_breakdown.png``, ``raster.png``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from tcja_deploy import atomic, outputs
from tcja_deploy.errors import UserError, one_line
from tcja_deploy.hardware.counters import COUNT_KEYS
from tcja_deploy.hardware.energy import CATEGORIES, CATEGORY_LABELS, SCENARIOS

SCENARIO_SHORT = {k: sc.short for k, sc in SCENARIOS.items()}
#: Scenarios with a column in the per-layer table (the paper-method rows are in layers.csv and the totals).
LAYER_SCENARIOS = ("snn_chip", "snn_cmos_int", "snn_cmos", "ann_cmos_int8", "ann_cmos")
PLOTS = ("firing_rate.png", "synops.png", "energy_breakdown.png", "raster.png")


def short_name(doc: dict, key: str) -> str:
    """A scenario's short label: the profile's own, else this version's, else its key."""
    return doc["energy"]["scenarios"].get(key, {}).get("short") or SCENARIO_SHORT.get(key, key)


def layer_scenarios(doc: dict) -> list[str]:
    """The per-layer table's scenario columns that this profile has (older profiles have three)."""
    have = set(doc["layers"][0]["energy_pj"]) if doc["layers"] else set()
    return [k for k in LAYER_SCENARIOS if k in have]


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def load_profile(path: str | Path) -> tuple[dict, Optional[Path], Path]:
    """(profile document, raster.npz path or None, profile.json path) of a profile dir or profile.json."""
    path = Path(path)
    pj = path / "profile.json" if path.is_dir() else path
    if not pj.is_file():
        raise UserError(f"--profile {path}: no profile.json there; run python -m tcja_deploy.profile first")
    try:
        doc = json.loads(pj.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{pj}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith("tcja_deploy.profile/"):
        raise UserError(f"{pj}: not a tcja_deploy profile (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    _check_profile(doc, pj)
    raster = pj.parent / "raster.npz"
    if raster.is_file():
        _check_raster(raster)
    return doc, (raster if raster.is_file() else None), pj


#: What the report reads of a profile: top-level key → type.
_PROFILE_KEYS = {"layers": list, "total": dict, "energy": dict, "accuracy": dict, "latency": dict, "samples": dict,
                 "backend": str}


def _non_finite(v, where: str = "") -> Optional[str]:
    """The path of the first NaN or infinite number in a JSON value, or None."""
    if isinstance(v, float) and not math.isfinite(v):
        return where or "(top)"
    if isinstance(v, dict):
        for k, x in v.items():
            found = _non_finite(x, f"{where}.{k}" if where else str(k))
            if found:
                return found
    if isinstance(v, list):
        for i, x in enumerate(v):
            found = _non_finite(x, f"{where}[{i}]")
            if found:
                return found
    return None


def _check_profile(doc: dict, pj: Path) -> None:
    """The structure the report reads, with finite numbers; anything else → one-line UserError naming the file."""
    for key, typ in _PROFILE_KEYS.items():
        if not isinstance(doc.get(key), typ):
            raise UserError(f"{pj}: malformed profile: {key!r} must be a {typ.__name__}, got "
                            f"{type(doc.get(key)).__name__}")
    bad = _non_finite(doc)
    if bad:
        raise UserError(f"{pj}: malformed profile: {bad} is not a finite number")
    for i, layer in enumerate(doc["layers"]):
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str) \
                or not isinstance(layer.get("counts"), dict):
            raise UserError(f"{pj}: malformed profile: layers[{i}] must be an object with a name and counts")
        for key, st in layer["counts"].items():
            if not isinstance(st, dict) or not all(isinstance(st.get(f), (int, float)) and not isinstance(
                    st.get(f), bool) for f in ("mean", "std", "min", "max")):
                raise UserError(f"{pj}: malformed profile: layers[{i}].counts.{key} must hold numbers "
                                f"mean, std, min, max")


def _check_raster(raster: Path) -> None:
    """raster.npz holds ``names`` and ``layer_<i>`` 2-D arrays of counts, without pickles."""
    try:
        with np.load(raster, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            for i in range(len(names)):
                a = z[f"layer_{i}"]
                if a.ndim != 2 or a.dtype.kind not in "iub":
                    raise ValueError(f"layer_{i} must be a 2-D array of counts, got {a.dtype} {list(a.shape)}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{raster}: not a raster this version reads ({type(e).__name__}: {one_line(e)})") from None


# ---------------------------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------------------------


def fmt_num(x: Optional[float], digits: int = 3) -> str:
    """Counts: integers with thousands separators below 10⁷, else 3 significant digits in e-notation."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1e7:
        return f"{x:.{digits - 1}e}"
    if abs(x - round(x)) < 1e-9 or abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_pm(s: dict, scale: float = 1.0, digits: int = 3) -> str:
    """"mean ± std" of a stat dict (values divided by ``scale``)."""
    m, sd = s["mean"] / scale, s["std"] / scale
    if abs(sd) <= 1e-9 * abs(m):  # float rounding of a constant (the ANN rows): no spread
        sd = 0.0
    if scale != 1.0:
        return f"{m:.{digits}g} ± {sd:.2g}"
    return f"{fmt_num(m)} ± {fmt_num(sd)}"


def energy_unit(values_pj: list[float]) -> tuple[str, float]:
    """A readable unit (pJ, nJ, µJ, mJ) for a set of picojoule values, and its scale in pJ."""
    top = max((abs(v) for v in values_pj if v is not None and not math.isnan(v)), default=0.0)
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if top >= scale:
            return unit, scale
    return "pJ", 1.0


# ---------------------------------------------------------------------------------------------------------------
# Tables (shared by report.md, tables.tex and the CLI)
# ---------------------------------------------------------------------------------------------------------------


def _partition_rows(doc: dict) -> list[tuple[str, str, str]]:
    """Chips with whole layers packed onto them, and the smallest listed Loihi 2 system that holds them."""
    part = doc.get("resources_partition")
    if not part or not part.get("chips"):
        return []
    system = part.get("system")
    where = (f"smallest listed system: {system['name']} ({system['chips']} chip(s))" if system
             else "more than every listed Loihi 2 system")
    return [("Loihi 2 chips, layers packed in order", f"{part['chips']}", where)]


def summary_rows(doc: dict) -> list[tuple[str, str, str]]:
    """(quantity, value, unit / note) rows of the summary table; every energy row names its status and profile."""
    t = doc["total"]["counts"]
    acc = doc["accuracy"]
    lat = doc["latency"]
    res = doc["total"]["resources"]
    sc = doc["energy"]["scenarios"]
    e_unit, e_scale = energy_unit([s["total"]["mean"] for s in sc.values()])
    acc_v = "n/a" if acc["value"] is None else f"{100 * acc['value']:.1f} %"
    rows = [
        ("backend", doc["backend"], "partial profile" if doc.get("partial") else ""),
        ("samples", f"{doc['samples']['done']}", f"{doc['samples'].get('split', 'test')} split"),
        ("accuracy", acc_v, f"{acc['correct']} / {acc['labelled']} samples"),
        ("latency, first input to decision", f"{lat['decision_steps']}",
         f"steps ({lat['input_steps']} input + {lat['pipeline_steps']} pipeline, "
         f"of which {lat['window_gate_steps']} gate window)"),
        ("input events", fmt_pm(t["input_events"]), "per inference"),
        ("spikes + graded messages (all layers)", fmt_pm(t["spikes"]), "per inference"),
        ("firing rate (neuron layers)", f"{100 * doc['total']['firing_rate']['mean']:.2f} %",
         "spikes / neuron / step"),
        ("graded messages", fmt_pm(t["graded_messages"]), f"{fmt_num(t['payload_bits']['mean'])} payload bits"),
        ("SynOps", fmt_pm(t["synops"]), "per inference"),
        ("neuron updates", fmt_pm(t["neuron_updates"]), "per inference"),
        ("gate MACs / mults / adds / lookups",
         " / ".join(fmt_num(t[k]["mean"]) for k in ("gate_macs", "gate_mults", "gate_adds", "gate_lookups")),
         "non-spiking, per inference"),
        ("equivalent ANN MACs", fmt_num(doc["total"]["ann"]["macs"]),
         "dense (padding taps and zero weights included), one pass"),
        *_mac_alternative_rows(doc),
        ("Loihi 2 neurons / synapses", f"{fmt_num(res['neurons'])} / {fmt_num(res['synapses'])}", ""),
        ("Loihi 2 cores (estimate)", f"{res['cores']}", f"{res['chips']} chip(s), lower bound"),
        *_partition_rows(doc),
    ]
    for key, s in sc.items():
        rows.append((f"energy: {short_name(doc, key)}", fmt_pm(s["total"], e_scale),
                     f"{e_unit} per inference, {s['status']}, profile {s['profile']}"))
    m = doc["energy"].get("measured")
    if m:
        for k, v in m.items():
            if isinstance(v, dict) and "mean" in v:
                rows.append((f"measured {k}", f"{v['mean']:.4g}", "measured on Loihi 2 (lava-loihi)"))
    for key, value in doc["energy"]["ratios"].items():
        a, _, b = key.partition("_over_")
        if value:
            rows.append((f"energy ratio {short_name(doc, a)} / {short_name(doc, b)}", f"{value:.3g}×", "estimates"))
    return rows


def _mac_alternative_rows(doc: dict) -> list[tuple[str, str, str]]:
    """The other ways of counting the ANN's MACs (profile.json energy.conventions.ann_macs)."""
    conv = doc["energy"].get("conventions")
    if not conv:
        return []
    m = conv["ann_macs"]
    extra = m.get("dense_excess_over_no_padding_no_zeros")
    rows = [("  ANN MACs without padding taps", fmt_num(m["no_padding"]), "zero weights included, one pass"),
            ("  ANN MACs without padding taps or zero weights", fmt_num(m["no_padding_no_zeros"]),
             "= synapses; dense count is " + (f"{100 * extra:.1f} % more" if extra is not None else "n/a")),
            ("  ANN MACs × T", fmt_num(m["dense_x_T"]), f"dense, T = {conv['T']} passes")]
    return rows


LAYER_HEADER = ("layer", "kind", "neurons", "firing rate (%)", "spikes", "SynOps", "gate ops", "cores")


def layer_rows(doc: dict) -> tuple[tuple[str, ...], list[tuple[str, ...]], str]:
    """(header, rows, energy unit) of the per-layer table (means per inference)."""
    keys = layer_scenarios(doc)
    vals = [l["energy_pj"][sc]["total"]["mean"] for l in doc["layers"] for sc in keys]
    unit, scale = energy_unit(vals)
    rows = []
    for l in doc["layers"]:
        c = l["counts"]
        gate_ops = sum(c[k]["mean"] for k in ("gate_macs", "gate_mults", "gate_adds", "gate_lookups"))
        rows.append((
            l["name"], l["kind"], fmt_num(l["neurons"]), f"{100 * l['firing_rate']['mean']:.2f}",
            fmt_num(c["spikes"]["mean"]), fmt_num(c["synops"]["mean"]), fmt_num(gate_ops),
            str(l["resources"]["cores"]),
            *(f"{l['energy_pj'][sc]['total']['mean'] / scale:.3g}" for sc in keys),
        ))
    header = LAYER_HEADER + tuple(f"E {short_name(doc, k)} ({unit})" for k in keys)
    return header, rows, unit


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A plain fixed-width table for the terminal."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    esc = lambda v: str(v).replace("|", "\\|")
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------------------------------------------

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_UNICODE = {"±": r"$\pm$", "µ": r"$\mu$", "×": r"$\times$", "→": r"$\rightarrow$", "⊙": r"$\odot$",
                "≤": r"$\leq$", "≥": r"$\geq$", "–": "--", "—": "---", "≈": r"$\approx$"}


def tex_escape(s: str) -> str:
    """Escape LaTeX specials (underscores included) and map the few non-ASCII symbols we print."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(s))
    for u, t in _TEX_UNICODE.items():
        out = out.replace(u, t)
    return out


def tex_table(header: tuple[str, ...], rows: list[tuple[str, ...]], caption: str, label: str, align: str) -> str:
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{tex_escape(caption)}}}",
             rf"\label{{{label}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def placement_rows(doc: dict) -> Optional[tuple[tuple[str, ...], list[tuple[str, ...]]]]:
    """The gate placement table (host vs neuro cores), or None for a profile without fixed-point gates."""
    gp = doc.get("gate_placement")
    if not gp:
        return None
    header = ("gate placement", "pipeline latency (steps)", "est. time per step", "gate neurons", "gate synapses",
              "gate cores", "gate energy (µJ)", "network energy (µJ)")
    rows = []
    for name, p in gp["placements"].items():
        label = {"neurocore": "neuro cores (standard Lava processes)", "host": "host process (lock-step)"}[name]
        if name == gp["deployed"]:
            label += ", deployed"
        if not p["complete"]:
            errors = "; ".join(g["error"] for g in p["gates"].values() if g.get("error"))
            rows.append((label, "cannot be placed: " + errors, "", "", "", "", "", ""))
            continue
        step = p["est_s_per_step"]
        step_s = f"{step * 1e3:.3g} ms" if step >= 1e-3 else f"{step * 1e6:.3g} µs"
        host_note = " + round trip (not estimated)" if name == "host" else ""
        rows.append((label, str(p["pipeline_steps"]), step_s, f"{p['gate_neurons']:,}", f"{p['gate_synapses']:,}",
                     str(p["gate_cores"]), f"{p['gate_energy_pj'] / 1e6:.3g}{host_note}",
                     f"{p['network_energy_pj_snn_chip'] / 1e6:.3g}"))
    return header, rows


def tables_tex(doc: dict) -> str:
    """tables.tex: the summary and the per-layer table, booktabs, with units; needs \\usepackage{booktabs}."""
    srows = summary_rows(doc)
    header, lrows, unit = layer_rows(doc)
    what = (f"{doc['deploy'].get('preset') or doc['deploy']['dir']}, backend {doc['backend']}, "
            f"{doc['samples']['done']} test samples; energies are estimates per inference")
    parts = [
        "% Generated by python -m tcja_deploy.report. Needs \\usepackage{booktabs} in the preamble.",
        tex_table(("Quantity", "Value", "Unit / note"), srows, f"Summary: {what}.", "tab:tcja-summary", "lll"),
        "",
        tex_table(header, lrows, f"Per layer, means per inference; energies in {unit} ({what}).",
                  "tab:tcja-layers", "ll" + "r" * (len(header) - 2)),
        "",
    ]
    placement = placement_rows(doc)
    if placement:
        parts += [tex_table(placement[0], placement[1], f"TCJA gate placement, Loihi 2 energy estimates per "
                            f"inference ({what}).", "tab:tcja-placement", "l" + "r" * (len(placement[0]) - 1)), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------------------


def layers_csv(doc: dict) -> str:
    """layers.csv: one row per layer; counts as mean and std per inference; energies in pJ."""
    fields = ["name", "kind", "in_shape", "out_shape", "neurons", "units", "steps", "latency_steps",
              "input_payload_bits", "output_payload_bits", "firing_rate_mean", "firing_rate_std"]
    fields += [f"{k}_{s}" for k in COUNT_KEYS for s in ("mean", "std")]
    fields += ["synapses", "weights", "synaptic_memory_bits", "cores", "ann_macs", "ann_compares"]
    scenarios = list(doc["layers"][0]["energy_pj"]) if doc["layers"] else []
    fields += [f"energy_{sc}_pj_{s}" for sc in scenarios for s in ("mean", "std")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for l in doc["layers"]:
        row = {k: l[k] for k in ("name", "kind", "neurons", "units", "steps", "latency_steps",
                                 "input_payload_bits", "output_payload_bits")}
        row["in_shape"] = "x".join(str(v) for v in l["in_shape"])
        row["out_shape"] = "x".join(str(v) for v in l["out_shape"])
        row["firing_rate_mean"], row["firing_rate_std"] = l["firing_rate"]["mean"], l["firing_rate"]["std"]
        for k in COUNT_KEYS:
            row[f"{k}_mean"], row[f"{k}_std"] = l["counts"][k]["mean"], l["counts"][k]["std"]
        for k in ("synapses", "weights", "synaptic_memory_bits", "cores"):
            row[k] = l["resources"][k]
        row["ann_macs"], row["ann_compares"] = l["ann"]["macs"], l["ann"]["compares"]
        for sc in scenarios:
            t = l["energy_pj"][sc]["total"]
            row[f"energy_{sc}_pj_mean"], row[f"energy_{sc}_pj_std"] = t["mean"], t["std"]
        w.writerow(row)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _subtitle(doc: dict) -> str:
    acc = doc["accuracy"]["value"]
    acc_s = "n/a" if acc is None else f"{100 * acc:.1f} %"
    return (f"{doc['deploy'].get('preset') or ''} · backend {doc['backend']} · {doc['samples']['done']} samples · "
            f"accuracy {acc_s}" + (" · PARTIAL" if doc.get("partial") else ""))


def plot_firing_rate(doc: dict, path: Path) -> None:
    plt = _plt()
    layers = doc["layers"]
    names = [l["name"] for l in layers]
    m = np.array([100 * l["firing_rate"]["mean"] for l in layers])
    s = np.array([100 * l["firing_rate"]["std"] for l in layers])
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 4))
    colors = ["tab:orange" if l["kind"] == "gate" else "tab:blue" for l in layers]
    ax.bar(range(len(names)), m, yerr=s, color=colors, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_ylabel("firing rate (% of neurons per step)")
    ax.set_title("Firing rate per layer (mean ± std over samples)\n" + _subtitle(doc), fontsize=9)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="tab:blue", label="spiking layer"),
                       Patch(color="tab:orange", label="gate (graded messages / output / step)")], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_synops(doc: dict, path: Path) -> None:
    plt = _plt()
    layers = doc["layers"]
    names = [l["name"] for l in layers]
    x = np.arange(len(names))
    syn = np.array([l["counts"]["synops"]["mean"] for l in layers])
    syn_sd = np.array([l["counts"]["synops"]["std"] for l in layers])
    gate = np.array([sum(l["counts"][k]["mean"] for k in ("gate_macs", "gate_mults", "gate_adds", "gate_lookups"))
                     for l in layers])
    macs = np.array([l["ann"]["macs"] for l in layers], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4.2))
    w = 0.4
    ax.bar(x - w / 2, np.where(syn > 0, syn, np.nan), w, yerr=syn_sd, capsize=3, color="tab:blue",
           label="SNN SynOps per inference")
    ax.bar(x - w / 2, np.where(gate > 0, gate, np.nan), w, color="tab:orange", label="SNN gate ops (non-spiking)")
    ax.bar(x + w / 2, np.where(macs > 0, macs, np.nan), w, color="tab:gray", alpha=0.7, label="ANN dense MACs")
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=40, ha="right")
    ax.set_ylabel("operations per inference (log)")
    ax.set_title("SynOps per layer (mean ± std) beside the equivalent ANN's MACs\n" + _subtitle(doc), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_energy(doc: dict, path: Path) -> None:
    plt = _plt()
    sc = doc["energy"]["scenarios"]
    keys = list(sc)
    unit, scale = energy_unit([sc[k]["total"]["mean"] for k in keys])
    fig, ax = plt.subplots(figsize=(max(9.5, 1.5 * len(keys) + 3), 4.8))
    bottom = np.zeros(len(keys))
    colors = {"synaptic": "tab:blue", "neuron": "tab:green", "spike_traffic": "tab:purple", "gate": "tab:orange",
              "memory": "tab:gray"}
    for cat in CATEGORIES:
        v = np.array([sc[k]["by_category"][cat]["mean"] / scale for k in keys])
        if not np.any(v > 0):
            continue
        ax.bar(range(len(keys)), v, bottom=bottom, color=colors[cat], label=CATEGORY_LABELS[cat], width=0.6)
        bottom += v
    for i, k in enumerate(keys):
        t = sc[k]["total"]
        ax.errorbar(i, t["mean"] / scale, yerr=t["std"] / scale, color="black", capsize=4)
        ax.annotate(f"{t['mean'] / scale:.3g} {unit}", (i, (t["mean"] + t["std"]) / scale),
                    textcoords="offset points", xytext=(0, 5), ha="center", fontsize=8)
    labels = [f"{short_name(doc, k).replace(', ', chr(10))}\n({sc[k]['status']})" for k in keys]
    ax.set_xticks(range(len(keys)), labels, fontsize=7)
    ax.set_ylabel(f"energy per inference ({unit})")
    top = max((sc[k]["total"]["mean"] + sc[k]["total"]["std"]) / scale for k in keys)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_title("Energy by operation type (estimates: counts × per-op constants)\n" + _subtitle(doc), fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="operation type", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_raster(doc: dict, raster: Optional[Path], path: Path) -> None:
    plt = _plt()
    if raster is None:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no raster.npz next to profile.json", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    with np.load(raster) as z:
        names = [str(n) for n in z["names"]]
        arrays = [z[f"layer_{i}"] for i in range(len(names))]
    n = len(arrays)
    fig, axes = plt.subplots(n, 1, figsize=(8, max(4, 1.1 * n + 1.2)), sharex=True, squeeze=False)
    T = max(a.shape[0] for a in arrays)
    max_rows = 160
    for ax, name, a in zip(axes[:, 0], names, arrays):
        units = a.shape[1]
        img = (a > 0).T.astype(np.float32)  # [units, T]
        binned = units > max_rows
        vmax = 1.0
        if binned:  # a row per bin of neurons, shaded by the fraction that fired (no event is dropped)
            edges = np.linspace(0, units, max_rows + 1).astype(int)
            img = np.stack([img[lo:hi].mean(axis=0) for lo, hi in zip(edges[:-1], edges[1:])])
            vmax = float(img.max()) or 1.0
        ax.imshow(img, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0, vmax=vmax, origin="lower",
                  extent=(-0.5, a.shape[0] - 0.5, -0.5, units - 0.5))
        ax.set_xlim(-0.5, T - 0.5)
        label = f"{name}\n({units} in {max_rows} bins)" if binned else f"{name}\n({units})"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        ax.set_yticks([])
        ax.text(1.0, 1.0, f"{int(a.sum())} events", transform=ax.transAxes, ha="right", va="bottom", fontsize=6)
    axes[-1, 0].set_xlabel("time step")
    axes[-1, 0].set_xticks(range(T))
    fig.suptitle("Spike raster of the first test sample (rows: neurons, black = event; large layers: bins of "
                 "neurons, shade = fraction firing)\n"
                 + _subtitle(doc), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------------------------


def report_md(doc: dict) -> str:
    d = doc["deploy"]
    v = doc["versions"]
    sc = doc["energy"]["scenarios"]
    header, lrows, unit = layer_rows(doc)
    lines = [f"# Hardware profile: {d.get('preset') or d['dir']}", ""]
    if doc.get("partial"):
        lines += [f"> **Partial profile**: {doc['samples']['done']} of {doc['samples'].get('selected')} samples "
                  f"({doc.get('stopped') or 'not finished'}).", ""]
    lines += [
        "## What was run",
        "",
        f"- Deploy directory `{d['dir']}` ({d['hash']}), preset `{d.get('preset')}`, dataset `{d.get('dataset')}`, "
        f"T = {d.get('T')}.",
        f"- Backend `{doc['backend']}` on the first {doc['samples']['done']} samples of the "
        f"{doc['samples'].get('split', 'test')} split; accuracy on them "
        + ("n/a" if doc["accuracy"]["value"] is None else f"{100 * doc['accuracy']['value']:.1f} %")
        + f" ({doc['accuracy']['correct']} / {doc['accuracy']['labelled']}).",
        f"- Versions: Python {v.get('python')}, lava-nc {v.get('lava-nc')}, lava-dl {v.get('lava-dl')}, "
        f"torch {v.get('torch')}, numpy {v.get('numpy')}, tcja_deploy {v.get('tcja_deploy')}.",
        f"- Profile created {doc.get('created')}; wall time {doc['wall_s_per_sample']['mean']:.3g} s per sample "
        "(simulation speed, not hardware time).",
        "- Energy profiles: " + "; ".join(
            f"`{name}` ({next(s['status'] for s in sc.values() if s['profile'] == name)}) for "
            + " / ".join(short_name(doc, k) for k, s in sc.items() if s["profile"] == name)
            for name in dict.fromkeys(s["profile"] for s in sc.values())) + ".",
        "",
        "## Summary (per inference; mean ± std over samples)",
        "",
        md_table(("quantity", "value", "unit / note"), summary_rows(doc)),
        "",
        f"## Per layer (means per inference; energies in {unit}, estimates)",
        "",
        md_table(header, lrows),
        "",
        "SynOps are charged to the receiving layer (its input events × their real fan-out, conv edges and "
        "strides counted exactly, zero weights excluded). Gate ops = MACs + mults + adds + lookups of the "
        "TCJA gate (non-spiking).",
        "",
    ]
    placement = placement_rows(doc)
    if placement:
        gp = doc["gate_placement"]
        lines += ["## Where the TCJA gates run (both placements counted on this run's activity)", "",
                  md_table(*placement), "",
                  f"Energies: profile `{gp['energy_profile']}` (estimates). Time per step: "
                  f"{gp['time_per_step']['source']} ({gp['time_per_step']['status']}).", ""]
    lines += [
        "## Energy by operation type (estimates)",
        "",
    ]
    e_unit, e_scale = energy_unit([s["total"]["mean"] for s in sc.values()])
    cat_header = ("scenario", *(CATEGORY_LABELS[c] for c in CATEGORIES), "total")
    cat_rows = [(s["label"], *(f"{s['by_category'][c]['mean'] / e_scale:.3g}" for c in CATEGORIES),
                 fmt_pm(s["total"], e_scale)) for s in sc.values()]
    lines += [f"In {e_unit} per inference.", "", md_table(cat_header, cat_rows), "",
              "![energy breakdown](energy_breakdown.png)", ""]
    lines += _baselines_md(doc, e_unit, e_scale)
    lines += _conventions_md(doc)
    lines += _paper_method_md(doc, e_unit, e_scale)
    lines += ["## Energy constants", "",
              "Each constant with its source and table; a constant marked *derived* is computed from others "
              "(the formula is given), not read from a source.", ""]
    for p in doc["energy"]["profiles"].values():
        lines += [f"**{p['name']}** ({p['model']}, {p['status']}): {p['description']}. Source: `{p['source']}`.", ""]
        if p["constants"]:
            lines += [md_table(("constant", "value", "unit", "citation", "derived from", "note"),
                               [(k, f"{c['value']:g}", c["unit"], c["citation"], c.get("derived", "") or "—",
                                 c.get("note", "")) for k, c in p["constants"].items()]), ""]
        if p.get("derived"):
            lines += [f"Derived from `{p['name']}` by the code (a user profile's primary constants change them):", "",
                      md_table(("constant", "value", "unit", "derived from", "note"),
                               [(k, f"{c['value']:.4g}", c["unit"], c.get("derived", ""), c.get("note", ""))
                                for k, c in p["derived"].items()]), ""]
    m = doc["energy"].get("measured")
    lines += ["## Measured on Loihi 2", ""]
    if m:
        lines += [md_table(("quantity", "mean", "std"), [(k, f"{x['mean']:.4g}", f"{x['std']:.2g}")
                                                        for k, x in m.items() if isinstance(x, dict) and "mean" in x]), ""]
    else:
        lines += ["Nothing measured: this run used no Loihi 2 hardware. Every energy figure above is an estimate.", ""]
    lines += ["## Loihi 2 limits used for the core estimate", "",
              md_table(("limit", "value", "unit", "source", "verified", "note"),
                       [(k, f"{x['value']:g}", x["unit"], x["source"], "yes" if x["verified"] else "no (unverified)",
                         x.get("note", "")) for k, x in doc["resources_limits"].items()]), "",
              "## Plots", "",
              "![firing rate](firing_rate.png)", "", "![SynOps](synops.png)", "", "![raster](raster.png)", "",
              "## Caveats", ""]
    lines += [f"- {c}" for c in doc.get("caveats", [])]
    lines += ["", "Files: `tables.tex` (booktabs), `layers.csv`, `profile.json` (the data of this report).", ""]
    return "\n".join(lines)


def _baselines_md(doc: dict, e_unit: str, e_scale: float) -> list[str]:
    """The baselines table: every row with its arithmetic and what its memory term covers."""
    sc = doc["energy"]["scenarios"]
    if not all("arithmetic" in s for s in sc.values()):
        return []
    rows = [(s.get("short", k), fmt_pm(s["total"], e_scale), s["arithmetic"], s["memory"]) for k, s in sc.items()]
    return ["## Energy baselines (estimates)", "",
            f"Totals in {e_unit} per inference. Every 45 nm row uses the same SRAM model (64-bit accesses to an "
            "8 kB SRAM); the Loihi row's per-operation energies include the cores' memory.", "",
            md_table(("row", "total", "arithmetic", "memory term covers"), rows), ""]


def _conventions_md(doc: dict) -> list[str]:
    """The counting conventions (SynOps vs MACs, padding, zero weights, one pass vs T steps)."""
    conv = doc["energy"].get("conventions")
    if not conv:
        return []
    m = conv["ann_macs"]
    rows = [("SNN SynOps", fmt_num(conv["synops"]["mean"]), "excluded", "excluded", f"T = {conv['T']} steps"),
            ("ANN MACs, used (dense)", fmt_num(m["dense"]), "included", "included", "one pass"),
            ("ANN MACs, no padding", fmt_num(m["no_padding"]), "excluded", "included", "one pass"),
            ("ANN MACs, no padding, no zeros", fmt_num(m["no_padding_no_zeros"]), "excluded", "excluded", "one pass"),
            ("ANN MACs × T (dense)", fmt_num(m["dense_x_T"]), "included", "included", f"{conv['T']} passes"),
            ("ANN MACs × T (no padding, no zeros)", fmt_num(m["no_padding_no_zeros_x_T"]), "excluded", "excluded",
             f"{conv['T']} passes")]
    lines = ["## Counting conventions", "", *(f"- {t}" for t in conv["statements"]), "",
             md_table(("count", "per inference", "padding taps", "zero weights", "steps"), rows), ""]
    extra, pad = m.get("dense_excess_over_no_padding_no_zeros"), m.get("dense_excess_over_no_padding")
    if extra is not None and pad is not None:
        lines += [f"The dense count is {100 * pad:.1f} % above the count without padding taps and {100 * extra:.1f} % "
                  "above the count without padding taps and zero weights. All in profile.json "
                  "`energy.conventions`.", ""]
    return lines


def _paper_method_md(doc: dict, e_unit: str, e_scale: float) -> list[str]:
    """The paper-method rows beside ours."""
    pm = doc["energy"].get("paper_method")
    sc = doc["energy"]["scenarios"]
    if not pm or "snn_paper" not in sc or "ann_paper" not in sc:
        return []
    snn, ann = sc["snn_paper"]["total"]["mean"], sc["ann_paper"]["total"]["mean"]

    def ratio(den: float) -> str:
        return f"{ann / den:.3g}×" if den else "n/a"

    T = doc["energy"].get("conventions", {}).get("T", "?")
    macs = f"its {fmt_num(pm['encoder_macs'])} dense MACs over the T = {T} steps at E_MAC"
    if pm["first_layer_charged_as"] == "MACs":
        first = (f"- The first layer (`{pm['first_layer']}`) receives {pm['first_layer_input']}; as direct encoding, "
                 f"{macs} are charged; charged as E_AC × its SynOps instead (as for spike input), the SNN figure "
                 f"would be {pm['snn_pj_first_layer_as_synops'] / e_scale:.3g} {e_unit} (ANN / SNN = "
                 f"{ratio(pm['snn_pj_first_layer_as_synops'])}).")
    else:
        first = (f"- The first layer (`{pm['first_layer']}`) receives {pm['first_layer_input']} and is charged E_AC × "
                 f"its SynOps; charged as {macs} instead (direct encoding), the SNN figure would be "
                 f"{pm['snn_pj_first_layer_as_macs'] / e_scale:.3g} {e_unit} (ANN / SNN = "
                 f"{ratio(pm['snn_pj_first_layer_as_macs'])}).")
    return ["## The paper method beside ours", "",
            f"Rule: {pm['rule']}", "",
            f"- SNN, paper method: {snn / e_scale:.3g} {e_unit}; ANN, paper method: {ann / e_scale:.3g} {e_unit}; "
            f"ANN / SNN = {ratio(snn)}.",
            first,
            "- These rows leave out neuron updates, spike traffic and memory access; the rows above include them.",
            ""]


def write_report(profile: str | Path, out_dir: str | Path) -> dict:
    """Write the report of ``profile`` (a profile dir or profile.json) into ``out_dir``; returns the profile."""
    doc, raster, pj = load_profile(profile)
    out_dir = Path(out_dir)
    outputs.check_out_dir(out_dir, "report", inputs=[pj.parent])
    outputs.clean_stale_temporaries(out_dir)
    with atomic.atomic_dir(out_dir) as tmp, _malformed(pj):
        (tmp / "report.md").write_text(report_md(doc))
        (tmp / "tables.tex").write_text(tables_tex(doc))
        (tmp / "layers.csv").write_text(layers_csv(doc))
        shutil.copyfile(pj, tmp / "profile.json")
        plot_firing_rate(doc, tmp / "firing_rate.png")
        plot_synops(doc, tmp / "synops.png")
        plot_energy(doc, tmp / "energy_breakdown.png")
        plot_raster(doc, raster, tmp / "raster.png")
        outputs.write_marker(tmp, "report")
    return doc


@contextlib.contextmanager
def _malformed(pj: Path):
    """A profile whose values do not fit what the report computes (a count of the wrong kind, a missing
    entry): one line naming the file, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as e:
        raise UserError(f"{pj}: malformed profile ({type(e).__name__}: {one_line(e)})") from None

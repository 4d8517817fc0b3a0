"""The profile document: per-sample counts of every layer accumulated chunk by chunk, built into
``profile.json`` (field-by-field reference: docs/FORMATS.md).

``profile.json`` (``"format": "tcja_deploy.profile/1"``), every count per inference (one sample), as
``{"mean", "std", "min", "max"}`` over the samples (std: population, ddof = 0)::

    {"format", "partial", "stopped" (why a partial profile stopped, or null), "created",
     "backend", "deploy": {"dir", "hash", "preset", "dataset", "T"},
     "versions": {"python", "lava-nc", "lava-dl", "torch", "numpy", "tcja_deploy"},
     "samples": {"requested", "selected", "done", "split": "test", "first_index"},
     "accuracy": {"correct", "labelled", "value"},
     "latency": {"input_steps", "pipeline_steps", "window_gate_steps", "decision_steps", "steps_simulated"},
     "wall_s_per_sample": stat,
     "layers": [{"name", "kind", "in_shape", "out_shape", "stride", "padding", "input_payload_bits",
                 "output_payload_bits", "latency_steps", "gate", "neurons", "units", "steps",
                 "counts": {<COUNT_KEYS>: stat}, "firing_rate": stat,
                 "resources": {"neurons", "synapses", "weights", "synaptic_memory_bits", "cores"},
                 "ann": {<ANN_KEYS>: int},
                 "energy_pj": {<SCENARIOS>: {"total": stat, "by_category": {<CATEGORIES>: mean}}}}, ...],
     "total": {"counts": {...: stat}, "firing_rate": stat, "resources": {..., "chips"}, "ann": {...}},
     "resources_limits": {<LOIHI2_LIMITS>},
     "energy": {"unit": "pJ per inference", "status": "estimate", "profiles": {name: profile},
                "scenarios": {<SCENARIOS>: {"label", "short", "network", "profile", "status", "arithmetic",
                              "memory", "total": stat, "by_category": {<CATEGORIES>: stat}}},
                "ratios": {"<a>_over_<b>" for (a, b) in energy.RATIOS},
                "conventions": {"statements", "T", "ann_macs": {...}, "synops", ...},
                "paper_method": {"rule", "first_layer", "encoder_macs", "snn_first_layer_as_macs_pj", ...},
                "measured": null | {...}},
     "caveats": [str, ...]}

Next to it, ``raster.npz`` holds the spikes of the first sample: ``names`` (layer names, the first
``input``), and ``layer_<i>`` = [T, units] uint8 event counts.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import numpy as np

from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.activity import NetworkActivity
from tcja_deploy.hardware.ann_baseline import ann_counts
from tcja_deploy.hardware.counters import COUNT_KEYS, NetworkCounts, count_network, event_counts
from tcja_deploy.hardware.placement import HOST_ROUND_TRIP, PLACEMENTS, gate_placements
from tcja_deploy.hardware.resources import network_resources

FORMAT = "tcja_deploy.profile/1"
SCENARIOS = tuple(E.SCENARIOS)


def stat(values) -> dict[str, float]:
    """{"mean", "std", "min", "max"} of per-sample values (population std); NaN-free input expected."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("lava-nc", "lava-dl", "torch", "numpy", "tcja_deploy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _layer_static(layer) -> dict:
    return {
        "name": layer.name, "kind": layer.kind,
        "in_shape": [int(v) for v in layer.in_shape], "out_shape": [int(v) for v in layer.out_shape],
        "stride": int(layer.stride), "padding": int(layer.padding),
        "input_payload_bits": int(layer.input_payload_bits), "output_payload_bits": int(layer.output_payload_bits),
        "latency_steps": int(layer.latency_steps),
        "gate": None if layer.gate is None else layer.gate.to_dict(),
    }


@dataclass
class ProfileAccumulator:
    """Per-sample counts of every layer, gathered chunk by chunk; :meth:`build` makes profile.json's dict."""

    profiles: dict[str, E.EnergyProfile]
    static: list[dict] = field(default_factory=list)
    resources: Optional[dict] = None
    ann_per_layer: list[dict] = field(default_factory=list)
    ann_total: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    per_layer: list[dict[str, list[np.ndarray]]] = field(default_factory=list)
    rates: list[list[np.ndarray]] = field(default_factory=list)
    total_rate: list[np.ndarray] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    wall_s: list[np.ndarray] = field(default_factory=list)
    measured: list[dict] = field(default_factory=list)
    meta_layers: list[tuple[int, int, int]] = field(default_factory=list)  # (neurons, units, steps)
    #: gate layer index → placement → {"static": {...}, "counts": {key: [arrays]}}
    placements: dict[int, dict[str, dict]] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return int(sum(len(c) for c in self.correct))

    def add(self, activity: NetworkActivity, wall_s: float = 0.0) -> NetworkCounts:
        """Count one chunk's activity and keep its per-sample values."""
        counts = count_network(activity)
        if not self.static:
            self.static = [_layer_static(l) for l in activity.layers]
            self.resources = network_resources(activity.layers)
            self.ann_per_layer, self.ann_total = ann_counts(activity.layers)
            self.latency = counts.latency
            self.per_layer = [{k: [] for k in COUNT_KEYS} for _ in activity.layers]
            self.rates = [[] for _ in activity.layers]
            self.meta_layers = [(lc.neurons, lc.units, lc.steps) for lc in counts.layers]
        elif [l.name for l in activity.layers] != [s["name"] for s in self.static]:
            raise ValueError("the backend returned different layers for different chunks")
        for i, lc in enumerate(counts.layers):
            for k in COUNT_KEYS:
                self.per_layer[i][k].append(lc.counts[k])
            self.rates[i].append(lc.firing_rate)
        self._add_placements(activity, counts)
        self.total_rate.append(counts.firing_rate)
        self.correct.append(counts.correct)
        self.wall_s.append(np.full(counts.samples, wall_s / max(counts.samples, 1)))
        if activity.extra.get("measured"):
            self.measured.append({"samples": counts.samples, **activity.extra["measured"]})
        return counts

    def _add_placements(self, activity: NetworkActivity, counts: NetworkCounts) -> None:
        """Both placements of every fixed-point gate, counted on this chunk (hardware/placement.py)."""
        by_name = {lc.name: lc for lc in counts.layers}
        for i, layer in enumerate(activity.layers):
            if layer.kind != "gate" or layer.gate_params is None:
                continue
            src = layer.gate.squeeze_from
            sq = by_name[src].counts["spikes"] if src else counts.layers[i].counts["input_events"]
            for name, res in gate_placements(layer, counts.layers[i], sq).items():
                slot = self.placements.setdefault(i, {}).setdefault(name, {"static": None, "counts": {}})
                if "error" in res:
                    slot["static"] = {"error": res["error"]}
                    continue
                slot["static"] = {k: v for k, v in res.items() if k != "counts"}
                for k, v in res["counts"].items():
                    slot["counts"].setdefault(k, []).append(v)

    def _placement_doc(self, scenarios: dict) -> Optional[dict]:
        """profile.json's ``gate_placement``: per placement, the gates' resources, latency and Loihi energy."""
        if not self.placements:
            return None
        neu = self.profiles["neuromorphic"]
        deployed = {self.static[i]["gate"]["placement"] for i in self.placements}
        pipeline = int(self.latency.get("pipeline_steps", 0))
        deployed_gate_pj = 0.0
        for i in self.placements:
            c = self._layer_counts(i)
            deployed_gate_pj += float(np.mean(E.total(E.snn_chip_energy(c, neu))))
        out = {}
        for name in PLACEMENTS:
            gates, ok = {}, True
            latency, energy_pj = pipeline, 0.0
            for i, per in self.placements.items():
                slot = per.get(name)
                if slot is None or "error" in (slot["static"] or {}):
                    ok = False
                    gates[self.static[i]["name"]] = {"error": (slot or {}).get("static", {}).get("error")}
                    continue
                counts = {k: np.concatenate(v) for k, v in slot["counts"].items()}
                pj = float(np.mean(E.total(E.snn_chip_energy(counts, neu))))
                energy_pj += pj
                latency += slot["static"]["latency_steps"] - self.static[i]["latency_steps"]
                gates[self.static[i]["name"]] = {**slot["static"], "energy_pj": pj,
                                                 "synops": stat(counts.get("synops", np.zeros(1)))}
            total_chip = scenarios["snn_chip"]["total"]["mean"] - deployed_gate_pj + energy_pj
            per_step = HOST_ROUND_TRIP["with_host_process_s_per_step" if name == "host" else "chip_only_s_per_step"]
            out[name] = {"gates": gates, "complete": ok, "pipeline_steps": int(latency),
                         "gate_energy_pj": energy_pj, "network_energy_pj_snn_chip": float(total_chip),
                         "gate_neurons": int(sum(g.get("neurons", 0) for g in gates.values())),
                         "gate_synapses": int(sum(g.get("synapses", 0) for g in gates.values())),
                         "gate_cores": int(sum(g.get("cores", 0) for g in gates.values())),
                         "est_s_per_step": per_step}
        return {"deployed": sorted(deployed)[0] if len(deployed) == 1 else "mixed", "placements": out,
                "energy_profile": neu.name, "time_per_step": HOST_ROUND_TRIP,
                "note": "both placements counted on this run's activity; the host round trip's energy is not "
                        "included (no figure), its time per step is a cited measurement of a comparable setup"}

    # -- building the profile -------------------------------------------------------------------------------
    def _layer_counts(self, i: int) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.per_layer[i].items()}

    def _energies(self, counts: dict[str, np.ndarray], ann: dict, i: int) -> dict[str, dict[str, np.ndarray]]:
        """Every scenario's breakdown of layer ``i`` ([N] per category)."""
        neu, cmos = self.profiles["neuromorphic"], self.profiles["cmos"]
        n = len(next(iter(counts.values())))

        def per_sample(br: dict) -> dict[str, np.ndarray]:
            return {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in br.items()}

        encoder = ann["macs_x_steps"] if self._encodes_real_values(i) else None
        return {
            "snn_chip": E.snn_chip_energy(counts, neu),
            "snn_cmos_int": E.snn_cmos_int_energy(counts, cmos, self._graded_payload_bits(i)),
            "snn_cmos": E.snn_cmos_energy(counts, cmos),
            "ann_cmos_int8": per_sample(E.ann_int8_energy(ann, cmos)),
            "ann_cmos": per_sample(E.ann_cmos_energy(ann, cmos)),
            "snn_paper": per_sample(E.snn_paper_energy(counts, cmos, encoder)),
            "ann_paper": per_sample(E.ann_paper_energy(ann, cmos)),
        }

    def _graded_payload_bits(self, i: int) -> Optional[int]:
        """Width of layer ``i``'s graded input; None for a gate, whose graded SynOps are its inner messages."""
        st = self.static[i]
        return None if st["kind"] == "gate" else int(st["input_payload_bits"])

    def _encodes_real_values(self, i: int) -> bool:
        """Layer ``i`` is the first and its input is not spikes (graded values: direct encoding)."""
        return i == 0 and int(self.static[0]["input_payload_bits"]) > 0

    def scenario_labels(self) -> dict[str, dict[str, str]]:
        """Per scenario: label, short name, network, profile, status, arithmetic and what its memory term covers."""
        out = {}
        for key, sc in E.SCENARIOS.items():
            p = self.profiles[sc.model]
            out[key] = {"label": f"{sc.short} ({p.name}, {p.status})", "short": sc.short, "network": sc.network,
                        "profile": p.name, "status": p.status, **E.scenario_text(key, self.profiles)}
        return out

    def _conventions(self, total_counts: dict[str, np.ndarray]) -> dict:
        """profile.json's ``energy.conventions``: how SynOps and MACs are counted, with the alternative counts."""
        a = self.ann_total
        T = int(self.latency.get("input_steps", 0))
        synops = float(np.mean(total_counts["synops"]))

        def share(x: int, y: int) -> Optional[float]:
            return float(x / y - 1.0) if y else None

        return {
            "T": T,
            "synops": {"mean": synops, "padding_taps": "excluded", "zero_weights": "excluded",
                       "steps": "summed over the T steps of the inference"},
            "ann_macs": {
                "dense": int(a["macs"]), "no_padding": int(a["macs_no_padding"]),
                "no_padding_no_zeros": int(a["macs_nonzero"]),
                "dense_x_T": int(a["macs_x_steps"]), "no_padding_no_zeros_x_T": int(a["macs_nonzero_x_steps"]),
                "dense_excess_over_no_padding_no_zeros": share(a["macs"], a["macs_nonzero"]),
                "dense_excess_over_no_padding": share(a["macs"], a["macs_no_padding"]),
                "used": "dense (padding taps and zero weights included), one pass",
            },
            "synops_over_nonzero_macs_x_T": (synops / a["macs_nonzero_x_steps"]) if a["macs_nonzero_x_steps"] else None,
            "statements": [
                "SynOps: each input event × its real fan-out — taps that would read padding and zero weights are "
                "not synapses and are not counted; summed over the T steps of one inference.",
                "Equivalent-ANN MACs (the fp32, int8 and paper-method ANN rows): dense, as a dense accelerator "
                "computes them and as MAC counters count them — padding taps and zero weights included — for "
                "one pass (the ANN has no time axis).",
                "Alternatives in energy.conventions.ann_macs: without padding taps; without padding taps and "
                "zero weights (= the synapses a SynOp count uses); and × T (an ANN run at each of the T steps).",
                "Neuron updates: every neuron at each of the T steps; the ANN has one activation per output.",
            ],
        }

    def _paper_method(self, layers_out: list[dict]) -> dict:
        """profile.json's ``energy.paper_method``: the rule used and the figure under the other first-layer rule."""
        cmos = self.profiles["cmos"]
        first = layers_out[0]
        enc = int(self.ann_per_layer[0]["macs_x_steps"])
        as_macs = enc * cmos.get("mac_pj")
        as_acs = first["counts"]["synops"]["mean"] * cmos.get("ac_pj")
        total = sum(l["energy_pj"]["snn_paper"]["total"]["mean"] for l in layers_out)
        used_macs = self._encodes_real_values(0)
        other = total - (as_macs if used_macs else as_acs) + (as_acs if used_macs else as_macs)
        return {
            "rule": "E_AC × SynOps + E_MAC × the first layer's MACs × T when the network input is not spikes "
                    "(direct encoding); the TCJA gate's arithmetic at fp32; no neuron updates, spike traffic or "
                    "memory. The TCJA paper's own energy method could not be checked here (see docs/DESIGN.md §6).",
            "e_ac_pj": cmos.get("ac_pj"), "e_mac_pj": cmos.get("mac_pj"),
            "first_layer": first["name"],
            "first_layer_input": (f"graded values ({first['input_payload_bits']}-bit payload)" if used_macs
                                  else "spikes"),
            "first_layer_charged_as": "MACs" if used_macs else "SynOps",
            "encoder_macs": enc,
            "snn_pj_first_layer_as_macs": float(total if used_macs else other),
            "snn_pj_first_layer_as_synops": float(other if used_macs else total),
        }

    def build(self, meta: dict, partial: bool, stopped: Optional[str] = None) -> dict:
        """The profile.json document (see the module docstring)."""
        if not self.static:
            raise ValueError("no samples were profiled")
        layers_out = []
        total_counts = None
        total_energy: dict[str, dict[str, np.ndarray]] = {}
        for i, s in enumerate(self.static):
            c = self._layer_counts(i)
            total_counts = {k: v.copy() for k, v in c.items()} if total_counts is None else \
                {k: total_counts[k] + c[k] for k in COUNT_KEYS}
            en = self._energies(c, self.ann_per_layer[i], i)
            for sc, br in en.items():
                acc = total_energy.setdefault(sc, {cat: 0.0 for cat in E.CATEGORIES})
                for cat in E.CATEGORIES:
                    acc[cat] = acc[cat] + br[cat]
            neurons, units, steps = self.meta_layers[i]
            layers_out.append({
                **s, "neurons": neurons, "units": units, "steps": steps,
                "counts": {k: stat(v) for k, v in c.items()},
                "firing_rate": stat(np.concatenate(self.rates[i])),
                "resources": self.resources["layers"][i].to_dict(),
                "ann": self.ann_per_layer[i],
                "energy_pj": {sc: {"total": stat(E.total(br)),
                                   "by_category": {cat: float(np.mean(br[cat])) for cat in E.CATEGORIES}}
                              for sc, br in en.items()},
            })
        # The network's input events are the first layer's input (each later input is an earlier output).
        total_counts["input_events"] = self._layer_counts(0)["input_events"]
        correct = np.concatenate(self.correct)
        labelled = int(np.sum(~np.isnan(correct)))
        n_correct = int(np.nansum(correct))
        labels = self.scenario_labels()
        scenarios = {sc: {**labels[sc], "total": stat(E.total(br)),
                          "by_category": {cat: stat(br[cat]) for cat in E.CATEGORIES}}
                     for sc, br in total_energy.items()}

        def ratio(a: str, b: str) -> Optional[float]:
            den = scenarios[b]["total"]["mean"]
            return float(scenarios[a]["total"]["mean"] / den) if den else None

        measured = None
        if self.measured:
            keys = sorted({k for m in self.measured for k in m if k != "samples"})
            measured = {"profile": "measured", "status": "measured", "source": "lava-loihi Loihi2Power / "
                        "Loihi2ExecutionTime / Loihi2Activity", "per_chunk": self.measured,
                        **{k: stat([m[k] for m in self.measured if k in m]) for k in keys}}
        caveats = [p.caveat for p in self.profiles.values() if p.caveat]
        caveats += [
            "Counts come from the activity of this run; energies are counts × per-op constants (estimates) "
            "unless marked measured.",
            "Neuron updates are charged for every neuron at each of the T steps of an inference (pipelined "
            "stream; a lone inference's flush steps are not charged); an update is 'active' when the neuron "
            "fires in that step.",
            "Spike traffic on chip: one message per spike and "
            f"{self.profiles['neuromorphic'].get('hops_per_spike'):g} mesh hop(s) each (placement unknown).",
            "A neuro-core TCJA gate is counted as the SynOps, neuron updates and graded messages of its "
            "sub-network of standard Lava processes; a host gate as non-spiking arithmetic (MACs, products, "
            "sigmoid lookups, squeeze adds) at 45 nm CMOS figures, without its host round trip.",
            "Loihi 2 cores: a lower bound from per-core neuron and synaptic-memory limits, without weight "
            "sharing (synaptic memory = synapses × weight bits); some limits are unverified (see the table).",
            "The equivalent ANN runs the same layers once with dense MACs (TCJA at T = 1), in fp32 and quantized "
            "to int8. The SNN and ANN rows at 45 nm carry the same memory-access model because leaving memory "
            "traffic out overstates an SNN's advantage (arXiv:2409.08290); the ANNs' term assumes ideal reuse, "
            "so the comparison errs towards the ANNs.",
            "The paper-method rows (E_AC × SynOps + E_MAC × encoder MACs against E_MAC × dense MACs) leave out "
            "neuron updates, spike traffic and memory, as SNN papers do; they are there to compare with "
            "published figures, not as an estimate of a chip.",
        ]
        return {
            "format": FORMAT,
            "partial": bool(partial),
            "stopped": stopped,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **meta,
            "samples": {**meta.get("samples", {}), "done": self.samples},
            "accuracy": {"correct": n_correct, "labelled": labelled,
                         "value": (n_correct / labelled) if labelled else None},
            "latency": self.latency,
            "wall_s_per_sample": stat(np.concatenate(self.wall_s)),
            "layers": layers_out,
            "total": {"counts": {k: stat(v) for k, v in total_counts.items()},
                      "firing_rate": stat(np.concatenate(self.total_rate)),
                      "resources": self.resources["total"], "ann": self.ann_total},
            "resources_limits": self.resources["limits"],
            "resources_partition": self.resources["partition"],
            "energy": {"unit": "pJ per inference", "status": "estimate",
                       "profiles": {p.name: p.to_dict() for p in self.profiles.values()},
                       "scenarios": scenarios,
                       "ratios": {f"{a}_over_{b}": ratio(a, b) for a, b in E.RATIOS},
                       "conventions": self._conventions(total_counts),
                       "paper_method": self._paper_method(layers_out),
                       "measured": measured},
            "gate_placement": self._placement_doc(scenarios),
            "caveats": caveats,
        }


def raster_arrays(activity: NetworkActivity, sample: int = 0) -> dict[str, np.ndarray]:
    """{"names": [input, layer names...], "layer_<i>": [T, units] uint8} for one sample."""
    first = activity.layers[0]
    names = ["input"] + [l.name for l in activity.layers]
    arrays = [event_counts(np.asarray(first.input_spikes)[:, sample], first.input_payload_bits)]
    arrays += [event_counts(np.asarray(l.output_spikes)[:, sample], l.output_payload_bits) for l in activity.layers]
    out: dict[str, np.ndarray] = {"names": np.asarray(names)}
    for i, a in enumerate(arrays):
        out[f"layer_{i}"] = np.clip(a.reshape(a.shape[0], -1), 0, 255).astype(np.uint8)
    return out

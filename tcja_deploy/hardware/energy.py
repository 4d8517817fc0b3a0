"""Energy profiles: named, cited per-operation constants, and energy = counts × constants.

This module is the one place the constants live. Each :class:`Constant` carries its value, unit and
citation. Three kinds of profile:

- ``neuromorphic``: costs per SynOp, per neuron update (active / inactive), per spike message and
  per hop, plus the non-spiking arithmetic of the TCJA gate. Charged to the SNN "on chip".
  Built in: ``loihi-davies2018``.
- ``cmos``: costs per accumulate (E_AC), multiply, MAC, table lookup and per 64-bit SRAM access,
  plus the operand widths of the memory-access term. Charged to the SNN on a conventional digital
  accelerator and to the equivalent ANN. Built in: ``cmos45nm-horowitz2014``.
- ``measured``: no constants; figures come only from Loihi 2's profilers (Intel's lava-loihi).

Every energy figure is an *estimate* unless its profile is ``measured``. Energies are in picojoules
per inference (one sample) unless a name says otherwise.

A user profile is a small TOML or JSON file (``--energy-profile FILE``)::

    name = "my-loihi2-guess"
    model = "neuromorphic"            # or "cmos"
    base = "loihi-davies2018"         # optional: constants not given here come from this profile
    description = "what the numbers are"
    [constants]
    synop_pj = { value = 20.0, citation = "where the number comes from" }
    spike_hop_pj = 3.5                # a bare number is accepted (citation: the file)

A ``neuromorphic`` file replaces the on-chip profile, a ``cmos`` file the 45 nm one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from tcja_deploy.errors import UserError

# ---------------------------------------------------------------------------------------------------------------
# Citations
# ---------------------------------------------------------------------------------------------------------------

DAVIES_2018 = ("Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
               "IEEE Micro 38(1), 2018, Table 2 (pre-silicon figures for Loihi 1, 14 nm)")
HOROWITZ_2014 = ("Horowitz, 'Computing's Energy Problem (and what we can do about it)', ISSCC 2014, "
                 "45 nm, 0.9 V")
YAN_2024 = ("Yan, Bai, Tang, Wong, 'Reconsidering the energy efficiency of spiking neural networks', "
            "arXiv:2409.08290")
LOIHI_FIXED_POINT = "Loihi 2 fixed point as NetX/slayer export it: 8-bit weights, 24-bit u and v (docs/DESIGN.md §3)"

# ---------------------------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """One per-operation constant: value, unit, where it comes from, and how it is used."""

    value: float
    unit: str
    citation: str
    note: str = ""

    def to_dict(self) -> dict:
        d = {"value": self.value, "unit": self.unit, "citation": self.citation}
        if self.note:
            d["note"] = self.note
        return d


#: Constants a profile of each model must define (name → unit, what it is).
REQUIRED: dict[str, dict[str, tuple[str, str]]] = {
    "neuromorphic": {
        "synop_pj": ("pJ", "one synaptic operation (binary or graded spike × one synapse)"),
        "neuron_update_active_pj": ("pJ", "one neuron update in a step where the neuron fires"),
        "neuron_update_inactive_pj": ("pJ", "one neuron update in a step without a spike"),
        "spike_in_tile_pj": ("pJ", "one spike message delivered within a tile"),
        "spike_hop_pj": ("pJ", "one spike message crossing one tile-to-tile hop"),
        "hops_per_spike": ("hops", "mesh hops charged to each spike message"),
        "gate_add_pj": ("pJ", "one add of the non-spiking gate arithmetic"),
        "gate_mult_pj": ("pJ", "one multiply of the gate arithmetic"),
        "gate_mac_pj": ("pJ", "one multiply-accumulate of the gate arithmetic"),
        "gate_lookup_pj": ("pJ", "one sigmoid table lookup of the gate"),
    },
    "cmos": {
        "ac_pj": ("pJ", "one accumulate (E_AC): a binary SynOp, an add, a compare"),
        "mult_pj": ("pJ", "one multiply"),
        "mac_pj": ("pJ", "one multiply-accumulate (E_MAC): a dense MAC or a graded SynOp"),
        "lookup_pj": ("pJ", "one small-table lookup (gate sigmoid)"),
        "neuron_update_pj": ("pJ", "one LIF/CUBA neuron update (two decays and a compare)"),
        "sram_access_64b_pj": ("pJ", "one 64-bit access to on-chip SRAM"),
        "snn_weight_bits": ("bit", "SNN weight width read per SynOp"),
        "snn_state_bits": ("bit", "SNN state variable width (u, v)"),
        "ann_weight_bits": ("bit", "ANN weight width"),
        "ann_activation_bits": ("bit", "ANN activation width"),
    },
    "measured": {},
}

MODELS = tuple(REQUIRED)


@dataclass(frozen=True)
class EnergyProfile:
    """A named set of per-operation constants.

    Attributes:
        name: profile name (``loihi-davies2018``, a user file's ``name``).
        model: ``neuromorphic`` | ``cmos`` | ``measured``.
        status: ``estimate`` | ``measured``.
        description: what it is and what it is applied to.
        constants: name → :class:`Constant`.
        source: where the profile came from (this module, or the user's file).
        caveat: what a reader must know when this profile is used.
    """

    name: str
    model: str
    status: str
    description: str
    constants: Mapping[str, Constant] = field(default_factory=dict)
    source: str = "tcja_deploy/hardware/energy.py"
    caveat: str = ""

    def get(self, key: str) -> float:
        """The value of constant ``key``; a missing one is a :class:`UserError` naming the profile's source."""
        if key not in self.constants:
            raise UserError(f"energy profile {self.source}: missing constant {key!r} (profile {self.name!r}, "
                            f"model {self.model!r})")
        return float(self.constants[key].value)

    def check(self) -> "EnergyProfile":
        """Raise a one-line :class:`UserError` for the first constant the model needs and the profile lacks."""
        for key in REQUIRED[self.model]:
            self.get(key)
        return self

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "status": self.status, "description": self.description,
                "source": self.source, "caveat": self.caveat,
                "constants": {k: c.to_dict() for k, c in self.constants.items()}}


def _c(value: float, unit: str, citation: str, note: str = "") -> Constant:
    return Constant(float(value), unit, citation, note)


_GATE_ON_CHIP_NOTE = ("the TCJA gate is non-spiking arithmetic (Lava process on an embedded core or the host), "
                      "charged at 45 nm CMOS figures")

LOIHI_DAVIES2018 = EnergyProfile(
    name="loihi-davies2018",
    model="neuromorphic",
    status="estimate",
    description="Loihi per-operation energies (Davies et al. 2018, Table 2, pre-silicon), applied to the "
                "Loihi 2 mapping as an estimate",
    constants={
        "synop_pj": _c(23.6, "pJ", DAVIES_2018, "energy per synaptic spike op (min)"),
        "neuron_update_active_pj": _c(81.0, "pJ", DAVIES_2018, "energy per neuron update, active; "
                                      "'active' taken here as a step in which the neuron fires"),
        "neuron_update_inactive_pj": _c(52.0, "pJ", DAVIES_2018, "energy per neuron update, inactive"),
        "spike_in_tile_pj": _c(1.7, "pJ", DAVIES_2018, "within-tile spike energy"),
        "spike_hop_pj": _c(3.5, "pJ", DAVIES_2018, "across-tile spike energy per hop: 3.0 (E-W) to 4.0 (N-S); "
                           "midpoint"),
        "hops_per_spike": _c(1.0, "hops", "ours: assumption (placement unknown before mapping)",
                             "one hop between the cores of consecutive layers, one message per spike"),
        "gate_add_pj": _c(0.9, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE + " (fp32 add)"),
        "gate_mult_pj": _c(3.7, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE + " (fp32 multiply)"),
        "gate_mac_pj": _c(4.6, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE + " (fp32 add + multiply)"),
        "gate_lookup_pj": _c(10.0, "pJ", HOROWITZ_2014, "one 64-bit read of an 8 kB SRAM, an upper bound "
                             "for a small sigmoid table"),
    },
    caveat="No per-operation energies are published for Loihi 2; these are Loihi 1 pre-silicon figures "
           "(14 nm) applied to a Loihi 2 mapping. They include the cores' own memory accesses, so no "
           "separate memory term is added on chip.",
)

CMOS45NM_HOROWITZ2014 = EnergyProfile(
    name="cmos45nm-horowitz2014",
    model="cmos",
    status="estimate",
    description="45 nm CMOS arithmetic and SRAM access energies (Horowitz, ISSCC 2014); the SNN literature's "
                "E_AC = 0.9 pJ, E_MAC = 4.6 pJ convention, plus a memory-access term",
    constants={
        "ac_pj": _c(0.9, "pJ", HOROWITZ_2014, "32-bit float add (E_AC)"),
        "mult_pj": _c(3.7, "pJ", HOROWITZ_2014, "32-bit float multiply"),
        "mac_pj": _c(4.6, "pJ", HOROWITZ_2014, "32-bit float add + multiply (E_MAC)"),
        "lookup_pj": _c(10.0, "pJ", HOROWITZ_2014, "one 64-bit read of an 8 kB SRAM (upper bound for a table)"),
        "neuron_update_pj": _c(9.2, "pJ", HOROWITZ_2014, "ours: 2 × E_MAC (CUBA: u·(1−du)+in, v·(1−dv)+u); "
                               "the compare is neglected"),
        "sram_access_64b_pj": _c(10.0, "pJ", HOROWITZ_2014, "8 kB SRAM, 64-bit access (reads and writes "
                                 "charged alike); 32 kB: 20 pJ, 1 MB: 100 pJ, DRAM: 1.3–2.6 nJ"),
        "snn_weight_bits": _c(8, "bit", LOIHI_FIXED_POINT),
        "snn_state_bits": _c(24, "bit", LOIHI_FIXED_POINT),
        "ann_weight_bits": _c(32, "bit", "ours: fp32, the width Horowitz's E_MAC is for"),
        "ann_activation_bits": _c(32, "bit", "ours: fp32, the width Horowitz's E_MAC is for"),
    },
    caveat="Memory term (after " + YAN_2024 + "), 64-bit accesses to an 8 kB SRAM: the SNN moves data per "
           "event (a SynOp reads its weight and reads/writes its target's current; a neuron update "
           "reads/writes u and v every step); the ANN is granted ideal reuse (each weight read once, each "
           "activation read once and written once per inference), so the comparison favours the ANN "
           "baseline. Off-chip (DRAM) traffic is not counted.",
)

MEASURED = EnergyProfile(
    name="measured",
    model="measured",
    status="measured",
    description="Energy and time measured on Loihi 2 by lava-loihi's Loihi2Power, Loihi2ExecutionTime and "
                "Loihi2Activity profilers",
    constants={},
    caveat="Only available from a --backend loihi2 run on Intel's Loihi 2 hardware (lava-loihi).",
)

#: The built-in profiles by name.
PROFILES: dict[str, EnergyProfile] = {p.name: p for p in (LOIHI_DAVIES2018, CMOS45NM_HOROWITZ2014, MEASURED)}

#: The default profile of each model.
DEFAULTS = {"neuromorphic": "loihi-davies2018", "cmos": "cmos45nm-horowitz2014"}


def get_profile(name: str) -> EnergyProfile:
    """A built-in profile by name; unknown names are a :class:`UserError`."""
    if name not in PROFILES:
        raise UserError(f"unknown energy profile {name!r}; built in: {', '.join(PROFILES)}")
    return PROFILES[name]


# ---------------------------------------------------------------------------------------------------------------
# User profile files
# ---------------------------------------------------------------------------------------------------------------


def _read_profile_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"energy profile {path}: cannot read it ({e.strerror or e})") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"energy profile {path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    try:
        import tomli
    except ImportError:  # pragma: no cover - tomli is a dependency of the venv
        tomli = None
    if suffix == ".toml" or tomli is not None:
        if tomli is None:
            raise UserError(f"energy profile {path}: TOML needs the 'tomli' package; use a .json file instead")
        try:
            return tomli.loads(text)
        except tomli.TOMLDecodeError as e:
            if suffix == ".toml":
                raise UserError(f"energy profile {path}: not valid TOML ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise UserError(f"energy profile {path}: neither valid TOML nor JSON") from None


def load_profile_file(path: str | Path) -> EnergyProfile:
    """Read a user profile (TOML or JSON, see the module docstring) and check it has every constant.

    Raises:
        UserError: one line naming the file and what is wrong (missing constant, unknown constant,
            non-numeric or negative value, unknown model or base).
    """
    path = Path(path)
    data = _read_profile_file(path)
    if not isinstance(data, dict):
        raise UserError(f"energy profile {path}: expected a table of settings at the top level")
    model = data.get("model")
    base_name = data.get("base")
    for key in ("model", "base", "name", "description", "caveat"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"energy profile {path}: {key!r} must be a string, got {type(data[key]).__name__}")
    base = None
    if base_name is not None:
        if base_name not in PROFILES or PROFILES[base_name].model == "measured":
            raise UserError(f"energy profile {path}: unknown base {base_name!r}; choose one of: "
                            f"{', '.join(DEFAULTS.values())}")
        base = PROFILES[base_name]
        model = model or base.model
    if model not in ("neuromorphic", "cmos"):
        raise UserError(f"energy profile {path}: 'model' must be \"neuromorphic\" or \"cmos\", got {model!r}")
    if base is not None and base.model != model:
        raise UserError(f"energy profile {path}: model {model!r} does not match base {base.name!r} ({base.model})")
    raw = data.get("constants", {})
    if not isinstance(raw, dict):
        raise UserError(f"energy profile {path}: 'constants' must be a table")
    constants: dict[str, Constant] = dict(base.constants) if base is not None else {}
    for key, entry in raw.items():
        if key not in REQUIRED[model]:
            raise UserError(f"energy profile {path}: unknown constant {key!r} for model {model!r}; known: "
                            f"{', '.join(REQUIRED[model])}")
        if isinstance(entry, dict):
            if "value" not in entry:
                raise UserError(f"energy profile {path}: constant {key!r} has no 'value'")
            value, citation, note = entry["value"], str(entry.get("citation", f"user file {path.name}")), \
                str(entry.get("note", ""))
        else:
            value, citation, note = entry, f"user file {path.name}", ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"energy profile {path}: constant {key!r} must be a finite number ≥ 0, got {value!r}")
        constants[key] = Constant(float(value), REQUIRED[model][key][0], citation, note)
    for key in REQUIRED[model]:
        if key not in constants:
            raise UserError(f"energy profile {path}: missing constant {key!r} (model {model!r} needs: "
                            f"{', '.join(REQUIRED[model])})")
    name = str(data.get("name") or path.stem)
    return EnergyProfile(name=name, model=model, status="estimate",
                         description=str(data.get("description", f"user profile from {path.name}")),
                         constants=constants, source=str(path),
                         caveat=str(data.get("caveat", base.caveat if base is not None else "")))


def resolve_profiles(user_file: Optional[str | Path] = None) -> dict[str, EnergyProfile]:
    """{"neuromorphic": profile, "cmos": profile}: the built-in defaults, one replaced by ``user_file``."""
    chosen = {model: PROFILES[name] for model, name in DEFAULTS.items()}
    if user_file is not None:
        p = load_profile_file(user_file)
        chosen[p.model] = p
    for p in chosen.values():
        p.check()
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Energy = counts × constants
# ---------------------------------------------------------------------------------------------------------------

#: Operation categories of an energy breakdown, in plot order.
CATEGORIES = ("synaptic", "neuron", "spike_traffic", "gate", "memory")
CATEGORY_LABELS = {
    "synaptic": "synaptic ops / MACs",
    "neuron": "neuron updates / activations",
    "spike_traffic": "spike messages",
    "gate": "attention gate (non-spiking)",
    "memory": "memory access",
}


def _get(counts: Mapping[str, np.ndarray | float], key: str):
    return np.asarray(counts.get(key, 0), dtype=np.float64)


def snn_chip_energy(counts: Mapping[str, np.ndarray], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the SNN on a neuromorphic chip.

    Args:
        counts: :data:`~tcja_deploy.hardware.counters.COUNT_KEYS` → values (scalars or [N]).
        profile: a ``neuromorphic`` profile.

    SynOps × synop; active/inactive neuron updates × their constants; every spike or graded message (those
    inside a neuro-core gate included) × (in-tile + hops × hop); a host gate's adds/MACs/mults/lookups × the
    gate constants. The memory term is 0:
    the per-op figures include the cores' memory.
    """
    g = profile.get
    updates, active = _get(counts, "neuron_updates"), _get(counts, "neuron_updates_active")
    return {
        "synaptic": _get(counts, "synops") * g("synop_pj"),
        "neuron": active * g("neuron_update_active_pj") + (updates - active) * g("neuron_update_inactive_pj"),
        "spike_traffic": (_get(counts, "spikes") + _get(counts, "gate_messages"))
        * (g("spike_in_tile_pj") + g("hops_per_spike") * g("spike_hop_pj")),
        "gate": (_get(counts, "gate_adds") * g("gate_add_pj") + _get(counts, "gate_macs") * g("gate_mac_pj")
                 + _get(counts, "gate_mults") * g("gate_mult_pj") + _get(counts, "gate_lookups") * g("gate_lookup_pj")),
        "memory": np.zeros_like(updates),
    }


def snn_memory_bits(counts: Mapping[str, np.ndarray], profile: EnergyProfile) -> np.ndarray:
    """Bits moved to/from SRAM by the SNN: per SynOp a weight + read/write of the target's current;
    per neuron update read/write of u and v."""
    w, s = profile.get("snn_weight_bits"), profile.get("snn_state_bits")
    return _get(counts, "synops") * (w + 2 * s) + _get(counts, "neuron_updates") * (4 * s)


def snn_cmos_energy(counts: Mapping[str, np.ndarray], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the SNN on conventional digital logic (``cmos`` profile).

    Binary SynOps × E_AC, graded SynOps × E_MAC; neuron updates × neuron_update; no routing cost;
    gate arithmetic at the same constants; memory bits / 64 × one SRAM access.
    """
    g = profile.get
    synops, graded = _get(counts, "synops"), _get(counts, "synops_graded")
    return {
        "synaptic": (synops - graded) * g("ac_pj") + graded * g("mac_pj"),
        "neuron": _get(counts, "neuron_updates") * g("neuron_update_pj"),
        "spike_traffic": np.zeros_like(synops),
        "gate": (_get(counts, "gate_adds") * g("ac_pj") + _get(counts, "gate_macs") * g("mac_pj")
                 + _get(counts, "gate_mults") * g("mult_pj") + _get(counts, "gate_lookups") * g("lookup_pj")),
        "memory": snn_memory_bits(counts, profile) / 64.0 * g("sram_access_64b_pj"),
    }


def ann_memory_bits(ann: Mapping[str, float], profile: EnergyProfile) -> np.ndarray:
    """Bits moved by the ANN with ideal reuse (the baseline's favourable case): each weight read once,
    each layer input read once, each output written once per inference."""
    return (_get(ann, "weights") * profile.get("ann_weight_bits")
            + (_get(ann, "inputs") + _get(ann, "outputs")) * profile.get("ann_activation_bits"))


def ann_cmos_energy(ann: Mapping[str, float], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the equivalent ANN (counts from :mod:`tcja_deploy.hardware.ann_baseline`).

    MACs × E_MAC; activations and pool compares × E_AC; gate arithmetic; memory bits / 64 × SRAM access
    (:func:`ann_memory_bits`: ideal reuse).
    """
    g = profile.get
    return {
        "synaptic": _get(ann, "macs") * g("mac_pj"),
        "neuron": (_get(ann, "activations") + _get(ann, "compares")) * g("ac_pj"),
        "spike_traffic": np.zeros(()),
        "gate": (_get(ann, "gate_adds") * g("ac_pj") + _get(ann, "gate_macs") * g("mac_pj")
                 + _get(ann, "gate_mults") * g("mult_pj") + _get(ann, "gate_lookups") * g("lookup_pj")),
        "memory": ann_memory_bits(ann, profile) / 64.0 * g("sram_access_64b_pj"),
    }


def total(breakdown: Mapping[str, np.ndarray]) -> np.ndarray:
    """Σ over categories of an energy breakdown."""
    return sum((np.asarray(v, dtype=np.float64) for v in breakdown.values()), np.zeros(()))

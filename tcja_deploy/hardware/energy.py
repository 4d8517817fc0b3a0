"""Energy profiles: named, cited per-operation constants, and energy = counts × constants.

This module is the one place the constants live. Each :class:`Constant` carries its value, unit and
citation. Three kinds of profile:

- ``neuromorphic``: costs per SynOp, per neuron update (active / inactive), per spike message and
  per hop, plus the non-spiking arithmetic of the TCJA gate. Charged to the SNN "on chip".
  Built in: ``loihi-davies2018``.
- ``cmos``: costs per fp32 accumulate (E_AC), multiply, MAC, per int8 / int32 add and multiply, per
  table lookup and per 64-bit SRAM access, plus the operand widths of the memory-access term. Charged
  to the SNN on a conventional digital accelerator (fp32 and integer arithmetic), to the equivalent
  ANN (fp32 and int8) and to the "paper method" rows. Built in: ``cmos45nm-horowitz2014``.
- ``measured``: no constants; figures come only from Loihi 2's profilers (Intel's lava-loihi).

Every energy figure is an *estimate* unless its profile is ``measured``. Energies are in picojoules
per inference (one sample) unless a name says otherwise.

A constant is either taken from a source (its ``citation`` names the paper and table) or *derived*
(``Constant.derived`` holds the formula). The integer scenarios use constants derived in code from a
``cmos`` profile's primary ones (:func:`derived_constants`), so a user file that changes ``int32_add_pj``
changes every figure that uses it. :data:`SCENARIOS` lists the rows of a report: what arithmetic each
charges and what its memory term covers.

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
                 "energy-per-operation table (Fig. 1.1.9), 45 nm, 0.9 V")
YAN_2024 = ("Yan, Bai, Tang, Wong, 'Reconsidering the energy efficiency of spiking neural networks', "
            "arXiv:2409.08290")
MARSAGLIA_2003 = "Marsaglia, 'Xorshift RNGs', Journal of Statistical Software 8(14), 2003"
#: Integer operations of one xorshift32 step (32 random bits): three shifts and three XORs.
XORSHIFT32_OPS = 6
LOIHI_FIXED_POINT = "Loihi 2 fixed point as NetX/slayer export it: 8-bit weights, 24-bit u and v (docs/DESIGN.md §3)"
SANAFE_LOIHI = ("SANA-FE (SLAM-Lab/SANA-FE), loihi.yaml: first version (commit 1eaa01e) inactive 47.5 pJ, active "
                "81 pJ; later arch/loihi.yaml 51.2 pJ inactive (its own calibration, 47.5 commented out)")
DERIVED = "derived (ours)"

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
    derived: str = ""  #: the formula when the value is derived from other constants, else ""

    def to_dict(self) -> dict:
        d = {"value": self.value, "unit": self.unit, "citation": self.citation}
        if self.note:
            d["note"] = self.note
        if self.derived:
            d["derived"] = self.derived
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
        "ac_pj": ("pJ", "one fp32 accumulate (E_AC): a binary SynOp, an add, a compare"),
        "mult_pj": ("pJ", "one fp32 multiply"),
        "mac_pj": ("pJ", "one fp32 multiply-accumulate (E_MAC): a dense MAC or a graded SynOp"),
        "lookup_pj": ("pJ", "one small-table lookup (gate sigmoid)"),
        "neuron_update_pj": ("pJ", "one fp32 LIF/CUBA neuron update (two decays and two adds)"),
        "int8_add_pj": ("pJ", "one 8-bit integer add"),
        "int8_mult_pj": ("pJ", "one 8-bit integer multiply"),
        "int32_add_pj": ("pJ", "one 32-bit integer add"),
        "int32_mult_pj": ("pJ", "one 32-bit integer multiply"),
        "sram_access_64b_pj": ("pJ", "one 64-bit access to on-chip SRAM"),
        "dram_access_64b_pj": ("pJ", "one 64-bit DRAM access (the proxy of an off-chip transfer)"),
        "snn_weight_bits": ("bit", "SNN weight width read per SynOp"),
        "snn_state_bits": ("bit", "SNN state variable width (u, v); picks the integer adder of the SNN rows"),
        "ann_weight_bits": ("bit", "fp32 ANN weight width"),
        "ann_activation_bits": ("bit", "fp32 ANN activation width"),
        "ann_int_weight_bits": ("bit", "quantized (int8) ANN weight width"),
        "ann_int_activation_bits": ("bit", "quantized (int8) ANN activation width"),
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
        d = {"name": self.name, "model": self.model, "status": self.status, "description": self.description,
             "source": self.source, "caveat": self.caveat,
             "constants": {k: c.to_dict() for k, c in self.constants.items()}}
        if self.model == "cmos":
            d["derived"] = {k: c.to_dict() for k, c in derived_constants(self).items()}
        return d


def _c(value: float, unit: str, citation: str, note: str = "", derived: str = "") -> Constant:
    return Constant(float(value), unit, citation, note, derived)


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
        "neuron_update_inactive_pj": _c(52.0, "pJ", DAVIES_2018, "energy per neuron update, inactive. "
                                        "SANA-FE's Loihi models use 47.5 pJ (first loihi.yaml) and 51.2 pJ "
                                        "(calibrated arch/loihi.yaml); see docs/DESIGN.md §6"),
        "spike_in_tile_pj": _c(1.7, "pJ", DAVIES_2018, "within-tile spike energy"),
        "spike_hop_pj": _c(3.5, "pJ", DAVIES_2018, "across-tile spike energy per hop: 3.0 (E-W) to 4.0 (N-S)",
                           derived="(3.0 + 4.0) / 2, the midpoint of the published range"),
        "hops_per_spike": _c(1.0, "hops", "ours: assumption (placement unknown before mapping)",
                             "one hop between the cores of consecutive layers, one message per spike"),
        "gate_add_pj": _c(0.9, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE + " (fp32 add)"),
        "gate_mult_pj": _c(3.7, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE + " (fp32 multiply)"),
        "gate_mac_pj": _c(4.6, "pJ", HOROWITZ_2014, _GATE_ON_CHIP_NOTE, derived="fp32 multiply 3.7 + fp32 add 0.9"),
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
        "mac_pj": _c(4.6, "pJ", HOROWITZ_2014, "E_MAC of the SNN literature", derived="fp32 multiply 3.7 + fp32 add 0.9"),
        "lookup_pj": _c(10.0, "pJ", HOROWITZ_2014, "one 64-bit read of an 8 kB SRAM (upper bound for a table)"),
        "neuron_update_pj": _c(9.2, "pJ", DERIVED, "CUBA step u·(1−du)+in, v·(1−dv)+u in fp32; the threshold "
                               "compare is neglected", derived="2 × mac_pj (Horowitz fp32 multiply + add)"),
        "int8_add_pj": _c(0.03, "pJ", HOROWITZ_2014, "8-bit integer add"),
        "int8_mult_pj": _c(0.2, "pJ", HOROWITZ_2014, "8-bit integer multiply"),
        "int32_add_pj": _c(0.1, "pJ", HOROWITZ_2014, "32-bit integer add"),
        "int32_mult_pj": _c(3.1, "pJ", HOROWITZ_2014, "32-bit integer multiply"),
        "sram_access_64b_pj": _c(10.0, "pJ", HOROWITZ_2014, "8 kB SRAM, 64-bit access (reads and writes "
                                 "charged alike); 32 kB: 20 pJ, 1 MB: 100 pJ, DRAM: 1.3–2.6 nJ"),
        "dram_access_64b_pj": _c(1300.0, "pJ", HOROWITZ_2014, "64-bit DRAM access, the low end of 1.3–2.6 nJ; "
                                 "used as a proxy for moving 64 bits between host and chip (no cited figure for "
                                 "Loihi 2's host interface)"),
        "snn_weight_bits": _c(8, "bit", LOIHI_FIXED_POINT),
        "snn_state_bits": _c(24, "bit", LOIHI_FIXED_POINT),
        "ann_weight_bits": _c(32, "bit", "ours: fp32, the width Horowitz's E_MAC is for"),
        "ann_activation_bits": _c(32, "bit", "ours: fp32, the width Horowitz's E_MAC is for"),
        "ann_int_weight_bits": _c(8, "bit", "ours: 8-bit quantized ANN, the baseline of " + YAN_2024),
        "ann_int_activation_bits": _c(8, "bit", "ours: 8-bit quantized ANN, the baseline of " + YAN_2024),
    },
    caveat="Memory term (after " + YAN_2024 + "), 64-bit accesses to an 8 kB SRAM, the same model for every "
           "45 nm row: the SNN moves data per event (a SynOp reads its weight and reads/writes its target's "
           "current; a neuron update reads/writes u and v every step); the ANNs (fp32 and int8) are granted "
           "ideal reuse (each weight read once, each activation read once and written once per inference), "
           "so the comparison favours the ANN baselines. Off-chip (DRAM) traffic is not counted.",
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
            derived = str(entry.get("derived", ""))
        else:
            value, citation, note, derived = entry, f"user file {path.name}", "", ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"energy profile {path}: constant {key!r} must be a finite number ≥ 0, got {value!r}")
        constants[key] = Constant(float(value), REQUIRED[model][key][0], citation, note, derived)
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


def _sram_pj(bits, profile: EnergyProfile) -> np.ndarray:
    """bits / 64 × one 64-bit SRAM access: the memory model of every 45 nm row."""
    return np.asarray(bits, dtype=np.float64) / 64.0 * profile.get("sram_access_64b_pj")


def snn_cmos_energy(counts: Mapping[str, np.ndarray], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the SNN on conventional digital logic in **fp32** (``cmos`` profile).

    Binary SynOps × E_AC (fp32 add), graded SynOps × E_MAC; neuron updates × neuron_update; no routing
    cost; gate arithmetic at the same fp32 constants; memory bits / 64 × one SRAM access.
    """
    g = profile.get
    synops, graded = _get(counts, "synops"), _get(counts, "synops_graded")
    return {
        "synaptic": (synops - graded) * g("ac_pj") + graded * g("mac_pj"),
        "neuron": _get(counts, "neuron_updates") * g("neuron_update_pj"),
        "spike_traffic": np.zeros_like(synops),
        "gate": (_get(counts, "gate_adds") * g("ac_pj") + _get(counts, "gate_macs") * g("mac_pj")
                 + _get(counts, "gate_mults") * g("mult_pj") + _get(counts, "gate_lookups") * g("lookup_pj")),
        "memory": _sram_pj(snn_memory_bits(counts, profile), profile),
    }


def integer_add_pj(bits: float, profile: EnergyProfile) -> float:
    """Energy of one add at ``bits`` width: Horowitz's 8-bit add up to 8 bits, his 32-bit add up to 32
    bits, and one 32-bit add per started 32 bits above that."""
    if bits <= 8:
        return profile.get("int8_add_pj")
    return math.ceil(bits / 32) * profile.get("int32_add_pj")


def derived_constants(profile: EnergyProfile) -> dict[str, Constant]:
    """The constants of the integer rows, derived from a ``cmos`` profile's primary ones (name → Constant
    with its formula in ``derived``).

    - ``int8_mac_pj`` = int8 multiply + int32 add: an int8 × int8 product accumulated in a 32-bit
      accumulator, as int8 accelerators do;
    - ``snn_int_add_pj``: the adder of a SynOp at the SNN's state width (``snn_state_bits``; 24 → the
      32-bit add; ≤ 8 → the 8-bit add);
    - ``snn_int_mac_pj`` = int32 multiply + SNN add: a graded SynOp (payload × weight) whose operands
      do not both fit 8 bits, or whose payload width is unknown (a neuro-core gate's inner messages);
    - ``snn_int8_mac_pj`` = int8 multiply + SNN add: a graded SynOp with a payload of ≤ 8 bits and
      weights of ≤ 8 bits (the event-count input frames, a host gate's output);
    - ``snn_int_neuron_update_pj`` = 2 int32 multiplies + 2 SNN adds: the CUBA step u·(1−du)+in,
      v·(1−dv)+u in fixed point (decays are multiplies by a 12-bit factor and a shift); the compare is
      neglected, as in ``neuron_update_pj``;
    - ``prng_bit_pj`` = 6 × int32 add / 32: one random bit of a software xorshift32 generator on the host
      (Marsaglia 2003: ``x ^= x << 13; x ^= x >> 17; x ^= x << 5``, three shifts and three XORs per 32 bits),
      each shift or XOR priced as a 32-bit integer add, the cheapest 32-bit operation Horowitz lists (an upper
      bound: a shift or an XOR has no carry chain);
    - ``offchip_bit_pj`` = DRAM access / 64: one bit moved between host and chip, the 64-bit DRAM access as
      the proxy of an off-chip transfer.
    """
    g = profile.get
    state = g("snn_state_bits")
    add = integer_add_pj(state, profile)
    add_name = "int8_add_pj" if state <= 8 else ("int32_add_pj" if state <= 32 else f"{math.ceil(state / 32)} × int32_add_pj")
    cite = f"{DERIVED} from {profile.name}"
    return {
        "int8_mac_pj": Constant(g("int8_mult_pj") + g("int32_add_pj"), "pJ", cite,
                                "int8 × int8 product into a 32-bit accumulator", "int8_mult_pj + int32_add_pj"),
        "snn_int_add_pj": Constant(add, "pJ", cite, f"adder at the SNN state width ({state:g} bit)", add_name),
        "snn_int_mac_pj": Constant(g("int32_mult_pj") + add, "pJ", cite,
                                   "graded SynOp, payload or weight wider than 8 bits (or unknown)",
                                   "int32_mult_pj + snn_int_add_pj"),
        "snn_int8_mac_pj": Constant(g("int8_mult_pj") + add, "pJ", cite,
                                    "graded SynOp, payload and weight of ≤ 8 bits", "int8_mult_pj + snn_int_add_pj"),
        "snn_int_neuron_update_pj": Constant(2 * g("int32_mult_pj") + 2 * add, "pJ", cite,
                                             "fixed-point CUBA step (two decays, two adds; compare neglected)",
                                             "2 × int32_mult_pj + 2 × snn_int_add_pj"),
        "prng_bit_pj": Constant(XORSHIFT32_OPS * g("int32_add_pj") / 32, "pJ", cite,
                                "one random bit of a host xorshift32 (3 shifts + 3 XORs per 32 bits, each priced as "
                                "a 32-bit add; " + MARSAGLIA_2003 + ")", f"{XORSHIFT32_OPS} × int32_add_pj / 32"),
        "offchip_bit_pj": Constant(g("dram_access_64b_pj") / 64, "pJ", cite,
                                   "one bit between host and chip (DRAM access as the proxy of an off-chip transfer)",
                                   "dram_access_64b_pj / 64"),
    }


def graded_synop_int_pj(profile: EnergyProfile, payload_bits: Optional[int] = None) -> float:
    """Integer energy of one graded SynOp: the 8-bit multiplier when the payload (``payload_bits``) and
    the weights (``snn_weight_bits``) both fit 8 bits, else (or when the width is unknown) the 32-bit one."""
    d = derived_constants(profile)
    small = payload_bits is not None and 0 < payload_bits <= 8 and profile.get("snn_weight_bits") <= 8
    return d["snn_int8_mac_pj" if small else "snn_int_mac_pj"].value


def snn_cmos_int_energy(counts: Mapping[str, np.ndarray], profile: EnergyProfile,
                        payload_bits: Optional[int] = None) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the SNN on conventional digital logic in **integer** arithmetic at the
    profile's fixed-point widths (:func:`derived_constants`).

    Binary SynOps × snn_int_add (an 8-bit weight added to a 24-bit current: the 32-bit add); graded
    SynOps × :func:`graded_synop_int_pj` of ``payload_bits`` (the width of the graded input these counts
    received; None: unknown, the 32-bit multiplier); neuron updates × snn_int_neuron_update; gate adds ×
    snn_int_add, MACs × snn_int_mac, multiplies × int32 multiply, lookups × lookup; memory exactly as
    :func:`snn_cmos_energy`.
    """
    g = profile.get
    d = {k: c.value for k, c in derived_constants(profile).items()}
    synops, graded = _get(counts, "synops"), _get(counts, "synops_graded")
    return {
        "synaptic": (synops - graded) * d["snn_int_add_pj"] + graded * graded_synop_int_pj(profile, payload_bits),
        "neuron": _get(counts, "neuron_updates") * d["snn_int_neuron_update_pj"],
        "spike_traffic": np.zeros_like(synops),
        "gate": (_get(counts, "gate_adds") * d["snn_int_add_pj"] + _get(counts, "gate_macs") * d["snn_int_mac_pj"]
                 + _get(counts, "gate_mults") * g("int32_mult_pj") + _get(counts, "gate_lookups") * g("lookup_pj")),
        "memory": _sram_pj(snn_memory_bits(counts, profile), profile),
    }


def ann_memory_bits(ann: Mapping[str, float], profile: EnergyProfile, quantized: bool = False) -> np.ndarray:
    """Bits moved by the ANN with ideal reuse (the baseline's favourable case): each weight read once,
    each layer input read once, each output written once per inference; fp32 widths, or the int8
    ANN's (``ann_int_*_bits``) when ``quantized``."""
    wk, ak = ("ann_int_weight_bits", "ann_int_activation_bits") if quantized else ("ann_weight_bits", "ann_activation_bits")
    return (_get(ann, "weights") * profile.get(wk) + (_get(ann, "inputs") + _get(ann, "outputs")) * profile.get(ak))


def ann_cmos_energy(ann: Mapping[str, float], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the equivalent **fp32** ANN (counts from
    :mod:`tcja_deploy.hardware.ann_baseline`).

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
        "memory": _sram_pj(ann_memory_bits(ann, profile), profile),
    }


def ann_int8_energy(ann: Mapping[str, float], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) by category of the equivalent ANN quantized to **int8** weights and activations.

    MACs × int8_mac (int8 multiply + 32-bit accumulate); activations × int32 add (the ReLU compares the
    32-bit accumulator; requantisation to 8 bits is not charged, in the ANN's favour); pool compares ×
    int8 add; gate adds × int32 add, MACs × int8_mac, multiplies × int8 multiply, lookups × lookup;
    memory as :func:`ann_cmos_energy` with 8-bit weights and activations.
    """
    g = profile.get
    mac = derived_constants(profile)["int8_mac_pj"].value
    return {
        "synaptic": _get(ann, "macs") * mac,
        "neuron": _get(ann, "activations") * g("int32_add_pj") + _get(ann, "compares") * g("int8_add_pj"),
        "spike_traffic": np.zeros(()),
        "gate": (_get(ann, "gate_adds") * g("int32_add_pj") + _get(ann, "gate_macs") * mac
                 + _get(ann, "gate_mults") * g("int8_mult_pj") + _get(ann, "gate_lookups") * g("lookup_pj")),
        "memory": _sram_pj(ann_memory_bits(ann, profile, quantized=True), profile),
    }


def _fp32_gate(counts: Mapping, profile: EnergyProfile) -> np.ndarray:
    g = profile.get
    return (_get(counts, "gate_adds") * g("ac_pj") + _get(counts, "gate_macs") * g("mac_pj")
            + _get(counts, "gate_mults") * g("mult_pj") + _get(counts, "gate_lookups") * g("lookup_pj"))


def snn_paper_energy(counts: Mapping[str, np.ndarray], profile: EnergyProfile,
                     encoder_macs: Optional[float] = None) -> dict[str, np.ndarray]:
    """Energy (pJ) of the SNN the way SNN papers compute it: E_AC × SynOps + E_MAC × the encoding
    layer's MACs, nothing else (no neuron updates, no spike traffic, no memory).

    Args:
        counts: one layer's (or the network's) counts.
        encoder_macs: for the first layer when its input is not spikes (direct encoding of real values),
            its dense MACs over the T steps; its SynOps are then replaced by these MACs at E_MAC. None:
            every SynOp, binary or graded, is charged E_AC.

    The TCJA gate's own arithmetic is charged as in :func:`snn_cmos_energy` (fp32 adds, MACs, products,
    lookups), in its own category so that it can be left out.
    """
    synops = _get(counts, "synops")
    synaptic = synops * profile.get("ac_pj") if encoder_macs is None else \
        np.broadcast_to(np.float64(encoder_macs) * profile.get("mac_pj"), synops.shape).copy()
    zeros = np.zeros_like(synops)
    return {"synaptic": synaptic, "neuron": zeros, "spike_traffic": zeros.copy(), "gate": _fp32_gate(counts, profile),
            "memory": zeros.copy()}


def ann_paper_energy(ann: Mapping[str, float], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Energy (pJ) of the equivalent ANN the way SNN papers compute it: E_MAC × dense MACs of one pass,
    plus the gate's arithmetic as in :func:`ann_cmos_energy`; no activations, no memory."""
    z = np.zeros(())
    return {"synaptic": _get(ann, "macs") * profile.get("mac_pj"), "neuron": z, "spike_traffic": z,
            "gate": _fp32_gate(ann, profile), "memory": z}


def total(breakdown: Mapping[str, np.ndarray]) -> np.ndarray:
    """Σ over categories of an energy breakdown."""
    return sum((np.asarray(v, dtype=np.float64) for v in breakdown.values()), np.zeros(()))


# ---------------------------------------------------------------------------------------------------------------
# The rows of a report
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One energy row: which network, on what, with which profile model, charging what.

    Attributes:
        key: profile.json's scenario key.
        short: a short label for tables and plots.
        model: the profile model whose constants it uses (``neuromorphic`` | ``cmos``).
        network: ``snn`` | ``ann``.
        arithmetic: what each operation is charged (a format string of the profile's constants).
        memory: what the memory term covers.
    """

    key: str
    short: str
    model: str
    network: str
    arithmetic: str
    memory: str


_MEM_SNN = ("SRAM traffic per event: each SynOp reads its {snn_weight_bits:g}-bit weight and reads/writes its "
            "target's {snn_state_bits:g}-bit current; each neuron update reads/writes u and v; 64-bit accesses "
            "to an 8 kB SRAM at {sram_access_64b_pj:g} pJ")
_MEM_ANN = ("SRAM traffic with ideal reuse: each {w:g}-bit weight read once, each {a:g}-bit input read once and "
            "each output written once per inference; same 64-bit 8 kB SRAM model as the SNN rows")

#: The energy rows, in report order.
SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario("snn_chip", "SNN, Loihi 2", "neuromorphic", "snn",
             "Loihi fixed point (8-bit weights, 24-bit state) at per-operation chip energies: SynOp "
             "{synop_pj:g} pJ, neuron update {neuron_update_active_pj:g} / {neuron_update_inactive_pj:g} pJ "
             "(firing / not), spike {spike_in_tile_pj:g} pJ + {hops_per_spike:g} hop × {spike_hop_pj:g} pJ; "
             "a host gate's arithmetic at fp32 45 nm figures",
             "inside the per-operation energies (the cores' own SRAM); no separate term"),
    Scenario("snn_cmos_int", "SNN, 45 nm int", "cmos", "snn",
             "integer at the fixed-point widths: binary SynOp = {snn_int_add_pj:g} pJ ({snn_int_add_name}), graded "
             "SynOp {snn_int8_mac_pj:g} pJ (≤ 8-bit payload) or {snn_int_mac_pj:g} pJ (wider or inside a neuro-core "
             "gate), neuron update {snn_int_neuron_update_pj:g} pJ (2 int32 multiplies + 2 adds)",
             _MEM_SNN),
    Scenario("snn_cmos", "SNN, 45 nm fp32", "cmos", "snn",
             "fp32: binary SynOp = E_AC {ac_pj:g} pJ, graded SynOp = E_MAC {mac_pj:g} pJ, neuron update "
             "{neuron_update_pj:g} pJ",
             _MEM_SNN),
    Scenario("ann_cmos_int8", "ANN, 45 nm int8", "cmos", "ann",
             "int8 weights and activations: MAC {int8_mac_pj:g} pJ (int8 multiply + 32-bit accumulate), ReLU = "
             "int32 compare {int32_add_pj:g} pJ, pool compare {int8_add_pj:g} pJ; dense, one pass",
             _MEM_ANN.replace("{w:g}", "{ann_int_weight_bits:g}").replace("{a:g}", "{ann_int_activation_bits:g}")),
    Scenario("ann_cmos", "ANN, 45 nm fp32", "cmos", "ann",
             "fp32: MAC = E_MAC {mac_pj:g} pJ, activation and pool compare = E_AC {ac_pj:g} pJ; dense, one pass",
             _MEM_ANN.replace("{w:g}", "{ann_weight_bits:g}").replace("{a:g}", "{ann_activation_bits:g}")),
    Scenario("snn_paper", "SNN, paper method", "cmos", "snn",
             "as SNN papers: E_AC {ac_pj:g} pJ × SynOps (+ E_MAC {mac_pj:g} pJ × the first layer's MACs × T when "
             "its input is not spikes); gate arithmetic at fp32; no neuron updates",
             "none (not counted by this method)"),
    Scenario("ann_paper", "ANN, paper method", "cmos", "ann",
             "as SNN papers: E_MAC {mac_pj:g} pJ × dense MACs, one pass; gate arithmetic at fp32; no activations",
             "none (not counted by this method)"),
)}

#: Ratios reported (numerator scenario, denominator scenario).
RATIOS = (("ann_cmos", "snn_chip"), ("ann_cmos", "snn_cmos"), ("ann_cmos_int8", "snn_chip"),
          ("ann_cmos_int8", "snn_cmos_int"), ("ann_paper", "snn_paper"))


def scenario_text(key: str, profiles: Mapping[str, EnergyProfile]) -> dict[str, str]:
    """{"arithmetic", "memory"} of scenario ``key`` with the chosen profiles' values filled in."""
    sc = SCENARIOS[key]
    p = profiles[sc.model]
    values = {k: c.value for k, c in p.constants.items()}
    if sc.model == "cmos":
        values.update({k: c.value for k, c in derived_constants(p).items()})
        values["snn_int_add_name"] = derived_constants(p)["snn_int_add_pj"].derived
    return {"arithmetic": sc.arithmetic.format(**values), "memory": sc.memory.format(**values)}

"""The energy baselines against hand-computed values: integer SNN and int8 ANN at 45 nm, the paper method,
the alternative MAC counts (padding taps, zero weights, T passes), derived constants, and the report rows.

Counts of :func:`synthetic_activity.two_layer_network` (see its docstring): 5 binary SynOps, 8 neuron
updates (2 active), 2 spikes; its equivalent ANN: 10 MACs (3·2 + 2·2), 4 activations, 10 weights, 5
inputs, 4 outputs, T = 2.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from synthetic_activity import small_network, two_layer_network
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.activity import LayerActivity, NetworkActivity
from tcja_deploy.hardware.ann_baseline import ann_counts, ann_layer_counts
from tcja_deploy.hardware.counters import count_network
from tcja_deploy.hardware.profile_doc import ProfileAccumulator
from tcja_deploy.hardware.report_writer import write_report

CMOS = E.get_profile("cmos45nm-horowitz2014")
# Horowitz's 45 nm figures, as the tests state them (pJ)
INT8_ADD, INT8_MULT, INT32_ADD, INT32_MULT, FP_ADD, FP_MAC, SRAM = 0.03, 0.2, 0.1, 3.1, 0.9, 4.6, 10.0


@pytest.fixture
def two_layer():
    net = two_layer_network()
    return count_network(net).total, ann_counts(net.layers)[1]


def test_derived_constants_by_hand():
    d = {k: c.value for k, c in E.derived_constants(CMOS).items()}
    assert d["int8_mac_pj"] == pytest.approx(INT8_MULT + INT32_ADD)  # 32-bit accumulator
    assert d["snn_int_add_pj"] == pytest.approx(INT32_ADD)  # 24-bit state → the 32-bit adder
    assert d["snn_int_mac_pj"] == pytest.approx(INT32_MULT + INT32_ADD)
    assert d["snn_int8_mac_pj"] == pytest.approx(INT8_MULT + INT32_ADD)
    assert d["snn_int_neuron_update_pj"] == pytest.approx(2 * INT32_MULT + 2 * INT32_ADD)
    assert all(c.derived and c.citation.startswith("derived") for c in E.derived_constants(CMOS).values())


def test_integer_snn_at_45nm_by_hand(two_layer):
    counts, _ = two_layer
    e = E.snn_cmos_int_energy(counts, CMOS)
    assert e["synaptic"].item() == pytest.approx(5 * INT32_ADD)
    assert e["neuron"].item() == pytest.approx(8 * (2 * INT32_MULT + 2 * INT32_ADD))
    # the memory model of the fp32 row: 5 × (8 + 2·24) + 8 × 4·24 = 1048 bits → /64 × 10 pJ
    assert e["memory"].item() == pytest.approx(1048 / 64 * SRAM)
    assert e["memory"].item() == pytest.approx(E.snn_cmos_energy(counts, CMOS)["memory"].item())
    assert e["spike_traffic"].item() == 0 and e["gate"].item() == 0
    assert E.total(e).item() == pytest.approx(0.5 + 51.2 + 163.75)


def test_integer_snn_graded_synops_and_gate():
    counts = {"synops": np.array([10]), "synops_graded": np.array([4]), "gate_adds": 2, "gate_macs": 3,
              "gate_mults": 5, "gate_lookups": 1}
    e = E.snn_cmos_int_energy(counts, CMOS)  # payload width unknown: the 32-bit multiplier
    assert e["synaptic"].item() == pytest.approx(6 * INT32_ADD + 4 * (INT32_MULT + INT32_ADD))
    assert e["gate"].item() == pytest.approx(2 * INT32_ADD + 3 * (INT32_MULT + INT32_ADD) + 5 * INT32_MULT + 1 * 10.0)


@pytest.mark.parametrize("payload,mult", [(3, INT8_MULT), (8, INT8_MULT), (16, INT32_MULT), (None, INT32_MULT)])
def test_integer_graded_synop_multiplier_follows_the_payload_width(payload, mult):
    counts = {"synops": np.array([10]), "synops_graded": np.array([4])}
    e = E.snn_cmos_int_energy(counts, CMOS, payload_bits=payload)
    assert e["synaptic"].item() == pytest.approx(6 * INT32_ADD + 4 * (mult + INT32_ADD))


def test_profile_charges_each_layers_graded_input_at_its_width():
    net = small_network(N=1, T=4, seed=3)  # the dense layer receives the gate's 4-bit graded output
    counts = count_network(net).layers
    layer = _doc(net)["layers"][3]
    c = counts[3].counts
    binary = c["synops"][0] - c["synops_graded"][0]
    assert c["synops_graded"][0] > 0
    assert layer["energy_pj"]["snn_cmos_int"]["by_category"]["synaptic"] == pytest.approx(
        binary * INT32_ADD + c["synops_graded"][0] * (INT8_MULT + INT32_ADD))


@pytest.mark.parametrize("state_bits,add", [(8, INT8_ADD), (16, INT32_ADD), (24, INT32_ADD), (40, 2 * INT32_ADD)])
def test_integer_adder_follows_the_profiles_state_width(tmp_path, state_bits, add):
    p = tmp_path / "w.toml"
    p.write_text(f'base = "cmos45nm-horowitz2014"\n[constants]\nsnn_state_bits = {state_bits}\n')
    prof = E.load_profile_file(p)
    e = E.snn_cmos_int_energy({"synops": np.array([7])}, prof)
    assert e["synaptic"].item() == pytest.approx(7 * add)


def test_int8_ann_by_hand(two_layer):
    _, ann = two_layer
    e = E.ann_int8_energy(ann, CMOS)
    assert e["synaptic"].item() == pytest.approx(10 * (INT8_MULT + INT32_ADD))
    assert e["neuron"].item() == pytest.approx(4 * INT32_ADD)  # ReLU on the 32-bit accumulator
    # ideal reuse, 8-bit: (10 weights + 5 inputs + 4 outputs) × 8 bits = 152 bits → /64 × 10 pJ
    assert e["memory"].item() == pytest.approx(152 / 64 * SRAM)
    assert E.total(e).item() == pytest.approx(3.0 + 0.4 + 23.75)
    # the fp32 ANN on the same counts, with the same memory model at 32 bits
    assert E.ann_cmos_energy(ann, CMOS)["memory"].item() == pytest.approx(4 * 152 / 64 * SRAM)


def test_int8_ann_pool_and_gate():
    ann = {"compares": 6, "gate_adds": 2, "gate_macs": 3, "gate_mults": 4, "gate_lookups": 1}
    e = E.ann_int8_energy(ann, CMOS)
    assert e["neuron"].item() == pytest.approx(6 * INT8_ADD)
    assert e["gate"].item() == pytest.approx(2 * INT32_ADD + 3 * (INT8_MULT + INT32_ADD) + 4 * INT8_MULT + 10.0)


def test_paper_method_by_hand(two_layer):
    counts, ann = two_layer
    snn, annp = E.snn_paper_energy(counts, CMOS), E.ann_paper_energy(ann, CMOS)
    assert E.total(snn).item() == pytest.approx(5 * FP_ADD)  # E_AC × SynOps, nothing else
    assert E.total(annp).item() == pytest.approx(10 * FP_MAC)  # E_MAC × dense MACs, one pass
    for cat in ("neuron", "spike_traffic", "memory"):
        assert snn[cat].item() == 0 and annp[cat].item() == 0
    # a first layer that encodes real values: its 6 MACs × T = 2 at E_MAC replace its SynOps
    enc = E.snn_paper_energy({"synops": np.array([3])}, CMOS, encoder_macs=12)
    assert enc["synaptic"].item() == pytest.approx(12 * FP_MAC)


def _conv_layer(weight: np.ndarray, T: int = 2) -> LayerActivity:
    x = np.zeros((T, 1, 1, 3, 3), dtype=np.float32)
    return LayerActivity("c", "conv", (1, 3, 3), (1, 3, 3), x, x.copy(), weight=weight, stride=1, padding=1)


def test_alternative_mac_counts_of_a_padded_conv_by_hand():
    # 3×3 input, 3×3 kernel, padding 1: 9 outputs × 9 taps = 81 dense; in-bounds taps: 4 corners × 4 +
    # 4 edges × 6 + centre 9 = 49; the centre tap's weight is 0 and is in bounds for all 9 outputs: 40.
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    w[0, 0, 1, 1] = 0.0
    c = ann_layer_counts(_conv_layer(w, T=2))
    assert (c["macs"], c["macs_no_padding"], c["macs_nonzero"]) == (81, 49, 40)
    assert (c["macs_x_steps"], c["macs_nonzero_x_steps"]) == (162, 80)


def test_alternative_mac_counts_of_a_dense_layer_by_hand():
    per, tot = ann_counts(two_layer_network().layers)
    # A: [[1, 0, 2], [0, 3, 0]] → 6 dense, 3 non-zero; B: [[1, 1], [1, 0]] → 4 dense, 3 non-zero; T = 2
    assert [(p["macs"], p["macs_no_padding"], p["macs_nonzero"]) for p in per] == [(6, 6, 3), (4, 4, 3)]
    assert (tot["macs_x_steps"], tot["macs_nonzero_x_steps"]) == (20, 12)
    # no padding and no zero weights = the synapses a SynOp count uses
    assert [p["macs_nonzero"] for p in per] == [lc.synapses for lc in count_network(two_layer_network()).layers]


META = {"backend": "synthetic", "deploy": {"dir": "d", "hash": "h", "preset": "p", "dataset": "none", "T": 2},
        "versions": {}, "samples": {"requested": 1, "split": "test", "first_index": 0, "selected": 1}}


def _doc(net: NetworkActivity) -> dict:
    acc = ProfileAccumulator(profiles=E.resolve_profiles())
    acc.add(net)
    return acc.build(META, partial=False)


def test_profile_rows_conventions_and_ratios_by_hand():
    e = _doc(two_layer_network())["energy"]
    sc = e["scenarios"]
    assert list(sc) == list(E.SCENARIOS)
    expect = {"snn_cmos_int": 0.5 + 51.2 + 163.75, "ann_cmos_int8": 3.0 + 0.4 + 23.75, "snn_paper": 5 * FP_ADD,
              "ann_paper": 10 * FP_MAC, "ann_cmos": 46 + 3.6 + 95, "snn_cmos": 4.5 + 73.6 + 163.75}
    for key, pj in expect.items():
        assert sc[key]["total"]["mean"] == pytest.approx(pj), key
    for s in sc.values():
        assert s["arithmetic"] and s["memory"] and s["status"] == "estimate"
    assert "ideal reuse" in sc["ann_cmos_int8"]["memory"] and "8-bit" in sc["ann_cmos_int8"]["memory"]
    assert "int32" in sc["snn_cmos_int"]["arithmetic"] and "none" in sc["snn_paper"]["memory"]
    assert e["ratios"]["ann_paper_over_snn_paper"] == pytest.approx(46 / 4.5)
    assert e["ratios"]["ann_cmos_int8_over_snn_cmos_int"] == pytest.approx(27.15 / 215.45)
    m = e["conventions"]["ann_macs"]
    assert (m["dense"], m["no_padding"], m["no_padding_no_zeros"], m["dense_x_T"]) == (10, 10, 6, 20)
    assert m["dense_excess_over_no_padding_no_zeros"] == pytest.approx(10 / 6 - 1)
    assert e["conventions"]["T"] == 2 and e["conventions"]["synops"]["mean"] == 5
    pm = e["paper_method"]
    assert pm["first_layer_charged_as"] == "SynOps" and pm["encoder_macs"] == 12
    assert pm["snn_pj_first_layer_as_macs"] == pytest.approx(12 * FP_MAC + 2 * FP_ADD)
    assert e["profiles"]["cmos45nm-horowitz2014"]["derived"]["int8_mac_pj"]["value"] == pytest.approx(0.3)


def test_graded_first_layer_is_charged_as_macs_by_the_paper_method():
    net = two_layer_network()
    a = net.layers[0]
    net.layers[0] = LayerActivity(a.name, a.kind, a.in_shape, a.out_shape, a.input_spikes * 0.5, a.output_spikes,
                                  weight=a.weight, input_payload_bits=8)
    doc = _doc(net)
    layer_a = doc["layers"][0]["energy_pj"]["snn_paper"]["total"]["mean"]
    assert layer_a == pytest.approx(6 * 2 * FP_MAC)  # 6 MACs per step × T = 2, not its 3 SynOps × E_AC
    assert doc["energy"]["paper_method"]["first_layer_charged_as"] == "MACs"
    assert doc["energy"]["paper_method"]["snn_pj_first_layer_as_synops"] == pytest.approx(5 * FP_ADD)


def test_user_profile_changes_the_derived_constants(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"base": "cmos45nm-horowitz2014", "constants": {"int32_mult_pj": 1.0}}))
    cmos = E.resolve_profiles(p)["cmos"]
    d = cmos.to_dict()["derived"]
    assert d["snn_int_neuron_update_pj"]["value"] == pytest.approx(2 * 1.0 + 2 * INT32_ADD)
    assert d["snn_int_neuron_update_pj"]["citation"] == f"derived (ours) from {cmos.name}"


@pytest.mark.parametrize("text,needle", [
    ('base = "cmos45nm-horowitz2014"\n[constants]\nint8_add_pj = -1\n', "must be a finite number"),
    ('base = "cmos45nm-horowitz2014"\n[constants]\nint8_ad_pj = 1\n', "unknown constant 'int8_ad_pj'"),
])
def test_new_constants_are_validated_like_the_others(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(UserError) as info:
        E.load_profile_file(p)
    assert needle in str(info.value) and str(p) in str(info.value) and "\n" not in str(info.value)


def test_a_cmos_file_without_base_needs_the_integer_constants(tmp_path):
    consts = {k: 1.0 for k in E.REQUIRED["cmos"] if k != "int8_mult_pj"}
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"model": "cmos", "constants": consts}))
    with pytest.raises(UserError, match="missing constant 'int8_mult_pj'"):
        E.load_profile_file(p)


def test_constants_cite_a_source_or_say_they_are_derived():
    cmos = E.get_profile("cmos45nm-horowitz2014").constants
    assert cmos["neuron_update_pj"].citation.startswith("derived") and "2 × mac_pj" in cmos["neuron_update_pj"].derived
    assert cmos["mac_pj"].derived and cmos["mac_pj"].value == pytest.approx(cmos["mult_pj"].value + cmos["ac_pj"].value)
    for key in ("int8_add_pj", "int8_mult_pj", "int32_add_pj", "int32_mult_pj"):
        assert "Horowitz" in cmos[key].citation and "Fig. 1.1.9" in cmos[key].citation
    assert E.get_profile("loihi-davies2018").constants["spike_hop_pj"].derived


def test_report_shows_every_row_the_conventions_and_the_paper_method(tmp_path):
    net = small_network(N=2, T=4, seed=1)
    acc = ProfileAccumulator(profiles=E.resolve_profiles())
    acc.add(net)
    doc = acc.build(META, partial=False)
    prof = tmp_path / "profile"
    prof.mkdir()
    (prof / "profile.json").write_text(json.dumps(doc))
    write_report(prof, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    for needle in ("## Energy baselines", "## Counting conventions", "## The paper method beside ours",
                   "memory term covers", "padding taps", "zero weights", "one pass", "derived from",
                   "int8_mac_pj", "snn_int_neuron_update_pj", *(s.short for s in E.SCENARIOS.values())):
        assert needle in md, needle
    rows = list(csv.DictReader((tmp_path / "report" / "layers.csv").open()))
    assert all(f"energy_{k}_pj_mean" in rows[0] for k in E.SCENARIOS)
    assert float(rows[0]["energy_ann_cmos_int8_pj_mean"]) == pytest.approx(
        doc["layers"][0]["energy_pj"]["ann_cmos_int8"]["total"]["mean"])

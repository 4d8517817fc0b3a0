"""Energy arithmetic against hand-computed values; profiles, their citations and user profile files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthetic_activity import two_layer_network
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.ann_baseline import ann_counts
from tcja_deploy.hardware.counters import count_network


@pytest.fixture
def two_layer():
    net = two_layer_network()
    return count_network(net).total, ann_counts(net.layers)[1]


def test_loihi_energy_by_hand(two_layer):
    counts, _ = two_layer
    e = E.snn_chip_energy(counts, E.get_profile("loihi-davies2018"))
    # 5 SynOps × 23.6; 2 active × 81 + 6 inactive × 52; 2 spikes × (1.7 + 1 hop × 3.5)
    assert e["synaptic"].item() == pytest.approx(5 * 23.6)
    assert e["neuron"].item() == pytest.approx(2 * 81 + 6 * 52)
    assert e["spike_traffic"].item() == pytest.approx(2 * 5.2)
    assert e["gate"].item() == 0 and e["memory"].item() == 0
    assert E.total(e).item() == pytest.approx(602.4)


def test_cmos_snn_energy_by_hand(two_layer):
    counts, _ = two_layer
    e = E.snn_cmos_energy(counts, E.get_profile("cmos45nm-horowitz2014"))
    assert e["synaptic"].item() == pytest.approx(5 * 0.9)
    assert e["neuron"].item() == pytest.approx(8 * 9.2)
    # bits: 5 SynOps × (8 + 2·24) + 8 updates × 4·24 = 280 + 768 = 1048 → /64 × 10 pJ
    assert e["memory"].item() == pytest.approx(1048 / 64 * 10)
    assert E.total(e).item() == pytest.approx(4.5 + 73.6 + 163.75)


def test_ann_energy_by_hand(two_layer):
    _, ann = two_layer
    assert ann["macs"] == 10 and ann["activations"] == 4 and ann["outputs"] == 4
    assert ann["weights"] == 10 and ann["inputs"] == 5
    e = E.ann_cmos_energy(ann, E.get_profile("cmos45nm-horowitz2014"))
    assert e["synaptic"].item() == pytest.approx(10 * 4.6)
    assert e["neuron"].item() == pytest.approx(4 * 0.9)
    # ideal reuse: 10 weights × 32 + (5 inputs + 4 outputs) × 32 = 608 bits → /64 × 10 pJ
    assert e["memory"].item() == pytest.approx(95.0)
    assert E.total(e).item() == pytest.approx(46 + 3.6 + 95)


def test_graded_synops_cost_a_mac_at_45nm():
    counts = {"synops": np.array([10]), "synops_graded": np.array([4])}
    e = E.snn_cmos_energy(counts, E.get_profile("cmos45nm-horowitz2014"))
    assert e["synaptic"].item() == pytest.approx(6 * 0.9 + 4 * 4.6)


def test_gate_energy_uses_its_constants():
    counts = {"gate_adds": 10, "gate_macs": 100, "gate_mults": 20, "gate_lookups": 5}
    e = E.snn_chip_energy(counts, E.get_profile("loihi-davies2018"))
    assert e["gate"].item() == pytest.approx(10 * 0.9 + 100 * 4.6 + 20 * 3.7 + 5 * 10.0)


def test_every_builtin_constant_has_a_value_unit_and_citation():
    for p in E.PROFILES.values():
        p.check()
        for key, c in p.constants.items():
            assert c.citation and c.unit, key
        assert set(p.constants) == set(E.REQUIRED[p.model])
    assert "Loihi 2" in E.get_profile("loihi-davies2018").caveat
    assert E.get_profile("measured").status == "measured"


def test_unknown_builtin_profile_is_a_user_error():
    with pytest.raises(UserError, match="unknown energy profile 'nope'"):
        E.get_profile("nope")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_user_toml_profile_with_base_replaces_the_chip_profile(tmp_path):
    p = _write(tmp_path, "mine.toml", """
name = "loihi2-guess"
base = "loihi-davies2018"
description = "a guess"
[constants]
synop_pj = { value = 10.0, citation = "my measurement" }
spike_hop_pj = 2
""")
    chosen = E.resolve_profiles(p)
    neu = chosen["neuromorphic"]
    assert neu.name == "loihi2-guess" and neu.source == str(p)
    assert neu.get("synop_pj") == 10.0 and neu.constants["synop_pj"].citation == "my measurement"
    assert neu.get("spike_hop_pj") == 2.0 and neu.constants["spike_hop_pj"].citation == "user file mine.toml"
    assert neu.get("neuron_update_active_pj") == 81.0  # from the base
    assert chosen["cmos"].name == "cmos45nm-horowitz2014"


def test_user_json_cmos_profile(tmp_path):
    consts = {k: 1.0 for k in E.REQUIRED["cmos"]}
    p = _write(tmp_path, "c.json", json.dumps({"name": "c", "model": "cmos", "constants": consts}))
    chosen = E.resolve_profiles(p)
    assert chosen["cmos"].name == "c" and chosen["neuromorphic"].name == "loihi-davies2018"


def test_missing_constant_is_one_line_naming_file_and_constant(tmp_path):
    consts = {k: 1.0 for k in E.REQUIRED["neuromorphic"] if k != "spike_hop_pj"}
    p = _write(tmp_path, "partial.json", json.dumps({"model": "neuromorphic", "constants": consts}))
    with pytest.raises(UserError) as info:
        E.load_profile_file(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(p) in msg and "missing constant 'spike_hop_pj'" in msg


@pytest.mark.parametrize("text,needle", [
    ('model = "neuromorphic"\n[constants]\nsynop_pjj = 1\n', "unknown constant 'synop_pjj'"),
    ('base = "loihi-davies2018"\n[constants]\nsynop_pj = -1\n', "must be a finite number"),
    ('base = "loihi-davies2018"\n[constants]\nsynop_pj = "abc"\n', "must be a finite number"),
    ('model = "tpu"\n', "'model' must be"),
    ('base = "nope"\n', "unknown base 'nope'"),
    ('this is = not toml [', "not valid TOML"),
])
def test_bad_profile_files_are_one_line_errors(tmp_path, text, needle):
    p = _write(tmp_path, "bad.toml", text)
    with pytest.raises(UserError) as info:
        E.load_profile_file(p)
    assert needle in str(info.value) and str(p) in str(info.value) and "\n" not in str(info.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(UserError, match="cannot read it"):
        E.load_profile_file(tmp_path / "absent.toml")

"""The profile accumulator and the identity a profile records (deploy files, inputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthetic_activity import small_network
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.backends import EmulatorBackend, lava_files
from tcja_deploy.hardware.counters import count_network
from tcja_deploy.hardware.profile_doc import ProfileAccumulator, stat
from tcja_deploy.hardware.profiling import InputHash, profile_batches

META = {"backend": "synthetic", "deploy": {"dir": "d", "hash": "sha256:0", "preset": "p", "dataset": "none", "T": 4},
        "samples": {"requested": 5, "split": "test", "first_index": 0, "selected": 5}}


def test_accumulated_statistics_equal_the_counts_of_all_samples_at_once():
    acc = ProfileAccumulator(profiles=E.resolve_profiles())
    chunks = [small_network(N=2, seed=1), small_network(N=3, seed=2)]
    for c in chunks:
        acc.add(c)
    doc = acc.build(META, partial=False)
    per_chunk = [count_network(c) for c in chunks]
    for i, layer in enumerate(doc["layers"]):
        both = np.concatenate([pc.layers[i].counts["synops"] for pc in per_chunk])
        assert layer["counts"]["synops"] == stat(both)
    assert doc["samples"]["done"] == 5 and doc["layers"][2]["gate"]["squeeze_from"] == "seg0.conv0"


def test_chunks_with_other_layers_are_refused():
    acc = ProfileAccumulator(profiles=E.resolve_profiles())
    acc.add(small_network(N=2))
    other = small_network(N=2)
    other.layers[3].name = "renamed"
    with pytest.raises(ValueError, match="different layers"):
        acc.add(other)


def test_input_hash_does_not_depend_on_the_chunking():
    rng = np.random.default_rng(0)
    frames, labels = rng.random((4, 6, 2, 3, 3)).astype(np.float32), np.arange(6)
    a, b = InputHash(), InputHash()
    a.update(frames, labels)
    for s in (0, 2, 5):
        e = {0: 2, 2: 5, 5: 6}[s]
        b.update(frames[:, s:e], labels[s:e])
    assert a.hexdigest() == b.hexdigest()
    c = InputHash()
    frames[0, 5, 0, 0, 0] += 1
    c.update(frames, labels)
    assert c.hexdigest() != a.hexdigest()


def test_profile_records_every_loaded_deploy_file_and_the_inputs(tiny_deploy_dir, tmp_path):
    deploy = read_deploy(tiny_deploy_dir)
    names = lava_files(deploy)
    assert {"graph.json", "segment_0.net", "gate_0.npz"} <= set(names)
    for n in names:
        deploy.path(n)
    assert set(deploy.file_hashes()) == set(names)
    rng = np.random.default_rng(0)
    frames = (rng.random((4, 3, 2, 8, 8)) < 0.3).astype(np.float32)
    meta = {**META, "deploy": {"dir": str(deploy.dir), "hash": deploy.combined_hash(), "files": deploy.file_hashes()}}
    doc = profile_batches(iter([(frames, np.array([0, 1, 0]))]), EmulatorBackend(), deploy, tmp_path / "p",
                          E.resolve_profiles(), meta, total=3, progress=False)
    expected = InputHash()
    expected.update(frames, np.array([0, 1, 0]))
    assert doc["inputs"]["hash"] == expected.hexdigest() and doc["inputs"]["samples"] == 3
    assert json.loads((tmp_path / "p" / "profile.json").read_text())["deploy"]["files"] == deploy.file_hashes()


@pytest.mark.parametrize("ref", ["../outside.npz", "/etc/passwd", "missing.npz", "link.npz"])
def test_deploy_references_stay_inside_the_directory(tiny_deploy_dir, tmp_path, ref):
    import shutil

    d = tmp_path / "deploy"
    shutil.copytree(tiny_deploy_dir, d)
    (tmp_path / "outside.npz").write_bytes(b"x")
    (d / "link.npz").symlink_to(tmp_path / "outside.npz")
    deploy = read_deploy(d)
    with pytest.raises(UserError, match="graph.json"):
        deploy.path(ref)

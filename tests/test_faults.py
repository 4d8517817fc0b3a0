"""Bad input and faults across the four CLIs: each case exits 2 with one line naming the file or flag, prints no
traceback, and changes no file that existed (hashes before and after). Kill and concurrency cases run as real
processes. Groups (docs/DESIGN.md §10): 1 --out ownership, 2 a kill in the first epoch, 3 two writers, 4 deploy
references outside the directory, 5 corrupt deploy files, 6 values, 7 resume state, 8 corrupt profiles,
9 OS errors, 10 leftovers of killed commands, 11 smaller ones."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from synthetic_activity import SyntheticBackend, synthetic_batches
from tcja_deploy import convert, outputs, profile, report, train
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.profiling import profile_batches
from tcja_deploy.hardware.report_writer import write_report
from tcja_deploy.models.network import TCJASNN
from tcja_deploy.training import checkpoint
from tcja_deploy.training.config import TrainConfig, resolve
from tcja_deploy.training.plan import load_preset
from tcja_deploy.training.state import STATE_FILE, TrainState, save_train_state
from tiny import tiny_run

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).parent
CLIS = {"train": train.main, "convert": convert.main, "profile": profile.main, "report": report.main}
META = {"backend": "synthetic", "deploy": {"dir": "d", "hash": "sha256:0", "preset": "digits", "dataset": "x", "T": 4},
        "versions": {"python": "3.10", "lava-nc": "0.10.0", "lava-dl": "0.6.0", "torch": "2.3.1", "numpy": "1",
                     "tcja_deploy": "0.1.0"},
        "samples": {"requested": 4, "split": "test", "first_index": 0, "selected": 4}}


# ------------------------------------------------------------------------------------------------ fixtures
def _trained(run: Path) -> None:
    """A digits run after 1 of 2 epochs: config.json + train_state.safetensors (Adam after one step)."""
    config = resolve(TrainConfig(preset="digits", epochs=2, T=2, batch_size=4, out=str(run), device="cpu"))
    model_config = load_preset("digits", 2).model
    torch.manual_seed(0)
    model = TCJASNN(model_config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 2, *model_config.input_shape)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    run.mkdir(parents=True)
    checkpoint.save_run_config(run, model_config, config.to_dict())
    history = [{"epoch": 1, "train_loss": 0.1, "train_accuracy": 0.1, "test_loss": 0.1, "test_accuracy": 0.1,
                "lr": 1e-3, "seconds": 1.0}]
    save_train_state(run / STATE_FILE, TrainState(1, model.state_dict(), opt.state_dict(), sched.state_dict(), {},
                                                  config.to_dict(), history))


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_deploy_dir):
    root = tmp_path_factory.mktemp("faults")
    tiny_run(root / "run")
    shutil.copytree(tiny_deploy_dir, root / "deploy")
    profile_batches(synthetic_batches(4, 2), SyntheticBackend(), root, root / "profile", E.resolve_profiles(), META,
                    total=4, progress=False)
    write_report(root / "profile", root / "report")
    _trained(root / "trained")
    (root / "notes").mkdir()
    (root / "notes" / "thesis.tex").write_text("precious")
    (root / "afile").write_text("not a directory")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


# ----------------------------------------------------------------------------------------- the case table
@dataclass
class Case:
    id: str
    group: int
    cli: str
    argv: Callable[[Path], list[str]]
    expect: str  # a substring of the error line (the file or flag it names)
    setup: Callable[[Path], None] = lambda root: None


def _json_edit(path: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / path
        doc = json.loads(p.read_text())
        fn(doc)
        p.write_text(json.dumps(doc))
    return setup


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _set_layer(i: int, **fields):
    def fn(doc):
        doc["model"]["layers"][i].update(fields)
    return fn


def _weights(fn: Callable[[dict], None], file: str = "run/model.safetensors") -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / file
        state = load_file(str(p))
        fn(state)
        save_file(state, str(p))
    return setup


def _state(fn: Callable[[dict, dict], None]) -> Callable[[Path], None]:
    """Edit the tensors and the JSON header of trained/train_state.safetensors."""
    def setup(root: Path) -> None:
        from safetensors import safe_open

        p = root / "trained" / STATE_FILE
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        doc = json.loads(meta["train_state"])
        fn(tensors, doc)
        meta["train_state"] = json.dumps(doc)
        save_file(tensors, str(p), metadata=meta)
    return setup


def _write(path: str, data: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / path).write_bytes(data)
    return setup


def _truncate(path: str, keep: int = 100) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / path
        p.write_bytes(p.read_bytes()[:keep])
    return setup


def _pickled_npz(path: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        with open(root / path, "wb") as f:
            np.savez(f, names=np.array([{"a": 1}], dtype=object))
    return setup


def _symlink_out(path: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / path
        p.unlink()
        p.symlink_to(root / "notes" / "thesis.tex")
    return setup


def _killed_convert(root: Path) -> None:
    tmp = root / ".deploy.999999999.abcd"
    shutil.copytree(root / "deploy", tmp)
    (tmp / "fidelity.json").unlink()
    (tmp / outputs.MARKER).unlink()


def _incomplete_marker(root: Path) -> None:
    outputs.write_marker(root / "deploy", "deploy", complete=False)


def _energy_file(doc) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / "energy.json").write_text(json.dumps(doc))
    return setup


R, D, P = "run", "deploy", "profile"
TRAIN = ["--preset", "digits", "--device", "cpu"]
CASES = [
    # 1: --out that a command may not replace
    Case("report-out-run-dir", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/{R}"], "run directory"),
    Case("report-out-file", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/afile"], "not a directory"),
    Case("report-out-profile-dir", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/{P}"], "input"),
    Case("report-out-parent-of-profile", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}"], "input"),
    Case("report-out-deploy-dir", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/{D}"], "deploy"),
    Case("report-out-foreign-dir", 1, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/notes"],
         "no tcja_deploy command wrote"),
    Case("convert-out-run-dir", 1, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/{R}"], "input"),
    Case("convert-out-file", 1, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/afile"], "not a directory"),
    Case("convert-out-report-dir", 1, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/report"], "report"),
    Case("convert-out-foreign-dir", 1, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/notes"],
         "no tcja_deploy command wrote"),
    Case("profile-out-deploy-dir", 1, "profile", lambda r: ["--deploy", f"{r}/{D}", "--out", f"{r}/{D}"], "input"),
    Case("profile-out-run-dir", 1, "profile", lambda r: ["--deploy", f"{r}/{D}", "--out", f"{r}/{R}"], "run"),
    Case("train-out-deploy-dir", 1, "train", lambda r: [*TRAIN, "--out", f"{r}/{D}"], "deploy"),
    Case("train-out-file", 1, "train", lambda r: [*TRAIN, "--out", f"{r}/afile"], "not a directory"),
    Case("train-out-foreign-dir", 1, "train", lambda r: [*TRAIN, "--out", f"{r}/notes"], "no tcja_deploy command"),
    # 4: deploy references leading outside the directory
    Case("gate-file-parent", 4, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"], "thesis.tex",
         _json_edit("deploy/graph.json", lambda d: d["gates"][0].update(file="../notes/thesis.tex"))),
    Case("segment-file-absolute", 4, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"],
         "plain name", _json_edit("deploy/graph.json", lambda d: d["segments"][0].update(file="/etc/hostname"))),
    Case("gate-file-symlink-out", 4, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"],
         "outside", _symlink_out("deploy/gate_0.npz")),
    Case("segment-file-missing", 4, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"], "missing",
         _json_edit("deploy/graph.json", lambda d: d["segments"][1].update(file="nowhere.net"))),
    # 5: corrupt deploy files
    Case("gate-npz-truncated", 5, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"], "gate_0.npz",
         _truncate("deploy/gate_0.npz")),
    Case("gate-npz-pickled", 5, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"], "gate_1.npz",
         _pickled_npz("deploy/gate_1.npz")),
    Case("gate-npz-wrong-keys", 5, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"], "lacks",
         lambda r: np.savez(r / "deploy" / "gate_0.npz", x=np.zeros(2))),
    Case("segment-net-garbage", 5, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"],
         "segment_0.net", _write("deploy/segment_0.net", b"garbage" * 50)),
    Case("segment-net-truncated", 5, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "lava-sim"],
         "segment_1.net", _truncate("deploy/segment_1.net", 1000)),
    Case("graph-node-list-for-object", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "graph.json",
         _json_edit("deploy/graph.json", lambda d: d["nodes"].__setitem__(1, ["conv2d"]))),
    Case("graph-T-string", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "meta.T",
         _json_edit("deploy/graph.json", lambda d: d["meta"].update(T="4"))),
    Case("graph-nan-scalar", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "graph.json",
         _json_edit("deploy/graph.json", lambda d: _node(d, "gate0").update(payload_scale=float("nan")))),
    Case("graph-swapped-shape", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "graph.json",
         _json_edit("deploy/graph.json", lambda d: _node(d, "conv1")["weight"].update(
             shape=list(reversed(_node(d, "conv1")["weight"]["shape"]))))),
    Case("graph-huge-T", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "meta.T",
         _json_edit("deploy/graph.json", lambda d: d["meta"].update(T=10**7))),
    Case("graph-not-json", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "graph.json",
         _write("deploy/graph.json", b"{nodes: [")),
    Case("graph-missing", 5, "profile", lambda r: ["--deploy", f"{r}/{R}"], "no graph.json"),
    Case("graph-segments-not-list", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "segments",
         _json_edit("deploy/graph.json", lambda d: d.update(segments={"file": "x"}))),
    Case("graph-unknown-node-type", 5, "profile", lambda r: ["--deploy", f"{r}/{D}"], "unknown node type",
         _json_edit("deploy/graph.json", lambda d: d["nodes"][2].update(type="mystery"))),
    # 6: values never checked before
    Case("run-negative-T", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "T",
         _json_edit("run/config.json", lambda d: d["model"].update(T=-3))),
    Case("run-string-channels", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "out_channels",
         _json_edit("run/config.json", _set_layer(0, out_channels="16"))),
    Case("run-negative-kernel", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "kernel_size",
         _json_edit("run/config.json", _set_layer(0, kernel_size=-3))),
    Case("run-2d-input", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "input_shape",
         _json_edit("run/config.json", lambda d: d["model"].update(input_shape=[8, 8]))),
    Case("run-zero-voters", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "voters",
         _json_edit("run/config.json", _set_layer(-1, voters=0))),
    Case("run-string-tau", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "tau_mem",
         _json_edit("run/config.json", _set_layer(2, tau_mem="2"))),
    Case("run-huge-T", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "T",
         _json_edit("run/config.json", lambda d: d["model"].update(T=10**7))),
    Case("run-nan-weights", 6, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new"], "NaN",
         _weights(lambda s: s[next(k for k in s if k.endswith("weight"))].fill_(float("nan")))),
    Case("graph-huge-weights", 6, "profile", lambda r: ["--deploy", f"{r}/{D}"], "weight",
         _json_edit("deploy/graph.json", lambda d: _node(d, "conv0")["weight"].update(
             data=[10**6] * len(_node(d, "conv0")["weight"]["data"])))),
    Case("graph-nan-weights", 6, "profile", lambda r: ["--deploy", f"{r}/{D}"], "NaN",
         _json_edit("deploy/graph.json", lambda d: _node(d, "gate0")["params"]["x_unit"].update(
             data=[float("nan")] * len(_node(d, "gate0")["params"]["x_unit"]["data"])))),
    Case("train-lr-inf", 6, "train", lambda r: [*TRAIN, "--lr", "inf", "--out", f"{r}/new"], "--lr"),
    Case("train-lr-nan", 6, "train", lambda r: [*TRAIN, "--lr", "nan", "--out", f"{r}/new"], "--lr"),
    Case("train-seed-huge", 6, "train", lambda r: [*TRAIN, "--seed", str(2**70), "--out", f"{r}/new"], "--seed"),
    Case("train-T-huge", 6, "train", lambda r: [*TRAIN, "--T", "100000", "--out", f"{r}/new"], "--T"),
    Case("train-batch-zero", 6, "train", lambda r: [*TRAIN, "--batch-size", "0", "--out", f"{r}/new"], "--batch-size"),
    Case("train-memory", 6, "train", lambda r: [*TRAIN, "--T", "4000", "--batch-size", "100000", "--out", f"{r}/new"],
         "GiB"),
    # 7: the resume checkpoint is not trusted
    Case("resume-wrong-moment-shape", 7, "train", lambda r: ["--resume", f"{r}/trained"], "exp_avg",
         _state(lambda t, d: t.__setitem__("optimizer.state.0.exp_avg", torch.zeros(3)))),
    Case("resume-string-lr", 7, "train", lambda r: ["--resume", f"{r}/trained"], "lr",
         _state(lambda t, d: d["optimizer"]["param_groups"][0].update(lr="fast"))),
    Case("resume-nan-weights", 7, "train", lambda r: ["--resume", f"{r}/trained"], "NaN",
         _state(lambda t, d: t[next(k for k in t if k.startswith("model.") and k.endswith("weight"))]
                .fill_(float("nan")))),
    Case("resume-truncated", 7, "train", lambda r: ["--resume", f"{r}/trained"], STATE_FILE,
         _truncate(f"trained/{STATE_FILE}", 300)),
    Case("resume-missing-params", 7, "train", lambda r: ["--resume", f"{r}/trained"], "parameters",
         _state(lambda t, d: d["optimizer"]["param_groups"][0].update(params=[0, 1]))),
    # 8: corrupt profiles
    Case("profile-no-layers", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "layers",
         _json_edit("profile/profile.json", lambda d: d.pop("layers"))),
    Case("profile-no-energy", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "energy",
         _json_edit("profile/profile.json", lambda d: d.pop("energy"))),
    Case("profile-string-counts", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "counts",
         _json_edit("profile/profile.json", lambda d: d["layers"][0]["counts"]["spikes"].update(mean="many"))),
    Case("profile-nan-count", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "finite",
         _json_edit("profile/profile.json", lambda d: d["total"]["counts"]["synops"].update(mean=float("nan")))),
    Case("profile-not-json", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "profile.json",
         _write("profile/profile.json", b"[1, 2")),
    Case("raster-garbage", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "raster.npz",
         _write("profile/raster.npz", b"garbage")),
    Case("raster-pickled", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "raster.npz",
         _pickled_npz("profile/raster.npz")),
    Case("raster-wrong-keys", 8, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/new"], "raster.npz",
         lambda r: np.savez(r / "profile" / "raster.npz", names=np.array(["a", "b"]))),
    # 9: OS errors
    Case("report-out-under-file", 9, "report", lambda r: ["--profile", f"{r}/{P}", "--out", f"{r}/afile/sub"],
         "afile"),
    Case("profile-out-under-file", 9, "profile", lambda r: ["--deploy", f"{r}/{D}", "--out", f"{r}/afile/sub"],
         "afile"),
    Case("train-out-under-file", 9, "train", lambda r: [*TRAIN, "--out", f"{r}/afile/sub"], "afile"),
    Case("convert-run-is-file", 9, "convert", lambda r: ["--run", f"{r}/afile", "--out", f"{r}/new"], "afile"),
    # 10: leftovers of killed commands
    Case("profile-of-killed-convert-tmp", 10, "profile", lambda r: ["--deploy", f"{r}/.deploy.999999999.abcd"],
         "incomplete", _killed_convert),
    Case("profile-of-incomplete-marker", 10, "profile", lambda r: ["--deploy", f"{r}/{D}"], "incomplete",
         _incomplete_marker),
    # 11: smaller
    Case("energy-profile-list-for-string", 11, "profile",
         lambda r: ["--deploy", f"{r}/{D}", "--energy-profile", f"{r}/energy.json"], "energy.json",
         _energy_file({"model": ["cmos"], "base": "cmos45nm-horowitz2014"})),
    Case("energy-profile-list-for-table", 11, "profile",
         lambda r: ["--deploy", f"{r}/{D}", "--energy-profile", f"{r}/energy.json"], "constants",
         _energy_file({"base": "cmos45nm-horowitz2014", "constants": [1, 2]})),
    Case("profile-chunk-zero", 11, "profile", lambda r: ["--deploy", f"{r}/{D}", "--chunk", "0"], "--chunk"),
    Case("profile-samples-zero", 11, "profile", lambda r: ["--deploy", f"{r}/{D}", "--samples", "0"], "--samples"),
    Case("convert-unknown-flag", 11, "convert", lambda r: ["--run", f"{r}/{R}", "--out", f"{r}/new", "--bogus"],
         "--bogus"),
    Case("convert-missing-flag", 11, "convert", lambda r: ["--out", f"{r}/new"], "--run"),
    Case("report-unknown-flag", 11, "report", lambda r: ["--profile", f"{r}/{P}", "--bogus"], "--bogus"),
    Case("profile-bad-backend", 11, "profile", lambda r: ["--deploy", f"{r}/{D}", "--backend", "tpu"], "--backend"),
    Case("train-bad-recipe", 11, "train", lambda r: [*TRAIN, "--recipe", "magic"], "--recipe"),
    Case("train-reference-recipe-digits", 11, "train", lambda r: [*TRAIN, "--recipe", "reference",
                                                                  "--out", f"{r}/new"], "reference"),
]


def test_the_table_covers_every_group_with_enough_cases():
    assert len(CASES) >= 60
    assert {c.group for c in CASES} | {2, 3} == set(range(1, 12))  # 2 and 3: real-process tests below
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c.group}-{c.id}")
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, base, tmp_path, capsys):
    import re

    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    case.setup(root)
    before = snapshot(root)
    code = CLIS[case.cli](case.argv(root))
    out, err = capsys.readouterr()
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (case.id, err[-2000:])
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert re.search(case.expect, lines[0]), (case.expect, lines[0])
    assert snapshot(root) == before, "a file changed"


def test_a_full_disk_during_report_writes_nothing(base, tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(root / "new" / "profile.json"))

    monkeypatch.setattr(shutil, "copyfile", full)
    before = snapshot(root)
    assert report.main(["--profile", str(root / "profile"), "--out", str(root / "new")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "profile.json" in err[0]
    assert snapshot(root) == before


def test_a_full_disk_during_profile_leaves_no_raster_without_profile(tmp_path, monkeypatch):
    from tcja_deploy import atomic

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "profile.json")

    monkeypatch.setattr(atomic, "write_json", full)
    with pytest.raises(OSError):
        profile_batches(synthetic_batches(2, 2), SyntheticBackend(), tmp_path, tmp_path / "p", E.resolve_profiles(),
                        META, total=2, progress=False)
    assert not (tmp_path / "p" / "raster.npz").exists()


def test_stale_temporaries_of_a_killed_convert_are_removed(base, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    _killed_convert(root)
    mine = root / f".deploy.{os.getpid()}.live"
    mine.mkdir()
    removed = outputs.clean_stale_temporaries(root / "deploy")
    assert removed == [root / ".deploy.999999999.abcd"] and mine.exists()


def test_convert_of_an_unknown_preset_warns(base, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    assert convert.main(["--run", str(root / "run"), "--out", str(root / "new"), "--lava-samples", "0"]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "random spikes" in out
    assert json.loads((root / "new" / "fidelity.json").read_text())["data"]["source"] == "random"
    assert oct((root / "new" / "graph.json").stat().st_mode)[-3:] == "644"


# ------------------------------------------------------------------ real processes: kills and concurrency
FAKE = [sys.executable, str(HERE / "training" / "fake_train_cli.py")]
FLAGS = ["--preset", "digits", "--T", "4", "--batch-size", "8", "--epochs", "2", "--device", "cpu", "--seed", "1"]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.05)


def _env(delay: float) -> dict:
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{HERE / 'training'}", OMP_NUM_THREADS="1",
                FAKE_ITEM_DELAY=str(delay))


def _train(run: Path, delay: float) -> subprocess.Popen:
    """The fake training CLI into ``run`` (``delay`` seconds per item), started."""
    return subprocess.Popen([*FAKE, *FLAGS, "--out", str(run)], env=_env(delay), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_group2_a_kill_in_the_first_epoch_leaves_a_run_that_a_rerun_recovers(tmp_path):
    run = tmp_path / "run"
    proc = _train(run, 0.05)
    _wait_for(run / "config.json", proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert (run / "config.json").exists() and not (run / STATE_FILE).exists()  # stranded
    _, err = (again := _train(run, 0.0)).communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    assert (run / "metrics.json").exists()


@pytest.mark.slow
def test_group3_a_second_writer_stops_with_one_line_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    # the first is slow (≈5 s per epoch): the second arrives while it is in its first epoch
    first = _train(run, 0.1)
    _wait_for(run / "config.json", first)
    second = _train(run, 0.0)
    _, second_err = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1[-2000:]
    lines = [line for line in second_err.strip().splitlines() if line.startswith("error")]
    assert second.returncode == 2 and "Traceback" not in second_err
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0], second_err[-1000:]

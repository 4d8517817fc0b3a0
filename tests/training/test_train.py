"""Training stage: config, run directory, determinism, resume, errors (tiny runs on a fake dataset)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tcja_deploy import train as train_cli
from tcja_deploy.errors import UserError
from tcja_deploy.models.presets import get_preset
from tcja_deploy.training import checkpoint, loop
from tcja_deploy.training.config import TrainConfig, resolve
from tcja_deploy.training.loop import train
from tcja_deploy.training.state import STATE_FILE, load_train_state

from train_fakes import FAKE_SHAPE

EPOCH_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "seconds"}


def tiny(out: Path, **overrides) -> TrainConfig:
    """A run of 2 epochs at T=2 on the fake data (48 train / 20 test samples)."""
    fields = dict(preset="digits", T=2, epochs=2, batch_size=16, device="cpu", out=str(out))
    fields.update(overrides)
    return TrainConfig(**fields)


#: Settings under which the fake data is learned within 3 epochs (the metrics change from epoch to epoch).
LEARNING = dict(T=4, lr=0.05, batch_size=8)


def quiet(config: TrainConfig, log=lambda line: None) -> dict:
    return train(config, progress=False, log=log)


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def read_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- config ------------------------------------------------------------------------------------------------------


def test_unset_fields_take_preset_defaults():
    preset = get_preset("digits")
    config = resolve(TrainConfig())
    assert (config.preset, config.epochs, config.batch_size, config.lr, config.loss, config.T) == (
        "digits", preset.epochs, preset.batch_size, preset.lr, preset.loss, preset.model.T)
    assert config.encoding == "events"
    given = resolve(TrainConfig(epochs=3, lr=0.5, loss="ce", T=4))
    assert (given.epochs, given.lr, given.loss, given.T) == (3, 0.5, "ce", 4)


def test_cli_flags_are_the_config_fields():
    parser = train_cli.build_parser()
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(TrainConfig)}
    config = train_cli.parse_config(["--epochs", "3", "--no-augment", "--encoding", "images", "--max-samples", "5",
                                     "--data-dir", "d", "--batch-size", "7", "--amp", "--T", "4"])
    assert config == TrainConfig(epochs=3, augment=False, encoding="images", max_samples=5, data_dir="d",
                                 batch_size=7, amp=True, T=4)


def test_encoding_selects_the_digits_dataset(fake_data, tmp_path):
    quiet(tiny(tmp_path / "a", encoding="images", epochs=1, augment=True))
    assert fake_data[0][0] == "digits-images"
    assert fake_data[0][1]["augment"] is True and fake_data[0][1]["T"] == 2
    with pytest.raises(UserError, match="digits preset only"):
        quiet(tiny(tmp_path / "b", preset="fashion_mnist", encoding="images"))


# --- a run -------------------------------------------------------------------------------------------------------


def test_tiny_run_writes_a_complete_run_dir(fake_data, tmp_path):
    run = tmp_path / "run"
    metrics = quiet(tiny(run))
    assert {"model.safetensors", "config.json", "metrics.json", "metrics.jsonl", STATE_FILE, ".lock"} == {
        p.name for p in run.iterdir()}  # no temporary files left (.lock: the writer lock, released)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["epochs"] == 2 and saved["preset"] == "digits" and saved["seconds"] > 0
    assert 0 <= saved["test_accuracy"] <= 1 and saved["final_model"] == "last_epoch"
    lines = read_lines(run)
    assert [r["epoch"] for r in lines] == [1, 2] and all(set(r) == EPOCH_KEYS for r in lines)
    assert lines[-1]["test_accuracy"] == saved["test_accuracy"]
    assert lines[1]["lr"] < lines[0]["lr"] == pytest.approx(get_preset("digits").lr)  # cosine annealing
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["input_shape"] == list(FAKE_SHAPE)  # replaced by the dataset's
    assert config["train"]["epochs"] == 2 and config["train"]["device"] == "cpu"
    model = checkpoint.load_model(run)
    state = load_train_state(run / STATE_FILE)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.model.items())
    assert state.epoch == 2 and without_seconds(state.history) == without_seconds(lines)


def test_max_samples_limits_both_splits(fake_data, tmp_path):
    metrics = quiet(tiny(tmp_path / "run", max_samples=10, epochs=1))
    assert (metrics["num_train"], metrics["num_test"]) == (10, 10)


def test_same_seed_same_metrics_and_weights(fake_data, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        quiet(tiny(tmp_path / name, seed=seed, **LEARNING))
    history = without_seconds(read_lines(tmp_path / "a"))
    assert history == without_seconds(read_lines(tmp_path / "b"))
    assert history != without_seconds(read_lines(tmp_path / "c"))
    wa, wb, wc = (load_file(str(tmp_path / n / "model.safetensors")) for n in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # the seed matters


def test_amp_on_cpu_is_a_noop_with_a_warning(fake_data, tmp_path):
    lines: list[str] = []
    metrics = quiet(tiny(tmp_path / "run", amp=True, epochs=1), log=lines.append)
    assert metrics["amp"] is False
    assert any(line.startswith("warning: --amp has no effect on cpu") for line in lines)


# --- resume ------------------------------------------------------------------------------------------------------


class StopAfter:
    """A ``log`` that raises KeyboardInterrupt after ``n`` epoch lines (the checkpoint is already saved)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, line: str) -> None:
        if line.startswith("epoch "):
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


def test_resume_equals_an_uninterrupted_run(fake_data, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    reference = quiet(tiny(full, epochs=3, augment=True, **LEARNING))
    losses = [r["train_loss"] for r in read_lines(full)]
    assert len(set(losses)) == 3, losses  # the comparison below is not between constant metrics
    with pytest.raises(KeyboardInterrupt):
        quiet(tiny(cut, epochs=3, augment=True, **LEARNING), log=StopAfter(1))
    assert not (cut / "metrics.json").exists() and len(read_lines(cut)) == 1
    resumed = quiet(TrainConfig(resume=str(cut), device="cpu"))
    assert without_seconds(read_lines(cut)) == without_seconds(read_lines(full))
    for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "epochs", "best_epoch"):
        assert resumed[key] == reference[key]
    wf, wc = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert wf.keys() == wc.keys() and all(torch.equal(wf[k], wc[k]) for k in wf)
    sf, sc = load_train_state(full / STATE_FILE), load_train_state(cut / STATE_FILE)
    assert sf.scheduler == sc.scheduler
    assert all(torch.equal(sf.optimizer["state"][i]["exp_avg_sq"], sc.optimizer["state"][i]["exp_avg_sq"])
               for i in sf.optimizer["state"])


def test_resume_of_a_finished_run_rewrites_the_same_outputs(fake_data, tmp_path):
    run = tmp_path / "run"
    first = quiet(tiny(run, epochs=1))
    again = quiet(TrainConfig(resume=str(run), device="cpu", preset="digits", epochs=1))
    assert again["test_accuracy"] == first["test_accuracy"] and len(read_lines(run)) == 1


def test_stop_before_the_first_epoch_leaves_nothing(fake_data, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quiet(tiny(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# --- bad input: one line, exit code 2, nothing written -----------------------------------------------------------


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    rc = train_cli.main(argv)
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture
def finished_run(fake_data, tmp_path) -> Path:
    run = tmp_path / "done"
    quiet(tiny(run, epochs=1))
    return run


@pytest.mark.parametrize("argv, words", [
    (["--preset", "nope"], ["'nope'", "unknown preset"]),
    (["--device", "tpu9"], ["'tpu9'", "device"]),
    (["--epochs", "0"], ["--epochs 0", "≥ 1"]),
    (["--lr", "-1"], ["--lr -1", "> 0"]),
    (["--epochs", "x"], ["--epochs", "invalid int"]),
    (["--loss", "l1"], ["--loss", "invalid choice"]),
])
def test_bad_values_fail_with_one_line(argv, words, fake_data, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run_cli([*argv, "--out", str(out)], capsys)
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert all(w in err for w in words), err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails(fake_data, tmp_path, capsys):
    rc, err = run_cli(["--device", "cuda", "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "CUDA is not available" in err and not (tmp_path / "out").exists()


def test_out_that_holds_a_run_is_refused(finished_run, capsys):
    before = (finished_run / "metrics.json").read_bytes()
    rc, err = run_cli(["--out", str(finished_run), "--T", "2"], capsys)
    assert rc == 2 and str(finished_run) in err and "--resume" in err
    assert (finished_run / "metrics.json").read_bytes() == before


def test_resume_from_another_preset_is_refused(finished_run, capsys):
    rc, err = run_cli(["--resume", str(finished_run), "--preset", "fashion_mnist"], capsys)
    assert rc == 2 and "config.json" in err and "'digits'" in err and "fashion_mnist" in err


def test_resume_with_other_hyperparameters_is_refused(finished_run, capsys):
    rc, err = run_cli(["--resume", str(finished_run), "--epochs", "5"], capsys)
    assert rc == 2 and "epochs=1" in err and "--epochs 5" in err


def test_resume_without_checkpoint_is_refused(finished_run, capsys):
    (finished_run / STATE_FILE).unlink()
    rc, err = run_cli(["--resume", str(finished_run)], capsys)
    assert rc == 2 and STATE_FILE in err and "no training-state checkpoint" in err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_resume_from_a_corrupted_checkpoint_is_refused(damage, finished_run, capsys):
    path = finished_run / STATE_FILE
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        path.write_bytes((finished_run / "model.safetensors").read_bytes())  # valid safetensors, wrong kind
    before = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    rc, err = run_cli(["--resume", str(finished_run)], capsys)
    assert rc == 2 and str(path) in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before


def test_resume_of_a_missing_dir_or_config_is_refused(tmp_path, capsys):
    rc, err = run_cli(["--resume", str(tmp_path / "nowhere")], capsys)
    assert rc == 2 and "nowhere" in err and "not found" in err
    (tmp_path / "empty").mkdir()
    rc, err = run_cli(["--resume", str(tmp_path / "empty")], capsys)
    assert rc == 2 and "config.json" in err


def test_compile_traces_a_tiny_run(fake_data, tmp_path, monkeypatch):
    # Dynamo's tracing (where Norse's LIF needs a graph break) with the "eager" backend; inductor's code
    # generation itself takes minutes on 2 CPU cores and is left to GPU runs.
    monkeypatch.setattr(loop, "COMPILE_BACKEND", "eager")
    compiled = quiet(tiny(tmp_path / "compiled", compile=True, epochs=1))
    plain = quiet(tiny(tmp_path / "plain", epochs=1))
    assert compiled["compile"] is True and plain["compile"] is False
    assert compiled["test_accuracy"] == plain["test_accuracy"]
    assert compiled["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    weights = load_file(str(tmp_path / "compiled" / "model.safetensors"))
    assert not any("_orig_mod" in k for k in weights) and checkpoint.load_model(tmp_path / "compiled")


def test_worker_processes_are_deterministic_too(fake_data, tmp_path):
    # Workers draw their seeds (augmentation) from the loader's generator, which is reseeded every epoch.
    for name in ("a", "b"):
        quiet(tiny(tmp_path / name, workers=2, augment=True, epochs=1, **LEARNING))
    assert without_seconds(read_lines(tmp_path / "a")) == without_seconds(read_lines(tmp_path / "b"))


def test_real_digits_images_replace_the_input_shape(tmp_path):
    # The registry's digits-images are 1×32×32 while the digits preset is built for 2×32×32 events.
    metrics = quiet(tiny(tmp_path / "run", encoding="images", max_samples=24, epochs=1))
    assert metrics["dataset"] == "digits-images" and (metrics["num_train"], metrics["num_test"]) == (24, 24)
    model = checkpoint.load_model(tmp_path / "run")
    assert model.config.input_shape == (1, 32, 32)
    assert model(torch.zeros(2, 1, 1, 32, 32)).shape == (1, 10)


def test_causal_and_chip_gate_function_reach_every_tcja_layer(fake_data, tmp_path):
    """--causal / --gate-function pwl: the streaming TCJA trained with the neuro-core gate's sigmoid."""
    from tcja_deploy.models.tcja import TCJA, pwl_sigmoid

    config = train_cli.parse_config(["--causal", "--gate-function", "pwl"])
    assert config.causal and config.gate_function == "pwl"
    run = tmp_path / "run"
    quiet(tiny(run, epochs=1, causal=True, gate_function="pwl"))
    saved = json.loads((run / "config.json").read_text())
    tcja = [layer for layer in saved["model"]["layers"] if layer["type"] == "tcja"]
    assert tcja and all(layer["causal"] and layer["gate_function"] == "pwl" for layer in tcja)
    modules = [m for m in checkpoint.load_model(run).modules() if isinstance(m, TCJA)]
    assert modules and all(m.causal and m.gate_function == "pwl" for m in modules)
    x = torch.linspace(-8, 8, 101)
    assert torch.equal(pwl_sigmoid(x)[[0, -1]], torch.tensor([0.0, 1.0]))
    # resuming cannot change what is computed
    with pytest.raises(UserError, match="gate_function"):
        from tcja_deploy.training.config import merge_resumed

        merge_resumed(TrainConfig(), TrainConfig(gate_function="pwl"), "cfg")

"""``python -m tcja_deploy.feature_net`` end to end on the digits (short runs) and its bad-input paths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tcja_deploy.data.image_sets import load_image_set
from tcja_deploy.feature_net import main
from tcja_deploy.generation.feature_nets import load_feature_net


def test_classifier_on_digits_end_to_end(tmp_path, capsys):
    out = tmp_path / "cls"
    assert main(["--kind", "classifier", "--dataset", "digits", "--epochs", "3", "--out", str(out),
                 "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    metrics = json.loads((out / "metrics.json").read_text())
    assert line.startswith("digits classifier: test accuracy") and str(out) in line
    assert metrics["dataset"] == "digits" and metrics["train_samples"] == 1438 and metrics["test_samples"] == 359
    # three short epochs already separate the ten digits far beyond chance (10 %)
    assert metrics["test_accuracy"] > 0.6
    net = load_feature_net(out)
    test_x, test_y = load_image_set("digits", "test")
    predicted = net.probs(test_x).argmax(1)
    assert float(np.mean(predicted == test_y.numpy())) == pytest.approx(metrics["test_accuracy"])


def test_autoencoder_on_digits_resumes(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["--kind", "autoencoder", "--dataset", "digits", "--epochs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert main(["--kind", "autoencoder", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--resume",
                 "--no-progress"]) == 0
    second = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]  # epoch 1 kept, not retrained
    assert "test reconstruction MSE" in capsys.readouterr().out
    assert load_feature_net(out).features(load_image_set("digits", "test")[0][:5]).shape == (5, 64)


@pytest.mark.parametrize("argv, message", [
    (["--kind", "classifier", "--dataset", "svhn", "--out", "x"], "argument --dataset: invalid choice: 'svhn'"),
    (["--kind", "classifier", "--dataset", "digits"], "the following arguments are required: --out"),
    (["--kind", "classifier", "--dataset", "digits", "--epochs", "0", "--out", "x"], "--epochs must be ≥ 1"),
    (["--kind", "autoencoder", "--dataset", "digits", "--out", "{tmp}/none", "--resume"],
     "no training-state checkpoint"),
    (["--kind", "classifier", "--dataset", "mnist", "--data-dir", "{tmp}/empty", "--out", "{tmp}/m"], "MNIST"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "none").exists()


def test_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "tcja_deploy.feature_net", "--kind", "gan"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: argument --kind: invalid choice")


def test_the_choices_are_the_libraries():
    from tcja_deploy import feature_net
    from tcja_deploy.data.image_sets import NAMES
    from tcja_deploy.generation.feature_models import KINDS

    assert feature_net.DATASETS == NAMES and feature_net.KINDS == KINDS

"""The float network over a window as ONNX, run with onnxruntime, equals the torch model."""

import numpy as np
import onnx

from tcja_deploy.conversion import onnx_export
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.fidelity import scores_of
from tcja_deploy.conversion.targets import TARGETS, run_passes

from tiny import tiny_input, tiny_model


def test_onnx_equals_torch(tmp_path):
    model = tiny_model()
    gr = run_passes(TARGETS["onnx"], build_graph(model))
    path = tmp_path / "model.onnx"
    x = tiny_input(12)
    onnx_export.export_onnx(gr, path, x[:, :2])
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ["spikes"] and [o.name for o in m.graph.output] == ["scores"]
    ref = scores_of(model, x)
    assert ref.sum() > 0
    r = onnx_export.check_onnx(path, ref, x)  # a batch size other than the export's
    assert r["max_abs_diff"] <= 1e-4 and r["predictions_identical"] and r["samples"] == 12
    m = onnx_export.check_module(gr, model, x)
    assert m["max_abs_diff"] == 0.0
    assert np.array_equal(onnx_export.onnx_scores(path, x[:, :1]), onnx_export.onnx_scores(path, x)[:1])


def test_disputed_samples_are_rerun_one_at_a_time(tmp_path):
    """Where the batched torch scores differ from ONNX by a spike, torch is re-run per sample (as ORT runs)."""
    model = tiny_model()
    gr = run_passes(TARGETS["onnx"], build_graph(model))
    path = tmp_path / "model.onnx"
    x = tiny_input(6)
    onnx_export.export_onnx(gr, path, x[:, :2])
    batched = scores_of(model, x)
    fake = batched.copy()
    fake[2, 0] += 0.25  # as if batching had flipped spikes of sample 2
    r = onnx_export.check_onnx_against(path, model, fake, x)
    assert r["rerun_one_at_a_time"] == 1 and r["max_abs_diff"] <= 1e-4 and r["predictions_identical"]
    assert r["torch_batch_effect"]["max_abs_diff"] >= 0.25 - 1e-6
    clean = onnx_export.check_onnx_against(path, model, batched, x)
    assert clean["rerun_one_at_a_time"] == 0 and clean["torch_batch_effect"] is None


def test_paper_size_networks_check_onnx_on_a_few_samples(monkeypatch):
    from tcja_deploy.conversion import deploy
    from tcja_deploy.conversion.execute import bytes_per_sample

    fg = build_graph(tiny_model())
    assert deploy.onnx_check_samples(fg, 359) == (359, "the whole test set")
    monkeypatch.setattr(deploy, "ONNX_FULL_CHECK_BYTES", bytes_per_sample(fg) - 1)  # as if it were paper size
    n, reason = deploy.onnx_check_samples(fg, 359)
    assert n == deploy.ONNX_CHECK_SAMPLES < 359 and reason.startswith(f"the first {n} of 359")
    assert deploy.onnx_check_samples(fg, 5) == (5, "the whole test set")

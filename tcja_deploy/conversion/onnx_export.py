"""The float network over a whole window as ONNX: input ``spikes`` [T, N, C, H, W] → ``scores`` [N, K].

Norse's LIF uses a surrogate-gradient autograd Function, which ``torch.onnx`` cannot export; the
exported module is :class:`~tcja_deploy.conversion.execute.GraphModule` over the float graph (same
arithmetic as Norse's step, Heaviside forward, time loop unrolled over T). :func:`check_module`
verifies it equals the trained torch model and :func:`check_onnx` runs the file with onnxruntime.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import GraphModule, predictions

OPSET = 17


def export_onnx(graph: g.Graph, path: Path, example: torch.Tensor) -> None:
    """Write ``graph`` (float nodes) to ``path`` with a dynamic batch axis."""
    module = GraphModule(graph).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the unrolled loops and constant Slice folding
        torch.onnx.export(module, (example.to(torch.float32),), buf, input_names=["spikes"], output_names=["scores"],
                          dynamic_axes={"spikes": {1: "N"}, "scores": {0: "N"}}, opset_version=OPSET,
                          do_constant_folding=True)
    Path(path).write_bytes(buf.getvalue())


def onnx_scores(path: Path, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Scores [N, K] of the ONNX file on x [T, N, C, H, W] with onnxruntime (CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    xs = x.to(torch.float32).numpy()
    return np.concatenate([sess.run(["scores"], {"spikes": xs[:, i:i + batch_size]})[0]
                           for i in range(0, xs.shape[1], batch_size)], 0)


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """max |a − b|, whether the predictions are identical, and how many samples differ by a spike or more.

    A spike difference (≥ 1/(T·voters)) means a membrane potential within float32 rounding of the
    threshold, where two conv implementations (or batch blockings) round differently.
    """
    d = np.abs(a - b).max(1) if a.size else np.zeros(0)
    return {"max_abs_diff": float(d.max()) if d.size else 0.0,
            "predictions_identical": bool(np.array_equal(predictions(a), predictions(b))),
            "samples": int(a.shape[0]), "samples_differing": int(np.count_nonzero(d > 1e-6))}


def check_onnx(path: Path, torch_scores: np.ndarray, x: torch.Tensor) -> dict:
    """ONNX (onnxruntime) vs the torch model's scores on the same inputs."""
    return compare(onnx_scores(path, x), torch_scores)


def check_onnx_against(path: Path, model: torch.nn.Module, batched_scores: np.ndarray, x: torch.Tensor,
                       batch_size: int = 64) -> dict:
    """ONNX (onnxruntime) vs the torch model, like for like.

    onnxruntime's result does not depend on the batch; torch's float32 convs round differently with the
    batch size (their blocking changes), which flips a spike where a membrane potential lies within
    rounding of the threshold. So samples where ONNX and the batched torch scores differ by a spike are
    re-run in torch one at a time, as onnxruntime runs them, and compared with that.
    ``torch_batch_effect``: those samples, batched torch vs torch one at a time.
    """
    from tcja_deploy.conversion.fidelity import scores_of

    ours = onnx_scores(path, x, batch_size)
    ref = np.array(batched_scores, copy=True)
    disputed = np.flatnonzero(np.abs(ours - ref).max(1) > 1e-6) if ours.size else np.zeros(0, dtype=int)
    if disputed.size:
        ref[disputed] = scores_of(model, x[:, torch.as_tensor(disputed)], batch_size=1)
    out = compare(ours, ref)
    out["rerun_one_at_a_time"] = int(disputed.size)
    out["torch_batch_effect"] = compare(batched_scores[disputed], ref[disputed]) if disputed.size else None
    return out


def check_module(graph: g.Graph, model: torch.nn.Module, x: torch.Tensor, batch_size: int = 64) -> dict:
    """The exported module vs the trained torch model (both float32, same batches) on x."""
    module = GraphModule(graph)
    a, b = [], []
    with torch.no_grad():
        for i in range(0, x.shape[1], batch_size):
            xb = x[:, i:i + batch_size].to(torch.float32)
            a.append(module(xb).numpy())
            b.append(model(xb).numpy())
    return compare(np.concatenate(a), np.concatenate(b))

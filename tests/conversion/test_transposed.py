"""The transposed-convolution rewrite is exact: its sparse matrix, torch's conv_transpose2d and the zero-stuffed
conv agree in float64 and in integers, every synapse holds one kernel weight, and Lava's own Sparse model
computes the same integer sums (docs/DESIGN.md §13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import transposed as TR
from tcja_deploy.conversion.graph import ConversionError

#: (Ci, Co, H, W, k, stride, padding, output_padding): FSVAE's decoder block and output layer, and others.
CASES = [
    (3, 4, 4, 4, 3, 2, 1, 1),   # FSVAE decoder block: 4×4 → 8×8
    (4, 2, 5, 5, 3, 1, 1, 0),   # FSVAE output layer: stride 1, same size
    (2, 3, 3, 5, 4, 2, 1, 0),   # even kernel, non-square input
    (2, 2, 3, 3, 2, 2, 0, 1),   # kernel = stride, output padding
    (1, 2, 2, 2, 3, 3, 0, 2),   # stride 3, output padding 2
    (2, 2, 4, 4, 5, 2, 2, 1),   # wide kernel
]


def _case(ci, co, h, w, k, seed=0, integer=False):
    gen = torch.Generator().manual_seed(seed)
    if integer:  # Loihi 8-bit weights (even, [−256, 254]) and graded payloads up to 255
        weight = 2 * torch.randint(-128, 128, (ci, co, k, k), generator=gen).double()
        x = torch.randint(0, 256, (3, ci, h, w), generator=gen).double()
    else:
        weight = torch.randn(ci, co, k, k, generator=gen, dtype=torch.float64)
        x = torch.randn(3, ci, h, w, generator=gen, dtype=torch.float64)
    return weight, x


@pytest.mark.parametrize("case", CASES)
def test_matrix_equals_conv_transpose2d_in_float64(case):
    ci, co, h, w, k, s, p, op = case
    weight, x = _case(ci, co, h, w, k)
    ref = F.conv_transpose2d(x, weight, stride=s, padding=p, output_padding=op)
    m = TR.transposed_matrix(weight.numpy(), (ci, h, w), s, p, op)
    assert m.shape == (ref[0].numel(), x[0].numel())
    y = np.stack([m @ xi.reshape(-1).numpy() for xi in x])
    np.testing.assert_allclose(y, ref.reshape(3, -1).numpy(), rtol=0, atol=1e-12)
    assert tuple(ref.shape[2:]) == (TR.out_size(h, k, s, p, op), TR.out_size(w, k, s, p, op))


@pytest.mark.parametrize("case", CASES)
def test_stuffed_conv_equals_conv_transpose2d(case):
    ci, co, h, w, k, s, p, op = case
    weight, x = _case(ci, co, h, w, k, seed=1)
    ref = F.conv_transpose2d(x, weight, stride=s, padding=p, output_padding=op)
    torch.testing.assert_close(TR.as_stuffed_conv(x, weight, s, p, op), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_integer_sums_are_exact_and_each_synapse_is_one_weight(case):
    ci, co, h, w, k, s, p, op = case
    weight, x = _case(ci, co, h, w, k, seed=2, integer=True)
    wi = weight.numpy().astype(np.int64)
    m = TR.transposed_matrix(wi, (ci, h, w), s, p, op)
    assert m.dtype == np.int64
    ref = TR.qconv_transpose(x[None], wi, s, p, op)[0]  # [3, Co, H', W'] int64
    assert ref.dtype == torch.int64
    y = np.stack([m @ xi.reshape(-1).numpy().astype(np.int64) for xi in x])
    assert np.array_equal(y, ref.reshape(3, -1).numpy())
    # the torch reference itself, in exact int64 arithmetic (conv_transpose2d has no integer kernel: loop the taps)
    ho, wo = ref.shape[2:]
    direct = np.zeros((3, co, ho, wo), dtype=np.int64)
    xi = x.numpy().astype(np.int64)
    for a in range(k):
        for b in range(k):
            for hh in range(h):
                for ww in range(w):
                    i, j = hh * s - p + a, ww * s - p + b
                    if 0 <= i < ho and 0 <= j < wo:
                        direct[:, :, i, j] += xi[:, :, hh, ww] @ wi[:, :, a, b]
    assert np.array_equal(direct, ref.numpy())
    # every stored entry is one kernel weight: as many synapses as in-range (pixel, tap, ci, co) with w ≠ 0
    count = 0
    for a in range(k):
        rows = sum(0 <= hh * s - p + a < ho for hh in range(h))
        for b in range(k):
            cols = sum(0 <= ww * s - p + b < wo for ww in range(w))
            count += rows * cols * int(np.count_nonzero(wi[:, :, a, b]))
    assert m.nnz == count
    assert set(np.unique(m.data)) <= set(np.unique(wi))


def test_zero_weights_are_no_synapse():
    w = np.zeros((2, 3, 3, 3))
    w[1, 2, 0, 1] = 5.0
    m = TR.transposed_matrix(w, (2, 3, 3), 2, 1, 1)
    assert m.nnz == int(np.count_nonzero(m.toarray())) and set(m.data) == {5.0}


@pytest.mark.parametrize("bad", [dict(stride=2, output_padding=2), dict(stride=0), dict(padding=-1)])
def test_bad_parameters_are_refused(bad):
    kw = dict(stride=2, padding=1, output_padding=1) | bad
    with pytest.raises(ValueError):
        TR.transposed_matrix(np.ones((1, 1, 3, 3)), (1, 3, 3), kw["stride"], kw["padding"], kw["output_padding"])
    with pytest.raises(ConversionError):
        g.ConvTranspose2d(np.ones((1, 1, 3, 3)), None, **kw)


def test_node_shapes_and_semantics_match_torch():
    weight, x = _case(3, 4, 4, 4, 3, seed=3)
    node = g.ConvTranspose2d(weight.numpy(), np.arange(4.0), stride=2, padding=1, output_padding=1)
    from tcja_deploy.conversion.execute import run_node
    y = run_node(node, x[None])[0]
    torch.testing.assert_close(y, F.conv_transpose2d(x, weight, torch.arange(4.0, dtype=torch.float64), stride=2,
                                                     padding=1, output_padding=1))
    assert node.out_shape((3, 4, 4)) == (4, 8, 8)
    with pytest.raises(ConversionError):
        node.out_shape((2, 4, 4))


@pytest.mark.parametrize("bits", [0, 8])
@pytest.mark.parametrize("case", [CASES[0], CASES[1]])
def test_lava_sparse_model_computes_the_integer_transposed_conv(case, bits):
    """Lava's bit-accurate Sparse (fixed_pt), fed binary spikes or 8-bit graded payloads, sends step t's
    sums at step t + 1: equal to the integer transposed conv, sum for sum."""
    pytest.importorskip("lava")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer
    from lava.proc.sparse.process import Sparse

    ci, co, h, w, k, s, p, op = case
    weight, _ = _case(ci, co, h, w, k, seed=4, integer=True)
    wi = weight.numpy().astype(np.int64)
    steps = 4
    gen = torch.Generator().manual_seed(5)
    top = 1 if bits == 0 else 255
    x = torch.randint(0, top + 1, (steps, 1, ci, h, w), generator=gen).double()
    ref = TR.qconv_transpose(x, wi, s, p, op)[:, 0].reshape(steps, -1).numpy()
    m = TR.transposed_matrix(wi, (ci, h, w), s, p, op).astype(np.int32)
    data = np.zeros((ci * h * w, steps + 1), dtype=np.int32)
    data[:, :steps] = x[:, 0].reshape(steps, -1).numpy().T
    src = RingBuffer(data=data)
    syn = Sparse(weights=m, num_message_bits=bits)
    ext = Extractor(shape=(m.shape[0],), buffer_size=steps + 2)
    src.s_out.connect(syn.s_in)
    syn.a_out.connect(ext.in_port)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    try:
        src.run(condition=RunSteps(num_steps=steps + 1), run_cfg=cfg)
        got = np.stack([ext.receive() for _ in range(steps + 1)])
    finally:
        src.stop()
    assert np.array_equal(got[0], np.zeros(m.shape[0]))  # the one-step hop
    assert np.array_equal(got[1:], ref)

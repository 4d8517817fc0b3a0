"""The TCJA gate as a Lava process (both modes, both tags) against the torch TCJA and gate_math.

Driven by ``lava.proc.io.source.RingBuffer`` and recorded with ``lava.proc.io.sink.RingBuffer``.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lava.magma")

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.sink import RingBuffer as Sink  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402

from tcja_deploy.conversion import gate_math as gm  # noqa: E402
from tcja_deploy.hardware.lava_procs import TCJAGate  # noqa: E402
from tcja_deploy.models.tcja import apply_gate, squeeze_spikes, tcja_gate  # noqa: E402

T, C, H, W = 4, 3, 4, 4
N_WINDOWS = 2  # samples fed back to back in one run
TAGS = ["floating_pt", "fixed_pt"]


def make_gate(mode: str, seed: int = 0) -> gm.QuantizedGate:
    rng = np.random.default_rng(seed)
    params = gm.GateParams(T=T, C=C, H=H, W=W, mode=mode, w_tla=1.5 * rng.normal(size=(C, C, 2)),
                           w_cla=1.5 * rng.normal(size=(T, T, 3)))
    return gm.quantize_gate(params)


def random_spikes(seed: int) -> np.ndarray:
    """[N_WINDOWS, T, C, H, W] binary spikes: one sample per window."""
    return (np.random.default_rng(seed).random((N_WINDOWS, T, C, H, W)) < 0.5).astype(np.int32)


def or_pool(x: np.ndarray) -> np.ndarray:
    """2×2 OR (max) pool over the last two dims."""
    return x.reshape(*x.shape[:-2], x.shape[-2] // 2, 2, x.shape[-1] // 2, 2).max(axis=(-3, -1))


def as_stream(x: np.ndarray, extra_steps: int) -> np.ndarray:
    """[windows, T, *shape] → Lava source data [*shape, steps] (+ zero steps to flush)."""
    steps = x.reshape(-1, *x.shape[2:])
    steps = np.concatenate([steps, np.zeros((extra_steps,) + steps.shape[1:], steps.dtype)])
    return np.moveaxis(steps, 0, -1)


def run_gate(qgate, s, tag, x=None, s_shape=None):
    """Run TCJAGate on [windows, T, ...] inputs; returns ([steps, *gated shape] output, gate Var)."""
    extra = T if qgate.params.mode == "window" else 0
    steps = N_WINDOWS * T + extra
    s_shape = s_shape or s.shape[2:]
    gated_shape = s_shape if x is None else x.shape[2:]
    gate = TCJAGate(gate=qgate, s_shape=s_shape, x_shape=None if x is None else x.shape[2:])
    src_s = Source(data=as_stream(s, extra))
    src_s.s_out.connect(gate.s_in)
    if x is not None:
        src_x = Source(data=as_stream(x, extra))
        src_x.s_out.connect(gate.x_in)
    sink = Sink(shape=gated_shape, buffer=steps)
    gate.a_out.connect(sink.a_in)
    try:
        gate.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        out, gate_var = sink.data.get(), gate.gate.get()
    finally:
        gate.stop()
    return np.moveaxis(out, -1, 0), gate_var


def torch_reference(spikes: np.ndarray, qgate) -> tuple[np.ndarray, np.ndarray]:
    """(gated spikes [windows, T, C, H, W], gate [windows, T, C]) of the torch TCJA, float64."""
    p = qgate.params
    x = torch.from_numpy(spikes).double().transpose(0, 1)  # [T, N, C, H, W]
    gate = tcja_gate(squeeze_spikes(x), torch.from_numpy(np.array(p.w_tla)), torch.from_numpy(np.array(p.w_cla)),
                     causal=p.causal)
    return apply_gate(x, gate).transpose(0, 1).numpy(), gate.transpose(0, 1).numpy()


def received(out: np.ndarray, qgate) -> np.ndarray:
    """Output steps aligned with the input steps: [windows, T, *shape] (window mode: shifted by T)."""
    if qgate.params.mode == "window":
        assert np.all(out[:T] == 0), "window mode sends nothing during the first window"
        out = out[T:]
    return out.reshape(N_WINDOWS, T, *out.shape[1:])


@pytest.mark.parametrize("mode", gm.MODES)
@pytest.mark.parametrize("tag", TAGS)
def test_gate_process_matches_torch_tcja(mode, tag):
    qgate = make_gate(mode, seed=1)
    spikes = random_spikes(2)
    out, gate_var = run_gate(qgate, spikes, tag)
    got = received(out, qgate)
    ref, ref_gate = torch_reference(spikes, qgate)
    counts = spikes.sum(axis=(3, 4))
    if tag == "floating_pt":
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
        # the last gate computed: window mode's flush window (no spikes) gives sigmoid(0)
        np.testing.assert_allclose(gate_var, ref_gate[-1] if mode == "streaming" else 0.5, atol=1e-5)
    else:
        code = gm.gate_fixed(counts, qgate)
        np.testing.assert_array_equal(got, spikes * code[..., None, None])  # bit-exact with gate_math
        np.testing.assert_array_equal(gate_var, code[-1] if mode == "streaming" else 2 ** (qgate.payload_bits - 1))
        err = np.abs(got * qgate.gate_scale - ref)
        assert np.all(err <= gm.error_bound(qgate, counts)[..., None, None] * spikes)


@pytest.mark.parametrize("tag", TAGS)
def test_gate_from_pre_pool_spikes_applied_after_pool(tag):
    """Gate computed from [C, H, W] spikes, applied to their 2×2 OR pool: = maxpool(TCJA(x))."""
    qgate = make_gate("window", seed=3)
    spikes = random_spikes(4)
    pooled = or_pool(spikes)
    out, _ = run_gate(qgate, spikes, tag, x=pooled)
    got = received(out, qgate)
    assert got.shape == (N_WINDOWS, T, C, H // 2, W // 2)
    ref, _ = torch_reference(spikes, qgate)
    ref_pooled = F.max_pool2d(torch.from_numpy(ref).flatten(0, 1), 2).reshape(got.shape).numpy()
    if tag == "floating_pt":
        np.testing.assert_allclose(got, ref_pooled, atol=1e-5, rtol=0)
    else:
        code = gm.gate_fixed(spikes.sum(axis=(3, 4)), qgate)
        np.testing.assert_array_equal(got, pooled * code[..., None, None])


def test_counts_input_equals_spike_input():
    """s_in may carry per-channel counts [C] instead of [C, H, W] spikes."""
    qgate = make_gate("streaming", seed=5)
    spikes = random_spikes(6)
    counts = spikes.sum(axis=(3, 4)).astype(np.int32)  # [windows, T, C]
    out, _ = run_gate(qgate, counts, "fixed_pt", x=spikes)
    np.testing.assert_array_equal(received(out, qgate),
                                  spikes * gm.gate_fixed(counts, qgate)[..., None, None])


def test_streaming_outputs_do_not_depend_on_later_inputs():
    qgate = make_gate("streaming", seed=7)
    spikes = random_spikes(8)
    later = spikes.copy()
    later[0, 2:] = 1 - later[0, 2:]  # change steps 2.. of the first window and the whole second
    later[1] = 1 - later[1]
    out_a, _ = run_gate(qgate, spikes, "fixed_pt")
    out_b, _ = run_gate(qgate, later, "fixed_pt")
    np.testing.assert_array_equal(out_a[:2], out_b[:2])  # steps 1, 2 sent before the change
    assert not np.array_equal(out_a[2:], out_b[2:])


def test_payload_encoding():
    """fixed_pt sends spike · p with p ∈ [0, 2^b − 1]; p·2^−b is the floating_pt gate within the bound."""
    qgate = make_gate("window", seed=9)
    spikes = random_spikes(10)
    fixed, _ = run_gate(qgate, spikes, "fixed_pt")
    flt, _ = run_gate(qgate, spikes, "floating_pt")
    assert np.all(fixed == np.round(fixed)) and fixed.min() >= 0 and fixed.max() <= qgate.payload_max
    bound = gm.error_bound(qgate, spikes.sum(axis=(3, 4)))[..., None, None]
    assert np.all(np.abs(received(fixed, qgate) * 2.0 ** -qgate.payload_bits - received(flt, qgate)) <= bound)
    assert np.all((received(fixed, qgate) > 0) <= (spikes > 0))  # no spike, no payload


def test_rejects_wrong_shapes():
    qgate = make_gate("window")
    with pytest.raises(ValueError):
        TCJAGate(gate=qgate, s_shape=(C + 1, H, W))
    with pytest.raises(ValueError):
        TCJAGate(gate=qgate, s_shape=(C, H, W + 1))
    with pytest.raises(ValueError):
        TCJAGate(gate=qgate, s_shape=(C, H, W), x_shape=(C + 1, 2, 2))

"""The emulator's integer arithmetic is Lava's (checked against Lava's own model code), and its activity
has the layout the counters read."""


import numpy as np
import pytest
import torch

from tcja_deploy.conversion import gate_math
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.targets import TARGETS, run_passes
from tcja_deploy.conversion import fixed_point, layers
from tcja_deploy.conversion import loihi2 as L
from tcja_deploy.hardware import emulator
from tiny import T, tiny_input, tiny_model


def lava_lif_reference(a: np.ndarray, i_decay: int, v_decay: int, vth_mant: int, bias_mant=None) -> np.ndarray:
    """Spikes of Lava's ``PyLifModelBitAcc`` stepped by hand (its own subthr_dynamics / spiking code)."""
    from lava.proc.lif.models import PyLifModelBitAcc

    m = PyLifModelBitAcc({})
    shape = a.shape[1:]
    m.u, m.v = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    m.du, m.dv = i_decay - 1, v_decay  # as NetX sets them
    m.vth = vth_mant
    m.bias_mant = np.zeros(shape, np.int16) if bias_mant is None else np.broadcast_to(bias_mant, shape).astype(np.int16)
    m.bias_exp = np.full(shape, 6, np.int16)
    m.scale_bias()
    m.scale_threshold()
    out = []
    for t in range(a.shape[0]):
        m.subthr_dynamics(activation_in=a[t].astype(np.int32))
        s = m.spiking_activation()
        m.reset_voltage(s)
        out.append(s.copy())
    return np.stack(out).astype(np.float64)


@pytest.mark.parametrize("i_decay,v_decay", [(4096, 2048), (1024, 300), (4096, 4096), (0, 4095)])
def test_cuba_fixed_is_lavas_lif(i_decay, v_decay):
    rng = np.random.default_rng(i_decay + v_decay)
    a = rng.integers(-30000, 60000, size=(40, 7, 5))  # [T, N, C]; large inputs: u wraps, v saturates
    bias = rng.integers(-300, 300, size=5)  # per channel
    ref = lava_lif_reference(a, i_decay, v_decay, 40000, bias[None, :])
    ours = fixed_point.cuba_fixed(torch.as_tensor(a), i_decay, v_decay, 40000, torch.as_tensor(bias)).numpy()
    assert np.array_equal(ours, ref)
    assert 0 < ref.mean() < 1


@pytest.mark.parametrize("i_decay,v_decay", [(4096, 2048), (1024, 300), (0, 0), (4096, 0), (17, 1), (2048, 4096),
                                           (4096, 4096)])
@pytest.mark.parametrize("amplitude", [3, 30000, 2**23])
def test_fast_cuba_equals_its_int64_definition(i_decay, v_decay, amplitude):
    """The in-place float64 CUBA skips the wrap and clip only where its bound allows: small inputs (skipped),
    large ones (wrap and clip act), with and without bias, low and high thresholds."""
    rng = np.random.default_rng(amplitude + i_decay)
    a = torch.as_tensor(rng.integers(-amplitude, 2 * amplitude, size=(30, 3, 4, 5)))
    bias = torch.as_tensor(rng.integers(-4000, 4000, size=4))
    for b in (None, bias):
        for vth in (1, 40000, 131071):
            ref = fixed_point.cuba_fixed_reference(a, i_decay, v_decay, vth, b)
            assert torch.equal(ref.float(), fixed_point.cuba_fixed(a, i_decay, v_decay, vth, b))
            # qconv hands over its sums as exact integers in float32 / float64: the same spikes
            assert torch.equal(ref.float(), fixed_point.cuba_fixed(a.double(), i_decay, v_decay, vth, b))
            if amplitude < 2**23:
                assert torch.equal(ref.float(), fixed_point.cuba_fixed(a.float(), i_decay, v_decay, vth, b))


def test_wraps_match_lava():
    from lava.proc.conv.utils import signed_clamp

    x = np.array([0, 1, -1, 2**23 - 1, 2**23, 2**23 + 5, -(2**23), -(2**23) - 3, 3 * 2**23, -5 * 2**23 + 7])
    assert np.array_equal(L.signed_clamp24(torch.as_tensor(x)).numpy(), signed_clamp(x, 24))
    u = torch.as_tensor(x)
    expected = np.where(x > 2**23, x - 2**24, x)
    expected = np.where(expected <= -(2**23), x + 2**24, expected)
    assert np.array_equal(L.wrap_current(u).numpy(), expected)


def test_trunc_shift_rounds_toward_zero():
    from lava.lib.dl.slayer.utils.int_utils import right_shift_to_zero

    x = torch.tensor([-8193, -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 12289], dtype=torch.int64)
    assert torch.equal(L.trunc_shift12(x), right_shift_to_zero(x, 12))


@pytest.mark.parametrize("groups,stride,padding,payload", [(1, 1, 1, 1), (1, 2, 0, 200), (3, 2, 0, 1)])
def test_qconv_is_lavas_conv(groups, stride, padding, payload):
    """Our integer conv (torch layout) equals Lava's conv on NetX's flipped, WHC-transposed weights."""
    from lava.proc.conv.utils import conv

    rng = np.random.default_rng(groups + stride)
    w = rng.integers(-128, 127, size=(6, 6 // groups, 3, 3)) * 2
    x = rng.integers(0, payload + 1, size=(6, 7, 7)) * (rng.random((6, 7, 7)) < 0.5)
    ours = fixed_point.qconv(torch.as_tensor(x, dtype=torch.float64)[None, None], w, stride, padding, groups)[0, 0]
    w_lava = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # what NetX's create_conv does
    ref = conv(x.transpose(2, 1, 0), w_lava, (3, 3), (stride, stride), (padding, padding), (1, 1), groups)
    assert np.array_equal(ours.numpy(), ref.transpose(2, 1, 0))


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (2, 1)])
def test_small_convs_run_as_a_matmul_with_lavas_sums(stride, padding):
    """A conv of few taps (the DVS input layer: 2 polarities, 3×3) is unfold + matmul: Lava's sums."""
    from lava.proc.conv.utils import conv

    rng = np.random.default_rng(stride + padding)
    w = rng.integers(-128, 127, size=(5, 2, 3, 3)) * 2
    assert 2 * 3 * 3 <= fixed_point.MATMUL_CONV_TAPS
    x = rng.integers(0, 4, size=(2, 9, 8)) * (rng.random((2, 9, 8)) < 0.5)
    ours = fixed_point.qconv(torch.as_tensor(x, dtype=torch.float64)[None, None], w, stride, padding, 1)[0, 0]
    ref = conv(x.transpose(2, 1, 0), w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1), (3, 3), (stride, stride),
               (padding, padding), (1, 1), 1)
    assert np.array_equal(ours.numpy(), ref.transpose(2, 1, 0))


@pytest.fixture(scope="module")
def qgraph():
    """The tiny network with host gates (the layout checks below name their payload widths)."""
    trunk = run_passes(TARGETS["lava-float"], build_graph(tiny_model()))
    return P.quantize_loihi2(trunk, P.calibrate(trunk, tiny_input(16)), gate_placement="host")


def test_a_neurocore_gate_is_its_integer_stages():
    from tcja_deploy.conversion import neurocore_gate as NC

    trunk = run_passes(TARGETS["lava-float"], build_graph(tiny_model()))
    node = P.quantize_loihi2(trunk, P.calibrate(trunk, tiny_input(16))).nodes["gate0"]
    assert node.placement == "neurocore"
    gen = torch.Generator().manual_seed(3)
    s = (torch.rand(T, 5, 6, 4, 4, generator=gen) < 0.4).double()
    x = torch.nn.functional.max_pool2d(s.flatten(0, 1), 2).reshape(T, 5, 6, 2, 2)
    out = fixed_point.gate_fixed(x, s, node).numpy()
    codes = NC.gate_codes(s.sum((3, 4)).permute(1, 0, 2).numpy().astype(np.int64),
                          NC.NeurocoreGate.from_arrays(node.params))
    assert np.array_equal(out, x.numpy() * codes.transpose(1, 0, 2)[..., None, None])
    assert out.max() <= 255 and out.any()


def test_gate_is_gate_math(qgraph):
    node = qgraph.nodes["gate0"]
    gen = torch.Generator().manual_seed(3)
    s = (torch.rand(T, 5, 6, 4, 4, generator=gen) < 0.4).double()
    x = torch.nn.functional.max_pool2d(s.flatten(0, 1), 2).reshape(T, 5, 6, 2, 2)
    out = fixed_point.gate_fixed(x, s, node).numpy()
    qgate = gate_math.QuantizedGate.from_arrays(node.params)
    codes = gate_math.gate_fixed(s.sum((3, 4)).permute(1, 0, 2).numpy(), qgate)
    assert np.array_equal(out, x.numpy() * codes.transpose(1, 0, 2)[..., None, None])


def test_emulate_activity_layout(qgraph):
    x = tiny_input(7)
    act = emulator.emulate(qgraph, x, labels=np.arange(7) % 2, batch_size=3)
    assert act.backend == "emulator" and act.scores.shape == (7, 2) and act.steps == T
    assert [(a.name, a.kind) for a in act.layers] == [
        ("conv0", "conv"), ("pool0", "pool"), ("conv1", "conv"), ("pool1", "pool"), ("gate0", "gate"),
        ("conv2", "conv"), ("gate1", "gate"), ("linear0", "dense")]
    by = {a.name: a for a in act.layers}
    assert by["conv0"].input_payload_bits == 2 and by["conv0"].input_spikes.max() == 3
    assert by["conv2"].input_payload_bits == P.GATE_PAYLOAD_BITS and by["conv2"].input_spikes.dtype == np.int32
    assert by["pool0"].weight is None and by["pool0"].stride == 2  # the counters build its OR kernel
    assert by["gate0"].gate.squeeze_from == "conv1" and by["gate0"].latency_steps == T  # the layer of lif1
    assert by["gate1"].gate.squeeze_from is None and (by["gate0"].gate.H, by["gate0"].gate.W) == (4, 4)
    assert by["gate0"].output_spikes.shape == (T, 7, 6, 2, 2) and by["gate0"].output_payload_bits == 6
    assert by["linear0"].input_spikes.shape == (T, 7, 24) and by["linear0"].weight.shape == (20, 24)
    for a in act.layers:
        assert a.output_spikes.shape == (T, 7) + a.out_shape and a.input_spikes.shape == (T, 7) + a.in_shape
    assert act.extra["latency_steps"] == layers.latency_steps(qgraph) == 14
    assert "lif1" in act.extra["graph_names"]
    # scores are the readout's spike rates
    last = by["linear0"].output_spikes.astype(np.float64)
    assert np.allclose(act.scores, last.reshape(T, 7, 2, 10).mean(-1).mean(0))
    # record=False: same scores, no layers; batching does not change anything
    quick = emulator.emulate(qgraph, x, record=False, batch_size=64)
    assert quick.layers == [] and np.array_equal(quick.scores, act.scores)


def test_batches_are_bounded_by_memory_and_do_not_change_the_result(qgraph):
    from tcja_deploy.conversion.execute import auto_batch_size, bytes_per_sample

    per = bytes_per_sample(qgraph)
    assert per > 0
    assert auto_batch_size(qgraph, budget_bytes=per * 3) == 3 and auto_batch_size(qgraph, budget_bytes=1) == 1
    assert auto_batch_size(qgraph, budget_bytes=1 << 50) == 64
    x = tiny_input(5)
    a = emulator.emulate(qgraph, x, batch_size=2)
    b = emulator.emulate(qgraph, x)  # auto
    assert np.array_equal(a.scores, b.scores)
    assert all(np.array_equal(la.output_spikes, lb.output_spikes) for la, lb in zip(a.layers, b.layers))


def test_recorded_chunks_are_bounded_by_the_events_they_hold(qgraph):
    x = tiny_input(5)
    act = emulator.emulate(qgraph, x, batch_size=2)
    held = sum(a.input_spikes.nbytes + a.output_spikes.nbytes for a in act.layers)
    per = emulator.recorded_bytes_per_sample(qgraph)
    assert per * 5 == held
    assert emulator.record_chunk(qgraph, budget_bytes=per * 3) == 3
    assert emulator.record_chunk(qgraph, budget_bytes=1) == 1 and emulator.record_chunk(qgraph, cap=7) == 7
    assert all(a.input_spikes.flags.c_contiguous for a in act.layers)


def test_diagonal_one_group_weights_run_as_the_depthwise_conv_they_equal():
    from tcja_deploy.conversion.fixed_point import depthwise_form, qconv

    c = 130
    w = np.zeros((c, c, 2, 2))
    w[np.arange(c), np.arange(c)] = 254
    dw, groups = depthwise_form(w, 1)
    assert groups == c and dw.shape == (c, 1, 2, 2)
    p = (torch.rand(2, 1, c, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    dense = torch.nn.functional.conv2d(p[:, 0], torch.as_tensor(w), stride=2).round().long()
    assert torch.equal(qconv(p, w, 2, 0, 1)[:, 0].long(), dense)
    w[0, 1, 0, 0] = 2  # one off-diagonal weight: not depthwise
    assert depthwise_form(w, 1)[1] == 1


def test_grouped_diagonal_pools_run_as_the_depthwise_conv_they_equal():
    """The OR pool of 128 channels is 64 groups of 2 (Lava keeps groups in an int8), diagonal in each group."""
    from tcja_deploy.conversion.fixed_point import depthwise_form, qconv
    from tcja_deploy.conversion.passes import lava_groups

    assert [lava_groups(c) for c in (4, 127, 128, 130, 131, 256)] == [4, 127, 64, 65, 1, 64]
    c, m = 128, 2
    w = np.zeros((c, m, 2, 2))
    w[np.arange(c), np.arange(c) % m] = 254
    dw, groups = depthwise_form(w, c // m)
    assert groups == c and dw.shape == (c, 1, 2, 2) and np.all(dw == 254)
    p = (torch.rand(2, 1, c, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    grouped = torch.nn.functional.conv2d(p[:, 0], torch.as_tensor(w), stride=2, groups=c // m).round().long()
    assert torch.equal(qconv(p, w, 2, 0, c // m)[:, 0].long(), grouped)
    w[0, 1, 0, 0] = 2  # output 0 also reads channel 1 of its group: not depthwise
    assert depthwise_form(w, c // m)[1] == c // m


def test_the_emulator_keeps_freed_memory_for_its_next_tensors():
    """glibc (every Linux CI machine here) takes the mallopt settings; a second call is the cached answer."""
    from tcja_deploy.conversion.execute import reuse_freed_memory

    assert reuse_freed_memory() is True and reuse_freed_memory() is True

"""The TCJA gate's arithmetic (float and fixed point) against the torch TCJA, on random binary spikes."""

import numpy as np
import pytest
import torch

from tcja_deploy.conversion import gate_math as gm
from tcja_deploy.models.tcja import TCJA, same_padding, squeeze_spikes, tcja_gate

T, N, C, H, W = 6, 3, 5, 3, 4
KERNELS = [(4, 4), (3, 5), (1, 2), (2, 3)]


def make_params(mode: str, k_tla: int, k_cla: int, seed: int = 0, gain: float = 1.0) -> gm.GateParams:
    rng = np.random.default_rng(seed)
    return gm.GateParams(T=T, C=C, H=H, W=W, mode=mode, w_tla=gain * rng.normal(size=(C, C, k_tla)),
                         w_cla=gain * rng.normal(size=(T, T, k_cla)))


def random_spikes(seed: int, p: float = 0.5) -> np.ndarray:
    """[T, N, C, H, W] binary spikes."""
    return (np.random.default_rng(seed).random((T, N, C, H, W)) < p).astype(np.float64)


def counts_of(x: np.ndarray) -> np.ndarray:
    """[T, N, C, H, W] spikes → [N, T, C] integer counts."""
    return x.sum(axis=(3, 4)).transpose(1, 0, 2).astype(np.int64)


def torch_gate(x: np.ndarray, params: gm.GateParams) -> np.ndarray:
    """The torch TCJA gate as [N, T, C] (float64)."""
    z = squeeze_spikes(torch.from_numpy(x))
    g = tcja_gate(z, torch.from_numpy(np.array(params.w_tla)), torch.from_numpy(np.array(params.w_cla)),
                  causal=params.causal)
    return g.permute(1, 0, 2).numpy()


def test_padding_matches_torch_tcja():
    for k in range(1, 8):
        assert gm.same_padding(k) == same_padding(k)
        assert gm.tla_padding(k, causal=True) == (k - 1, 0)


@pytest.mark.parametrize("mode", gm.MODES)
@pytest.mark.parametrize("k_tla,k_cla", KERNELS)
def test_gate_float_matches_torch(mode, k_tla, k_cla):
    params = make_params(mode, k_tla, k_cla, seed=k_tla * 10 + k_cla, gain=1.5)
    x = random_spikes(k_tla + k_cla)
    got = gm.gate_float(counts_of(x), params)
    np.testing.assert_allclose(got, torch_gate(x, params), atol=1e-6, rtol=0)
    np.testing.assert_allclose(gm.gate_float(counts_of(x)[1], params), got[1], atol=1e-12)  # unbatched


def test_from_module_and_float32_torch():
    torch.manual_seed(0)
    layer = TCJA(T, C, kernel_tla=4, kernel_cla=4, causal=True)
    params = gm.GateParams.from_module(layer, H, W)
    assert params.mode == "streaming" and params.kernel_tla == 4 and params.area == H * W
    x = random_spikes(1)
    with torch.no_grad():
        ref = layer.gate(torch.from_numpy(x).float()).permute(1, 0, 2).double().numpy()
    np.testing.assert_allclose(gm.gate_float(counts_of(x), params), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", gm.MODES)
@pytest.mark.parametrize("k_tla,k_cla", KERNELS)
def test_gate_fixed_within_bound_of_torch(mode, k_tla, k_cla):
    params = make_params(mode, k_tla, k_cla, seed=k_tla * 10 + k_cla)
    q = gm.quantize_gate(params)
    for seed, density in [(1, 0.5), (2, 0.1), (3, 0.9)]:
        x = random_spikes(seed, density)
        counts = counts_of(x)
        code = gm.gate_fixed(counts, q)
        assert code.shape == (N, T, C) and code.min() >= 0 and code.max() <= 255
        err = np.abs(code * q.gate_scale - torch_gate(x, params))
        assert np.all(err <= gm.error_bound(q, counts))
        assert np.all(err <= gm.error_bound(q))  # worst case over all inputs
        # the arithmetic alone: within the payload step of the gate with the dequantized weights
        err_q = np.abs(code * q.gate_scale - gm.gate_float(counts, q.dequantized()))
        bound_q = gm.error_bound(q, counts, against="quantized")
        assert np.all(err_q <= bound_q)
        assert bound_q.max() <= 1.125 * 2.0 ** -8 + 1e-4  # + (|CLA| + |TLA|)·2^−(F+3), F = 16
        assert np.all(bound_q[code < q.payload_max] <= 0.625 * 2.0 ** -8 + 1e-4)


def test_wider_weights_shrink_the_error():
    params = make_params("window", 4, 4, seed=5)
    x = random_spikes(5)
    ref = torch_gate(x, params)
    errs = [np.abs(gm.gate_fixed(counts_of(x), gm.quantize_gate(params, weight_bits=b)) / 256 - ref).max()
            for b in (4, 8, 12)]
    assert errs[0] > errs[1] > errs[2] and errs[2] <= 2.0 ** -8


@pytest.mark.parametrize("mode", gm.MODES)
def test_torch_batched_fixed_is_bit_identical(mode):
    q = gm.quantize_gate(make_params(mode, 4, 3, seed=7, gain=2.0))
    counts = counts_of(random_spikes(7))
    want = gm.gate_fixed(counts, q)
    got = gm.gate_fixed_torch(torch.from_numpy(counts), q)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), want)
    got_f = gm.gate_fixed_torch(torch.from_numpy(counts).float()[None], q)  # float counts, extra batch dim
    np.testing.assert_array_equal(got_f[0].numpy(), want)


def test_streaming_is_causal_and_steps_match_window():
    params = make_params("streaming", 4, 4, seed=11, gain=1.5)
    q = gm.quantize_gate(params)
    assert np.all(q.w_cla_q[np.triu_indices(T, 1)] == 0)
    counts = counts_of(random_spikes(11))
    code, g = gm.gate_fixed(counts, q), gm.gate_float(counts, params)
    rng = np.random.default_rng(12)
    for t in range(T):
        changed = counts.copy()
        changed[:, t + 1:] = rng.integers(0, H * W + 1, size=changed[:, t + 1:].shape)
        np.testing.assert_array_equal(gm.gate_fixed(changed, q)[:, : t + 1], code[:, : t + 1])
        np.testing.assert_allclose(gm.gate_float(changed, params)[:, : t + 1], g[:, : t + 1], atol=1e-12)
        np.testing.assert_array_equal(gm.gate_fixed_step(counts[:, : t + 1], t, q), code[:, t])
        np.testing.assert_array_equal(gm.gate_fixed_step(changed, t, q), code[:, t])  # rows > t unused
        np.testing.assert_allclose(gm.gate_float_step(counts, t, params), g[:, t], atol=1e-12)
    with pytest.raises(ValueError):
        gm.gate_fixed_step(counts, 0, gm.quantize_gate(make_params("window", 4, 4)))


def test_window_mode_is_not_causal():
    params = make_params("window", 4, 4, seed=3, gain=2.0)
    counts = counts_of(random_spikes(3))
    changed = counts.copy()
    changed[:, -1] = H * W - changed[:, -1]
    assert not np.allclose(gm.gate_float(changed, params)[:, 0], gm.gate_float(counts, params)[:, 0])


@pytest.mark.parametrize("payload_bits", [1, 4, 8, 12])
def test_sigmoid_table_and_payload_encoding(payload_bits):
    lut, rng = gm.sigmoid_lut(lut_bits=payload_bits, payload_bits=payload_bits)
    b, L = payload_bits, payload_bits
    assert lut.shape == (2 * (rng << L) + 1,)
    assert lut[0] == 0 and lut[-1] == 2 ** b - 1 and np.all(np.diff(lut) >= 0)
    assert lut[rng << L] == 2 ** (b - 1)  # sigmoid(0) = 1/2
    # saturated beyond the range: clipping the index loses nothing
    assert np.floor(2 ** b / (1 + np.exp(rng)) + 0.5) == 0
    assert np.floor(2 ** b / (1 + np.exp(-rng)) + 0.5) >= 2 ** b
    # nearest code everywhere below the clipped top code
    x = (np.arange(lut.size) - (rng << L)) / 2 ** L
    exact = 2 ** b / (1 + np.exp(-x))
    assert np.all(np.abs(lut - exact)[lut < 2 ** b - 1] <= 0.5 + 1e-9)


def test_defaults_and_encoding():
    q = gm.quantize_gate(make_params("window", 4, 4))
    assert (q.weight_bits, q.lut_bits, q.payload_bits, q.frac_bits) == (8, 8, 8, 16)
    assert q.lut_range == 7 and q.lut_size == 3585 and q.gate_scale == 2.0 ** -8 and q.payload_max == 255
    assert np.abs(q.w_tla_q).max() == 127 and q.w_tla_q.dtype == np.int32
    np.testing.assert_allclose(q.w_tla_q * q.w_tla_scale, q.params.w_tla, atol=q.w_tla_scale / 2 + 1e-15)
    real = q.cla_mult * 2.0 ** -q.cla_shift
    assert 2 ** 30 <= q.cla_mult < 2 ** 31
    assert abs(real / (q.w_cla_scale * 2.0 ** 16 / (H * W)) - 1) <= 2.0 ** -31
    # a huge fused input saturates to the top code, a very negative one to 0
    big = gm.GateParams(T=1, C=1, H=1, W=1, w_tla=[[[8.0]]], w_cla=[[[8.0]]])
    neg = gm.GateParams(T=1, C=1, H=1, W=1, w_tla=[[[8.0]]], w_cla=[[[-8.0]]])
    assert gm.gate_fixed([[1]], gm.quantize_gate(big))[0, 0] == 255
    assert gm.gate_fixed([[1]], gm.quantize_gate(neg))[0, 0] == 0
    assert gm.gate_fixed([[0]], gm.quantize_gate(big))[0, 0] == 128


def test_one_tap_gate_by_hand():
    """T = C = 1, 1-tap kernels: gate = sigmoid(a·b·(n/HW)²); the code is the nearest one."""
    a, b = 1.7, -0.9
    params = gm.GateParams(T=1, C=1, H=2, W=2, w_tla=[[[a]]], w_cla=[[[b]]])
    q = gm.quantize_gate(params)
    for n in range(5):
        fused = (q.w_tla_q.item() * q.w_tla_scale) * (q.w_cla_q.item() * q.w_cla_scale) * (n / 4) ** 2
        want = np.floor(256 / (1 + np.exp(-round(fused * 256) / 256)) + 0.5)
        assert gm.gate_fixed([[n]], q)[0, 0] == min(want, 255)


def test_validation_and_round_trip(tmp_path):
    params = make_params("streaming", 2, 3, seed=2)
    q = gm.quantize_gate(params, weight_bits=6, lut_bits=7, payload_bits=6, frac_bits=14)
    counts = counts_of(random_spikes(2))
    np.savez(tmp_path / "gate.npz", **q.to_arrays())
    with np.load(tmp_path / "gate.npz") as f:
        q2 = gm.QuantizedGate.from_arrays(f)
    assert q2.params.mode == "streaming" and q2.payload_bits == 6
    np.testing.assert_array_equal(gm.gate_fixed(counts, q2), gm.gate_fixed(counts, q))
    with pytest.raises(ValueError):
        gm.gate_fixed(counts + H * W, q)  # counts above H·W
    with pytest.raises(ValueError):
        gm.gate_fixed(counts[:, :-1], q)  # wrong T
    with pytest.raises(ValueError):
        gm.quantize_gate(params, frac_bits=40)  # int64 overflow in the worst case
    with pytest.raises(ValueError):
        gm.GateParams(T=T, C=C, H=H, W=W, w_tla=np.zeros((C, C + 1, 2)), w_cla=np.zeros((T, T, 2)))
    with pytest.raises(ValueError):
        gm.GateParams(T=T, C=C, H=H, W=W, w_tla=np.zeros((C, C, 2)), w_cla=np.zeros((T, T, 2)), mode="causal")

"""NetX segments: slayer's own export, read back by ``netx.hdf5.Network`` unchanged; slayer's quantized
forward of the exported blocks equals the emulator spike for spike."""

import contextlib
import io

import h5py
import numpy as np
import pytest
import torch

from tcja_deploy.conversion import netx_export
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion import passes as P
from tcja_deploy.conversion.build import build_graph
from tcja_deploy.conversion.targets import TARGETS, run_passes
from tcja_deploy.hardware import emulator

from tiny import tiny_input, tiny_model


@pytest.fixture(scope="module")
def qgraph():
    trunk = run_passes(TARGETS["lava-float"], build_graph(tiny_model()))
    return P.quantize_loihi2(trunk, P.calibrate(trunk, tiny_input(16)))


def test_segments_split_at_gates(qgraph):
    segs = netx_export.segments(qgraph)
    assert [s["layers"] for s in segs] == [["conv0", "pool0", "conv1", "pool1"], ["conv2"], ["linear0"]]
    assert [s["input_from"] for s in segs] == ["input", "gate0", "gate1"]
    assert segs[0]["input_payload_bits"] == 2 and segs[1]["input_payload_bits"] == NC.PAYLOAD_BITS
    gates = netx_export.gates(qgraph)
    assert gates[0]["squeeze_from"] == "lif1" and gates[0]["s_shape"] == [6, 4, 4] and gates[0]["x_shape"] == [6, 2, 2]
    assert gates[1]["squeeze_from"] == "lif2" and gates[1]["s_shape"] == gates[1]["x_shape"] == [6, 2, 2]


def test_netx_reads_the_segments(qgraph, tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl.netx import hdf5
    for seg in netx_export.segments(qgraph):
        path = tmp_path / seg["file"]
        netx_export.export_segment(qgraph, seg, path)
        netx_export.check_segment_file(qgraph, seg, path)
        net = hdf5.Network(net_config=str(path), input_message_bits=seg["input_payload_bits"])
        assert len(net.layers) == len(seg["layers"])
        in_shape = tuple(seg["input_shape"])
        flat = (int(np.prod(in_shape)),)
        assert net.inp.shape == (in_shape[::-1] if len(in_shape) == 3 and seg["index"] < 2 else flat)
        out = tuple(seg["output_shape"])
        assert net.out.shape == (out[::-1] if len(out) == 3 else out)
        with h5py.File(path, "r") as f:  # what slayer wrote: CUBA neurons, integer weights, the v-bias
            types = [f[f"layer/{i}/type"][0] for i in range(len(f["layer"]))]
            assert types[0] == b"input" and types.count(b"conv") + types.count(b"dense") == len(seg["layers"])
            first = f[f"layer/{min(i for i, t in enumerate(types) if t in (b'conv', b'dense'))}"]
            assert first["neuron/type"][()] == b"CUBA"
            if qgraph.nodes[seg["layers"][0]].kind == "q_conv2d" and "bias" in first:
                bias = qgraph.nodes[qgraph.names[qgraph.names.index(seg["layers"][0]) + 1]].bias_mant
                assert np.array_equal(first["bias"][()], bias)


def test_slayer_quantized_forward_equals_emulator(qgraph):
    """The exported slayer blocks (delay_shift off) reproduce the emulator's spikes on every layer."""
    x = tiny_input(6)
    emu = emulator.emulate(qgraph, x, record=True)
    layers = {layer.name: layer for layer in emu.layers}
    for seg in netx_export.segments(qgraph):
        blocks = netx_export.slayer_blocks(qgraph, seg)[1:]
        inp = layers[seg["layers"][0]].input_spikes.astype(np.float32)  # [T, N, ...] payloads
        z = torch.as_tensor(np.moveaxis(inp, 0, -1))  # slayer's layout [N, ..., T]
        names = iter(seg["layers"])
        with torch.no_grad():
            for blk in blocks:
                blk.eval()
                z = blk(z)
                if blk.__class__.__name__ == "Flatten":
                    continue
                name = next(names)
                ref = np.moveaxis(layers[name].output_spikes, 0, -1)  # [N, ..., T]
                assert np.array_equal(z.numpy() > 0, ref > 0), name
                assert ref.sum() > 0, name

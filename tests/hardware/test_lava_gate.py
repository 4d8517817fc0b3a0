"""The neuro-core gate on Lava's simulator: every stage equals the integer stages, at every step."""

from __future__ import annotations

import numpy as np
import pytest

from tcja_deploy.conversion import gate_math as gm
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.hardware import lava_gate as LG


def _source(data: np.ndarray, steps: int):
    """A RingBuffer sending spikes [N·T, *shape] from Lava step 1 (then zeros)."""
    from lava.proc.io.source import RingBuffer

    buf = np.zeros(data.shape[1:] + (steps,), dtype=np.int32)
    buf[..., : data.shape[0]] = np.moveaxis(data, 0, -1)
    return RingBuffer(data=buf)


@pytest.mark.parametrize("mode,skew", [("window", 0), ("streaming", 0), ("window", 1), ("streaming", 1)])
def test_every_stage_on_lava_equals_the_integer_stages(mode, skew):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from tcja_deploy.hardware.lava_runtime import import_lava_runtime

    import_lava_runtime()
    rng = np.random.default_rng(7 + skew)
    T, C, H, W, N = 5, 3, 3, 3, 3
    p = gm.GateParams(T=T, C=C, H=H, W=W, w_tla=rng.normal(0, 1, (C, C, 2)), w_cla=rng.normal(0, 1, (T, T, 3)),
                      mode=mode)
    ng = NC.quantize_neurocore(p)
    s = (rng.random((T, N, C, H, W)) < 0.4).astype(np.int64)
    x = (rng.random((T, N, C, 2, 2)) < 0.5).astype(np.int64)  # the gated spikes: another map (a pool's output)
    st = NC.stages(s.sum((3, 4)).transpose(1, 0, 2), ng)
    gated = x * st["code"].transpose(1, 0, 2)[..., None, None]
    steps = N * T + T + 20

    def seq(a, lag):  # [T, N, ...] → [N·T + lag − 1, ...]: sample after sample, first step at Lava step `lag`
        flat = np.moveaxis(a, 1, 0).reshape(N * T, *a.shape[2:])
        return np.concatenate([np.zeros((lag - 1,) + flat.shape[1:], dtype=flat.dtype), flat])

    s_src, x_src = _source(seq(s, 1), steps), _source(seq(x, 1 + skew), steps)
    clock = LG.PhaseClock(T, first=1)
    net = LG.build_gate(ng, s_src.s_out, (C, H, W), x_src.s_out, (C, 2, 2), ls=1, lx=1 + skew, clock=clock)
    probes = {}
    for name, (port, start, shape) in net.probes.items():
        ext = Extractor(shape=tuple(port.shape), buffer_size=steps + 1)
        port.connect(ext.in_port)
        probes[name] = (ext, start, shape)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    s_src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    try:
        recorded = {name: np.stack([ext.receive() for _ in range(steps)]) for name, (ext, _, _) in probes.items()}
    finally:
        s_src.stop()
    want = LG.expected_series(st, ng, gated)
    assert set(want) == set(probes)
    for name, (_, start, shape) in probes.items():
        got = recorded[name][start - 1: start - 1 + N * T].reshape(N * T, *shape)
        assert np.array_equal(got, want[name]), name
        assert want[name].any(), name  # the check saw data
    assert not recorded["out"][: probes["out"][1] - 1].any()  # nothing leaves the gate before its latency

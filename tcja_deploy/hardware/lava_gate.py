"""The neuro-core TCJA gate as a sub-network of lava-nc's standard processes.

Every stage of :mod:`tcja_deploy.conversion.neurocore_gate` becomes a Lava process that Intel ships a
Loihi 2 model for: ``Sparse`` / ``DelaySparse`` synapses (graded messages), ``GradedVec`` /
``GradedReluVec`` / ``ProdNeuron`` neurons, and one bias-driven ``LIF`` per network (the *phase clock*:
one spike every T steps) that marks which step of a window each stage holds. Nothing here is our own
process model; the builder only writes weights, delays and shifts.

Clock (Lava steps, sample 0): the squeezed spikes of window step t leave their layer at ``Ls + t``, the
spikes to be gated at ``Lx + t`` (``Lx = Ls + skew``). Then, with ``v_t`` the step at which row t is
complete (``T − 1`` in window mode, ``t`` streaming)::

    squeeze  sq        Ls + 1 + t        (GradedVec, C)
    select   sel       Ls + 2 + t'       (ProdNeuron, T·C; row t' only)
    fuse     product   Ls + 3 + v_t      (ProdNeuron, T·C; A on a_in1, B on a_in2)
    sigmoid  clamp_relu Ls + 4 + v_t     (GradedReluVec, 2·T·C)
             clamp     Ls + 5 + v_t      (GradedVec, T·C)
             relu      Ls + 6 + v_t      (GradedReluVec, (n−2)·T·C)
             sum       Ls + 7 + v_t      (GradedVec, T·C)
    replay   replay    Lx + D_x + t      (GradedVec, C)
    scale    out       Lx + 1 + D_x + t  (ProdNeuron, C·H'·W')

(:func:`tcja_deploy.conversion.neurocore_gate.replay_delay` gives D_x and the replay delays.) Each
entry of :attr:`GateNetwork.probes` records one stage with the step at which its window-0 data starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse as sp

from tcja_deploy.conversion import neurocore_gate as NC

#: Lava LIF threshold unit (vth is shifted left by 6 in the fixed-point model).
_VTH_UNIT = 1 << 6


@dataclass
class GateNetwork:
    """The processes of one neuro-core gate.

    Attributes:
        out_port: the gated payloads, shape (C, H', W') (CHW).
        probes: stage name → (out port, Lava step of window 0's first recorded step, per-step shape).
        processes: every process created (kept alive until the run ends).
    """

    out_port: object
    probes: dict[str, tuple] = field(default_factory=dict)
    processes: list = field(default_factory=list)


class PhaseClock:
    """One ``LIF`` that spikes at the Lava steps ≡ ``first`` (mod T), ``first`` ∈ [1, T]: bias 64 per step,
    threshold T − 1 (in units of 64), no leak; started at ``v = 64·(T − first)`` (measured in Lava 0.10:
    v0 = 64·m gives the first spike at step T − m)."""

    def __init__(self, T: int, first: int = 1):
        from lava.proc.lif.process import LIF

        self.T, self.first = int(T), int(first)
        self.lif = LIF(shape=(1,), du=4095, dv=0, bias_mant=_VTH_UNIT, bias_exp=0, vth=self.T - 1,
                       v=_VTH_UNIT * (self.T - self.first))

    def delay_to(self, step: int) -> int:
        """The delay (0 … T−1) that makes the clock's pulse arrive at Lava steps ≡ ``step`` (mod T)."""
        return (step - self.first - 1) % self.T


def _pulse(clock: PhaseClock, arrive: np.ndarray, weights: np.ndarray, exp: int, procs: list):
    """A ``DelaySparse`` 1 → len(arrive) from the clock: target i gets ``weights[i] << exp`` at the Lava
    steps ≡ arrive[i] (mod T). Targets with weight 0 get nothing."""
    from lava.proc.sparse.process import DelaySparse, Sparse

    n = len(arrive)
    if n and int(np.min(arrive)) < clock.first + 1:
        raise ValueError(f"a pulse is needed at Lava step {int(np.min(arrive))}, before the clock's first spike "
                         f"(step {clock.first}) can arrive")
    rows = np.flatnonzero(weights)
    w = sp.csr_matrix((weights[rows].astype(np.int64), (rows, np.zeros_like(rows))), shape=(n, 1))
    d = np.array([clock.delay_to(int(a)) for a in arrive[rows]], dtype=np.int64)
    if d.max(initial=0) == 0:
        syn = Sparse(weights=w, weight_exp=exp, num_message_bits=0)
    else:
        delays = sp.csr_matrix((d, (rows, np.zeros_like(rows))), shape=(n, 1), dtype=np.int64)
        syn = DelaySparse(weights=w, delays=delays, weight_exp=exp, num_message_bits=0)
    clock.lif.s_out.connect(syn.s_in)
    procs.append(syn)
    return syn.a_out


def _constant(clock: PhaseClock, arrive: np.ndarray, values: np.ndarray, procs: list, port) -> None:
    """Inject the integers ``values`` (|v| < 2^16) at the steps ≡ arrive (mod T), exactly: one pulse per sign
    and part (``|v| >> 8`` with weight_exp 8, ``|v| & 255``), so that every synapse is one-sign and 8-bit."""
    values = np.asarray(values, dtype=np.int64)
    if np.abs(values).max(initial=0) >= 1 << (2 * NC.PULSE_SPLIT):
        raise NC.GatePlacementError(f"a constant {int(np.abs(values).max())} does not fit two 8-bit pulses")
    mag = np.abs(values)
    for sign in (1, -1):
        part_of = np.where(np.sign(values) == sign, mag, 0)
        for exp, part in ((NC.PULSE_SPLIT, part_of >> NC.PULSE_SPLIT), (0, part_of & 255)):
            if part.any():
                _pulse(clock, arrive, sign * part, exp, procs).connect(port)


def _delayed(weights: sp.csr_matrix, delays: np.ndarray | None, exp: int, bits: int, procs: list):
    """A Sparse (no delays) or DelaySparse with per-synapse delays given as an array matching weights.data."""
    from lava.proc.sparse.process import DelaySparse, Sparse

    weights = weights.tocsr()
    weights.sort_indices()
    if delays is None or int(np.max(delays, initial=0)) == 0:
        syn = Sparse(weights=weights, weight_exp=exp, num_message_bits=bits)
    else:
        dm = sp.csr_matrix((np.asarray(delays, dtype=np.int64), weights.indices, weights.indptr), shape=weights.shape)
        syn = DelaySparse(weights=weights, delays=dm, weight_exp=exp, num_message_bits=bits)
    procs.append(syn)
    return syn


def build_gate(ng: NC.NeurocoreGate, s_port, s_shape: tuple, x_port, x_shape: tuple, ls: int, lx: int,
               clock: PhaseClock) -> GateNetwork:
    """Wire one neuro-core gate.

    Args:
        ng: the gate's integer stages.
        s_port: CHW out port of the spikes to squeeze (C, H, W); x_port: CHW out port of the spikes to gate.
        ls, lx: Lava steps at which window step 0 of sample 0 leaves the s and x layers.
        clock: the network's phase clock.
    """
    from lava.proc.graded.process import GradedReluVec, GradedVec
    from lava.proc.prodneuron.process import ProdNeuron

    T, C, rows = ng.T, ng.C, ng.rows
    procs: list = []
    v = ng.valid_step()
    t_of_row = np.repeat(np.arange(T), C)  # row (t, c) → t
    net = GateNetwork(out_port=None, processes=procs)

    # 1. squeeze: Sparse C·H·W → C (weight 1, >> r), GradedVec
    area = int(np.prod(s_shape[1:]))
    cols = np.arange(C * area)
    w_sq = sp.csr_matrix((np.ones(C * area, dtype=np.int64), (cols // area, cols)), shape=(C, C * area))
    squeeze = _delayed(w_sq, None, -ng.squeeze_shift, 0, procs)
    s_port.flatten().connect(squeeze.s_in)
    sq = GradedVec(shape=(C,), vth=0)
    squeeze.a_out.connect(sq.a_in)
    procs.append(sq)
    net.probes["squeeze"] = (sq.s_out, ls + 1, (C,))

    # 2. select: fan-out C → T·C into ProdNeuron a_in1, the clock's pulse of step t' into a_in2
    fan = sp.csr_matrix((np.ones(rows, dtype=np.int64), (np.arange(rows), np.tile(np.arange(C), T))),
                        shape=(rows, C))
    fan_syn = _delayed(fan, None, 0, 24, procs)
    sq.s_out.connect(fan_syn.s_in)
    sel = ProdNeuron(shape=(rows,), vth=0, exp=0)
    procs.append(sel)
    fan_syn.a_out.connect(sel.a_in1)
    _pulse(clock, ls + 2 + t_of_row, np.ones(rows, dtype=np.int64), 0, procs).connect(sel.a_in2)
    net.probes["select"] = (sel.s_out, ls + 2, (T, C))

    # 3. CLA / TLA: DelaySparse T·C → T·C, weights 2·M (even), delay v_t − t', >> (1 + shift) per slot
    prod = ProdNeuron(shape=(rows,), vth=0, exp=ng.prod_shift)
    procs.append(prod)
    for m, shift, port in zip(NC.linear_maps(ng), (ng.a_shift, ng.b_shift), (prod.a_in1, prod.a_in2)):
        flat = sp.csr_matrix(2 * m.reshape(rows, rows))
        flat.sort_indices()
        tgt = np.repeat(np.arange(rows), np.diff(flat.indptr))
        delays = v[t_of_row[tgt]] - t_of_row[flat.indices]
        if delays.size and delays.min() < 0:
            raise NC.GatePlacementError("a CLA/TLA weight reads a step after its row is complete")
        syn = _delayed(flat, delays, -(1 + shift), 24, procs)
        sel.s_out.connect(syn.s_in)
        syn.a_out.connect(port)
    net.probes["product"] = (prod.s_out, ls + 3, (T, C))

    # 5. sigmoid: clamp c = max(0, P + K) − max(0, P − K), knot relus max(0, c − offset_j), G = Σ slope · relu + half
    k_top = int(ng.knots[-1])
    clamp_relu = GradedReluVec(shape=(2 * rows,), vth=0)
    procs.append(clamp_relu)
    two = sp.csr_matrix((np.ones(2 * rows, dtype=np.int64), (np.arange(2 * rows), np.tile(np.arange(rows), 2))),
                        shape=(2 * rows, rows))
    syn = _delayed(two, None, 0, 24, procs)
    prod.s_out.connect(syn.s_in)
    syn.a_out.connect(clamp_relu.a_in)
    arrive = ls + NC.STAGE_STEP["clamp_relu"] + v[t_of_row]
    _constant(clock, np.tile(arrive, 2), np.concatenate([np.full(rows, k_top), np.full(rows, -k_top)]), procs,
              clamp_relu.a_in)
    clamp = GradedVec(shape=(rows,), vth=0)
    procs.append(clamp)
    diff = sp.csr_matrix((np.concatenate([np.full(rows, 2), np.full(rows, -2)]).astype(np.int64),
                          (np.tile(np.arange(rows), 2), np.arange(2 * rows))), shape=(rows, 2 * rows))
    syn = _delayed(diff, None, -1, 24, procs)  # mixed sign: even weights, >> 1
    clamp_relu.s_out.connect(syn.s_in)
    syn.a_out.connect(clamp.a_in)
    net.probes["clamp_relu"] = (clamp_relu.s_out, ls + NC.STAGE_STEP["clamp_relu"], (2, T, C))
    net.probes["clamp"] = (clamp.s_out, ls + NC.STAGE_STEP["clamp"], (T, C))

    n_in = len(ng.offsets)
    relu = GradedReluVec(shape=(n_in * rows,), vth=0)
    procs.append(relu)
    ident = sp.csr_matrix((np.ones(n_in * rows, dtype=np.int64),
                           (np.arange(n_in * rows), np.tile(np.arange(rows), n_in))), shape=(n_in * rows, rows))
    syn = _delayed(ident, None, 0, 24, procs)
    clamp.s_out.connect(syn.s_in)
    syn.a_out.connect(relu.a_in)
    arrive = ls + NC.STAGE_STEP["relu"] + v[t_of_row]
    _constant(clock, np.tile(arrive, n_in), -np.repeat(ng.offsets, rows), procs, relu.a_in)
    net.probes["relu"] = (relu.s_out, ls + NC.STAGE_STEP["relu"], (n_in, T, C))

    total = GradedVec(shape=(rows,), vth=0)
    procs.append(total)
    # slope[0] · c skips the knot relus' hop: one step of delay brings it to the sum with them
    syn = _delayed(sp.identity(rows, dtype=np.int64, format="csr") * int(ng.slope[0]), np.ones(rows, np.int64), 0,
                   24, procs)
    clamp.s_out.connect(syn.s_in)
    syn.a_out.connect(total.a_in)
    slope = np.repeat(ng.slope[1:], rows)
    for sign in (1, -1):  # one-sign synapses keep all 8 bits
        keep = np.flatnonzero(np.sign(slope) == sign)
        if keep.size:
            w = sp.csr_matrix((slope[keep], (keep % rows, keep)), shape=(rows, n_in * rows))
            syn = _delayed(w, None, 0, 24, procs)
            relu.s_out.connect(syn.s_in)
            syn.a_out.connect(total.a_in)
    arrive = ls + NC.STAGE_STEP["sum"] + v[t_of_row]
    _pulse(clock, arrive, np.ones(rows, dtype=np.int64), ng.out_shift - 1, procs).connect(total.a_in)
    net.probes["sum"] = (total.s_out, ls + NC.STAGE_STEP["sum"], (T, C))

    # 6. replay row t at step t (DelaySparse T·C → C), broadcast over H'×W', scale the held spikes
    d_x, rho = NC.replay_delay(ng, lx - ls)
    rep_w = sp.csr_matrix((np.ones(rows, dtype=np.int64), (np.tile(np.arange(C), T), np.arange(rows))),
                          shape=(C, rows))
    rep_w.sort_indices()
    rep_delays = rho[t_of_row[rep_w.indices]]
    rep = _delayed(rep_w, rep_delays, 0, 24, procs)
    total.s_out.connect(rep.s_in)
    replay = GradedVec(shape=(C,), vth=0)
    procs.append(replay)
    rep.a_out.connect(replay.a_in)
    net.probes["replay"] = (replay.s_out, lx + d_x, (C,))

    xc, xh, xw = x_shape
    pix = xh * xw
    cols = np.arange(C * pix)
    bcast = sp.csr_matrix((np.ones(C * pix, dtype=np.int64), (cols, cols // pix)), shape=(C * pix, C))
    b_syn = _delayed(bcast, None, 0, 24, procs)
    replay.s_out.connect(b_syn.s_in)
    out = ProdNeuron(shape=(C * pix,), vth=0, exp=ng.out_shift)
    procs.append(out)
    b_syn.a_out.connect(out.a_in2)
    hold = sp.identity(C * pix, dtype=np.int64, format="csr")
    h_syn = _delayed(hold, np.full(C * pix, d_x), 0, 0, procs)
    x_port.flatten().connect(h_syn.s_in)
    h_syn.a_out.connect(out.a_in1)
    net.out_port = out.s_out.reshape((xc, xh, xw))
    net.probes["out"] = (net.out_port, lx + 1 + d_x, (xc, xh, xw))
    return net


def expected_series(stage_values: dict, ng: NC.NeurocoreGate, gated: np.ndarray) -> dict[str, np.ndarray]:
    """What each probe must record, per Lava step from its start, for N back-to-back samples.

    Args:
        stage_values: :func:`neurocore_gate.stages` of the samples' counts (numpy, [N, T, C] …).
        gated: [T, N, C, H', W'] the gate's output payloads (the emulator's).

    Returns {stage: [N·T, *per-step shape]} int64: rows are zero except at the step they hold.
    """
    T, C = ng.T, ng.C
    N = stage_values["squeeze"].shape[0]
    v = ng.valid_step()
    out = {"squeeze": np.asarray(stage_values["squeeze"], dtype=np.int64).reshape(N * T, C)}
    sel = np.zeros((N, T, T, C), dtype=np.int64)  # [N, step, row t', C]
    for t in range(T):
        sel[:, t, t] = stage_values["squeeze"][:, t]
    out["select"] = sel.reshape(N * T, T, C)
    for name in ("product", "clamp", "sum", "clamp_relu", "relu"):
        vals = np.asarray(stage_values[name], dtype=np.int64)  # [N, (k,) T, C]
        arr = np.zeros((N, T) + vals.shape[1:], dtype=np.int64)  # [N, step, (k,) T, C]
        for t in range(T):
            arr[:, v[t], ..., t, :] = vals[..., t, :]
        out[name] = arr.reshape((N * T,) + vals.shape[1:])
    out["replay"] = np.asarray(stage_values["sum"], dtype=np.int64).reshape(N * T, C)
    out["out"] = np.moveaxis(np.asarray(gated, dtype=np.int64), 0, 1).reshape(N * T, *gated.shape[2:])
    return out

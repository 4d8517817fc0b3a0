"""``lif-layer``: Linear(n → n) + LIF over T steps, forward + backward (the Open Neuromorphic setting).

The Open Neuromorphic SNN library benchmark (Lenz et al., 2023) times one fully-connected layer and
one LIF layer, input [T=500, batch 16, n], forward and backward, at n = 4k and 16k neurons. One
call here = forward, ``sum`` of the spikes, backward (gradients to the Linear's weights and input).

Sizes:

- ``full``: T=500, batch 16, n ∈ {4096, 16384}.
- ``cpu``:  T=100, batch 16, n ∈ {1024, 4096}.
- ``toy``:  T=20,  batch 4,  n ∈ {256}.

Implementations (``--impls``; default ``ours,norse,spikingjelly``), all with the neuron our models
use (τ_mem = 2 steps, τ_syn = 1, v_th = 1, hard reset to 0) so their spikes can be compared:

- ``ours``: ``tcja_deploy.models.lif.LIFSequence`` (the fused LIF).
- ``norse``: ``norse.torch.LIF`` with the same parameters (dt = 1) — Norse's plain module.
- ``spikingjelly``: multi-step ``neuron.LIFNode(tau=2, decay_input=True, v_reset=0,
  detach_reset=False, backend='torch')`` (``'cupy'`` on CUDA when CuPy imports).
- ``ours-cuba`` / ``norse-default``: Norse's default neuron (τ_syn 5 ms, τ_mem 10 ms at dt 1 ms: the
  current is carried across steps, so the fused LIF takes its general path): ours as
  ``LIFConfig(tau_mem=10, tau_syn=5)`` at dt = 1 step, Norse as ``norse.torch.LIF()`` untouched.

The input is normal with standard deviation 2 (a few % of the neurons spike); the Linear is seeded identically for every implementation.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from tcja_deploy.bench import common
from tcja_deploy.models.lif import LIFConfig, LIFSequence

NAME = "lif-layer"
DESCRIPTION = "Linear + LIF, fwd + bwd, batch 16 (Open Neuromorphic setting): ours vs Norse vs SpikingJelly"

SIZES = {
    "full": {"T": 500, "batch": 16, "neurons": [4096, 16384]},
    "cpu": {"T": 100, "batch": 16, "neurons": [1024, 4096]},
    "toy": {"T": 20, "batch": 4, "neurons": [256]},
}
IMPLS = ("ours", "norse", "spikingjelly", "ours-cuba", "norse-default")
DEFAULT_IMPLS = ("ours", "norse", "spikingjelly")
PEERS_OF = {"norse": "ours", "spikingjelly": "ours", "norse-default": "ours-cuba"}


class LinearLIF(nn.Module):
    """Linear(n, n) then a multi-step LIF over [T, N, n]."""

    def __init__(self, n: int, lif: nn.Module, kind: str):
        super().__init__()
        self.linear = nn.Linear(n, n)
        self.lif = lif
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        if self.kind == "norse":
            return self.lif(z)[0]
        return self.lif(z)


def build(impl: str, n: int, device: str, seed: int) -> nn.Module:
    if impl == "ours":
        lif: nn.Module = LIFSequence(LIFConfig())
        kind = "ours"
    elif impl == "ours-cuba":
        lif, kind = LIFSequence(LIFConfig(tau_mem=10.0, tau_syn=5.0)), "ours"
    elif impl == "norse":
        from norse.torch import LIF

        lif, kind = LIF(p=LIFConfig().norse_parameters(), dt=1.0), "norse"
    elif impl == "norse-default":
        from norse.torch import LIF

        lif, kind = LIF(), "norse"
    elif impl == "spikingjelly":
        from spikingjelly.activation_based import neuron, surrogate

        backend = "cupy" if device.startswith("cuda") and common.cupy_available() else "torch"
        lif = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                             surrogate_function=surrogate.ATan(), step_mode="m", backend=backend)
        kind = "spikingjelly"
    else:
        raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
    torch.manual_seed(seed)
    model = LinearLIF(n, lif, kind)
    torch.manual_seed(seed)
    model.linear.reset_parameters()
    return model.to(device)


def make_input(case: dict[str, Any], n: int, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7)
    return (2 * torch.randn(case["T"], case["batch"], n, generator=g)).to(device)


def make_step_fn(model: nn.Module, x: torch.Tensor, opts: common.BenchOptions) -> Callable[[], None]:
    reset: Callable[[], None] = lambda: None  # noqa: E731
    if model.kind == "spikingjelly":
        from spikingjelly.activation_based import functional

        reset = lambda: functional.reset_net(model)  # noqa: E731
    run = common.maybe_compile(model, opts)

    def step() -> None:
        reset()
        model.zero_grad(set_to_none=True)
        xx = x.detach().requires_grad_()
        with common.autocast_context(opts):
            out = run(xx)
        out.float().sum().backward()

    return step


def make_step(impl: str, opts: common.BenchOptions, case: dict[str, Any]) -> Callable[[], None]:
    """One implementation at one size, for the memory probe (``case["n"]`` picks the size)."""
    model = build(impl, case["n"], opts.device, opts.seed)
    return make_step_fn(model, make_input(case, case["n"], opts.device, opts.seed), opts)


def check_spikes(models: dict[str, nn.Module], x: torch.Tensor) -> dict[str, Any]:
    """Forward spikes of each implementation vs its reference (ours, or ours-cuba for norse-default)."""
    from spikingjelly.activation_based import functional

    outs = {}
    with torch.no_grad():
        for impl, m in models.items():
            if m.kind == "spikingjelly":
                functional.reset_net(m)
            outs[impl] = m(x)
    report: dict[str, Any] = {"spike_rate": {k: float(v.float().mean()) for k, v in outs.items()}}
    for impl, ref in PEERS_OF.items():
        if impl in outs and ref in outs:
            if impl == "norse-default":  # Norse rounds dt·τ⁻¹ = 0.001·100 in float32; ours 1/10: compare loosely
                report[impl] = {"vs": ref, "mismatch_fraction": float((outs[impl] != outs[ref]).float().mean())}
                continue
            mism = int((outs[impl] != outs[ref]).sum())
            report[impl] = {"vs": ref, "spikes_equal": mism == 0, "mismatched_spikes": mism}
            if mism:
                raise RuntimeError(f"{impl} and {ref} compute different spikes ({mism} differ)")
    return report


def run(opts: common.BenchOptions) -> dict[str, Any]:
    size = opts.size if opts.size in SIZES else "cpu"
    case = dict(SIZES[size])
    impls = tuple(opts.extra.get("impls") or DEFAULT_IMPLS)
    rows: list[dict[str, Any]] = []
    per_n: dict[str, Any] = {}
    for n in case["neurons"]:
        models = {impl: build(impl, n, opts.device, opts.seed) for impl in impls}
        x = make_input(case, n, opts.device, opts.seed)
        check = check_spikes(models, x)
        steps = {impl: make_step_fn(m, x, opts) for impl, m in models.items()}
        times = common.time_interleaved(steps, opts.repeats, opts.device)
        timing = {impl: common.summarize(t) for impl, t in times.items()}
        memory: dict[str, Any] = {}
        if opts.memory:
            if opts.device.startswith("cuda"):
                memory = {impl: {"peak_bytes": common.cuda_peak_bytes(steps[impl]),
                                 "method": "torch.cuda.max_memory_allocated"} for impl in impls}
            else:
                del steps, models
                memory = common.probe_memories(NAME, impls, opts, {**case, "n": n})
        per_n[str(n)] = {"check": check, "timing": timing, "memory": memory}
        for peer, ours in PEERS_OF.items():
            if peer in impls and ours in impls:
                label = f"n={n}" + (" (CUBA)" if ours == "ours-cuba" else "")
                rows.append(common.ratio_row(f"{label} fwd+bwd wall", "ms", 1e3 * timing[ours]["median_s"],
                                             1e3 * timing[peer]["median_s"], peer, "lower"))
                rows.append(common.ratio_row(f"{label} fwd+bwd CPU", "ms", 1e3 * timing[ours]["cpu_median_s"],
                                             1e3 * timing[peer]["cpu_median_s"], peer, "lower"))
                if memory:
                    rows.append(common.ratio_row(f"{label} peak memory", "MiB", common.mib(memory.get(ours)),
                                                 common.mib(memory.get(peer)), peer, "lower"))
    return {"size": {"name": size, **case}, "implementations": list(impls), "per_neurons": per_n, "rows": rows}

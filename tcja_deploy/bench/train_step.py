"""``train-step``: one TCJA-SNN training step, ours (TCJASNN) vs the same network in SpikingJelly.

One step = zero_grad, forward, MSE rate loss (the reference's), backward, Adam step, on the
``dvs128_gesture`` preset's layer list (5 × [Conv3×3(128) BN LIF (TCJA) MaxPool2], Dropout,
Linear→512, LIF, Dropout, Linear→110, LIF, vote over 10).

Sizes (T, batch, input C×H×W):

- ``full``: T=20, batch 16, 2×128×128 (the reference's training setting).
- ``cpu``:  T=20, batch 2, 2×64×64 — the spatial size is halved so a step fits a 2-core CPU in
  seconds; with 5 pools the flatten is 128×2×2 = 512 features, so the first Linear is 512→512
  instead of 2048→512. Everything else is the preset.
- ``toy``:  T=4, batch 2, 2×32×32 (Linear 128→512); for the smoke test.

The peer is written with ``spikingjelly.activation_based`` as the reference code writes it:
``layer.SeqToANNContainer`` around per-step Conv2d+BatchNorm2d / MaxPool2d / Linear, multi-step
``neuron.LIFNode(tau=2, decay_input=True, v_reset=0, detach_reset=False, surrogate ATan,
step_mode='m')`` with ``backend='cupy'`` on CUDA when CuPy imports (else ``'torch'``),
``layer.Dropout(step_mode='m')`` (one mask per sample for all steps, as ours), and the TCJA layer
below, written from the paper / reference ``src/layers.py`` (two Conv1d with ``padding='same'``).
Ours' weights are copied into it. Before timing, both run the same input in training mode (batch
statistics, dropout off for the check) and every LIF layer's spikes must be equal.

Neuron equivalence: Norse's LIF with τ_syn = 1 (current cleared every step) and SpikingJelly's
decay-input LIF with τ = 2 both compute v ← v + (x − v)/τ_mem (bit for bit: the factor ½ is exact),
then a hard reset to 0. They differ only at the threshold: Norse spikes when v > v_th, SpikingJelly
when v ≥ v_th; a tie needs v exactly equal to v_th in float32, which the check would report.
Surrogate gradients differ by design (Norse SuperSpike ours, ATan theirs as in the reference), so
gradients are not compared; the dense work per step is identical.

``--nproc N`` adds data-parallel scaling of our step: the same global batch on 1 and on N processes
under torchrun (:mod:`tcja_deploy.bench.ddp_scaling`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from tcja_deploy.bench import common
from tcja_deploy.models import specs
from tcja_deploy.models.lif import LIFSequence
from tcja_deploy.models.network import TCJASNN, SharedDropout, infer_shapes, rate_loss
from tcja_deploy.models.presets import get_preset

NAME = "train-step"
DESCRIPTION = "one training step (fwd + bwd + Adam) of the dvs128_gesture TCJA-SNN: ours vs SpikingJelly"

SIZES = {
    "full": {"T": 20, "batch": 16, "height": 128, "width": 128},
    "cpu": {"T": 20, "batch": 2, "height": 64, "width": 64},
    "toy": {"T": 4, "batch": 2, "height": 32, "width": 32},
}
PRESET = "dvs128_gesture"
# implementations: ours (fused LIF), ours with Norse's own LIF module (before the fused LIF), the peer
IMPLS = ("ours", "ours-norse", "spikingjelly")
DEFAULT_IMPLS = ("ours", "spikingjelly")


def model_config(case: dict[str, Any]) -> specs.ModelConfig:
    """The preset's layer list at the case's T and input size."""
    cfg = get_preset(PRESET, T=case["T"]).model
    return dataclasses.replace(cfg, input_shape=(cfg.input_shape[0], case["height"], case["width"]))


# --------------------------------------------------------------------------------------- the SpikingJelly peer


class SJTCJA(nn.Module):
    """TCJA as the reference writes it (ridgerchu/TCJA ``src/layers.py``), [T, N, C, H, W] → same.

    ``conv`` (T→T channels, kernel ``kernel_size_t`` across channels) is the paper's CLA;
    ``conv_c`` (C→C channels, kernel ``kernel_size_c`` across time) is the paper's TLA.
    """

    def __init__(self, kernel_size_t: int, kernel_size_c: int, T: int, channel: int):
        super().__init__()
        self.conv = nn.Conv1d(T, T, kernel_size_t, padding="same", bias=False)
        self.conv_c = nn.Conv1d(channel, channel, kernel_size_c, padding="same", bias=False)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = torch.mean(x_seq.permute(1, 0, 2, 3, 4), dim=[3, 4])  # [N, T, C]
        x_c = x.permute(0, 2, 1)  # [N, C, T]
        conv_t_out = self.conv(x).permute(1, 0, 2)  # [T, N, C]
        conv_c_out = self.conv_c(x_c).permute(2, 0, 1)  # [T, N, C]
        out = torch.sigmoid(conv_c_out * conv_t_out)
        return x_seq * out[:, :, :, None, None]


class VotingLayer(nn.Module):
    """Reference voting: AvgPool1d over groups of ``voters`` outputs, [N, K·voters] → [N, K]."""

    def __init__(self, voters: int):
        super().__init__()
        self.voting = nn.AvgPool1d(voters, voters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.voting(x.unsqueeze(1)).squeeze(1)


class SJNet(nn.Module):
    """SpikingJelly network of a :class:`ModelConfig`; ``forward`` [T, N, C, H, W] → scores [N, K].

    Attributes:
        body: multi-step modules up to the last LIF; ``vote`` (or Identity) after the mean over T.
        ours_to_sj: (our layer index, SpikingJelly module, what to copy) for :func:`copy_weights`.
    """

    def __init__(self, config: specs.ModelConfig, backend: str):
        from spikingjelly.activation_based import layer, neuron, surrogate

        super().__init__()
        shapes = [tuple(config.input_shape)] + infer_shapes(config)
        body: list[nn.Module] = []
        self.ours_to_sj: list[tuple[int, nn.Module, str]] = []
        vote: nn.Module = nn.Identity()
        pending: list[nn.Module] = []  # per-step modules merged into one SeqToANNContainer, as the reference

        def flush():
            if pending:
                body.append(layer.SeqToANNContainer(*pending))
                pending.clear()

        for i, spec in enumerate(config.layers):
            in_shape = shapes[i]
            if isinstance(spec, specs.Conv):
                m = nn.Conv2d(in_shape[0], spec.out_channels, spec.kernel_size, stride=spec.stride,
                              padding=spec.padding, bias=spec.bias)
                pending.append(m)
                self.ours_to_sj.append((i, m, "module"))
            elif isinstance(spec, specs.BatchNorm):
                m = nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])
                pending.append(m)
                self.ours_to_sj.append((i, m, "module"))
            elif isinstance(spec, specs.MaxPool):
                pending.append(nn.MaxPool2d(spec.kernel_size, spec.kernel_size))
            elif isinstance(spec, specs.AvgPool):
                pending.append(nn.AvgPool2d(spec.kernel_size, spec.kernel_size))
            elif isinstance(spec, specs.Linear):
                flush()
                m = nn.Linear(in_shape[0], spec.out_features, bias=spec.bias)
                body.append(layer.SeqToANNContainer(m))
                self.ours_to_sj.append((i, m, "module"))
            elif isinstance(spec, specs.LIF):
                flush()
                if spec.tau_syn != 1.0:
                    raise ValueError("SpikingJelly's LIFNode is our LIF only with tau_syn = 1")
                body.append(neuron.LIFNode(tau=spec.tau_mem, decay_input=True, v_threshold=spec.v_th, v_reset=0.0,
                                           surrogate_function=surrogate.ATan(), detach_reset=False,
                                           step_mode="m", backend=backend))
            elif isinstance(spec, specs.TCJAAttention):
                flush()
                if spec.causal:
                    raise ValueError("the reference TCJA is non-causal")
                m = SJTCJA(spec.kernel_cla, spec.kernel_tla, config.T, in_shape[0])
                body.append(m)
                self.ours_to_sj.append((i, m, "tcja"))
            elif isinstance(spec, specs.Dropout):
                flush()
                body.append(layer.Dropout(spec.p, step_mode="m"))
            elif isinstance(spec, specs.Flatten):
                flush()
                body.append(nn.Flatten(2))
            elif isinstance(spec, specs.Vote):
                flush()
                vote = VotingLayer(spec.voters)
            else:
                raise ValueError(f"no SpikingJelly counterpart for {spec!r}")
        flush()
        self.body = nn.Sequential(*body)
        self.vote = vote

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vote(self.body(x).mean(0))


def copy_weights(ours: TCJASNN, sj: SJNet) -> None:
    """Copy every parameter and BatchNorm buffer of ours into the SpikingJelly net."""
    with torch.no_grad():
        for i, m, what in sj.ours_to_sj:
            src = ours.layers[i]
            if what == "module":
                m.load_state_dict(src.module.state_dict())
            else:  # tcja: reference conv = our CLA, conv_c = our TLA
                m.conv.weight.copy_(src.cla.weight)
                m.conv_c.weight.copy_(src.tla.weight)


def sj_backend(device: str) -> str:
    return "cupy" if device.startswith("cuda") and common.cupy_available() else "torch"


# --------------------------------------------------------------------------------------- steps


def make_inputs(config: specs.ModelConfig, case: dict[str, Any], device: str, seed: int):
    """Event-count-like frames [T, N, C, H, W] (≈10 % ones) and labels [N]."""
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(case["T"], case["batch"], *config.input_shape, generator=g) < 0.1).float()
    y = torch.randint(0, config.num_classes, (case["batch"],), generator=g)
    return x.to(device), y.to(device)


def build_models(opts: common.BenchOptions, case: dict[str, Any], impls: tuple[str, ...]) -> dict[str, nn.Module]:
    """Models for the requested implementations, all with ours' initial weights (seeded)."""
    config = model_config(case)
    torch.manual_seed(opts.seed)
    ours = TCJASNN(config)
    models: dict[str, nn.Module] = {}
    for impl in impls:
        if impl == "ours":
            models[impl] = ours
        elif impl == "ours-norse":
            m = TCJASNN(config)
            m.load_state_dict(ours.state_dict())
            for mod in m.modules():
                if isinstance(mod, LIFSequence):
                    mod.implementation = "norse"
            models[impl] = m
        elif impl == "spikingjelly":
            sj = SJNet(config, sj_backend(opts.device))
            copy_weights(ours, sj)
            models[impl] = sj
        else:
            raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
    return {k: m.to(opts.device).train() for k, m in models.items()}


def make_step_fn(impl: str, model: nn.Module, opts: common.BenchOptions, config: specs.ModelConfig,
                 x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    """A closure running one full training step; returns the loss."""
    reset: Callable[[], None] = lambda: None  # noqa: E731
    if impl == "spikingjelly":
        from spikingjelly.activation_based import functional

        reset = lambda: functional.reset_net(model)  # noqa: E731
    run = common.maybe_compile(model, opts)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.cuda.amp.GradScaler() if (opts.amp and opts.device.startswith("cuda")) else None

    def step() -> float:
        reset()
        opt.zero_grad(set_to_none=True)
        with common.autocast_context(opts):
            scores = run(x)
            loss = rate_loss(scores.float(), y, "mse", config.num_classes)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return float(loss.detach())

    return step


def make_step(impl: str, opts: common.BenchOptions, case: dict[str, Any]) -> Callable[[], Any]:
    """Set up one implementation alone (for the memory probe) and return its step."""
    config = model_config(case)
    model = build_models(opts, case, (impl,))[impl]
    x, y = make_inputs(config, case, opts.device, opts.seed)
    return make_step_fn(impl, model, opts, config, x, y)


# --------------------------------------------------------------------------------------- equivalence check


def lif_outputs(model: nn.Module, x: torch.Tensor, impl: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Forward in training mode with dropout off; returns every LIF layer's spikes and the scores."""
    from spikingjelly.activation_based import functional, layer, neuron

    lif_types: tuple[type, ...] = (neuron.LIFNode,) if impl == "spikingjelly" else (LIFSequence,)
    drop_types: tuple[type, ...] = (layer.Dropout,) if impl == "spikingjelly" else (SharedDropout,)
    captured: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
             for m in model.modules() if isinstance(m, lif_types)]
    saved_p = [(m, m.p) for m in model.modules() if isinstance(m, drop_types)]
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    try:
        for m, _ in saved_p:
            m.p = 0.0
        if impl == "spikingjelly":
            functional.reset_net(model)
        with torch.no_grad():
            scores = model(x)
    finally:
        for h in hooks:
            h.remove()
        for m, p in saved_p:
            m.p = p
        model.load_state_dict(bn_state, strict=False)  # the check leaves BN running stats as they were
    return captured, scores


def check_equivalence(models: dict[str, nn.Module], x: torch.Tensor) -> dict[str, Any]:
    """Spikes of every LIF layer of each implementation vs ours; raises if any differ."""
    ref_spikes, ref_scores = lif_outputs(models["ours"], x, "ours")
    report: dict[str, Any] = {"mode": "train (batch statistics), dropout off",
                              "lif_layers": len(ref_spikes),
                              "spike_rates_ours": [float(s.float().mean()) for s in ref_spikes]}
    for impl, model in models.items():
        if impl == "ours":
            continue
        spikes, scores = lif_outputs(model, x, impl)
        if len(spikes) != len(ref_spikes):
            raise RuntimeError(f"{impl}: {len(spikes)} LIF layers, ours {len(ref_spikes)}")
        mismatches = [int((a != b).sum()) for a, b in zip(ref_spikes, spikes)]
        report[impl] = {
            "spikes_equal": all(n == 0 for n in mismatches),
            "mismatched_spikes_per_layer": mismatches,
            "spikes_compared": int(sum(s.numel() for s in spikes)),
            "scores_max_abs_diff": float((scores.float() - ref_scores.float()).abs().max()),
        }
        if mismatches and any(mismatches):
            raise RuntimeError(f"{impl} does not compute the same spikes as ours: mismatches per LIF layer "
                               f"{mismatches} (see the module docstring on v > v_th vs v ≥ v_th)")
    return report


# --------------------------------------------------------------------------------------- run


def run(opts: common.BenchOptions) -> dict[str, Any]:
    size = opts.size if opts.size in SIZES else "cpu"
    case = dict(SIZES[size])
    impls = tuple(opts.extra.get("impls") or DEFAULT_IMPLS)
    if "ours" not in impls:
        impls = ("ours", *impls)
    config = model_config(case)
    models = build_models(opts, case, impls)
    x, y = make_inputs(config, case, opts.device, opts.seed)
    check = check_equivalence(models, x)

    steps = {impl: make_step_fn(impl, models[impl], opts, config, x, y) for impl in impls}
    times = common.time_interleaved(steps, opts.repeats, opts.device)
    timing = {impl: common.summarize(t) for impl, t in times.items()}

    memory: dict[str, Any] = {}
    if opts.memory:
        if opts.device.startswith("cuda"):
            for impl in impls:
                memory[impl] = {"peak_bytes": common.cuda_peak_bytes(steps[impl]), "method": "torch.cuda.max_memory_allocated"}
        else:
            del steps, models  # free this process's memory before the probes
            memory = common.probe_memories(NAME, impls, opts, case)

    peer = "spikingjelly" if "spikingjelly" in impls else impls[-1]
    sps = {impl: case["batch"] / timing[impl]["median_s"] for impl in impls}
    rows = []
    for other in [peer] + [i for i in impls if i not in ("ours", peer)]:
        rows.append(common.ratio_row("train step", "samples/s", sps["ours"], sps[other], other, "higher"))
        rows.append(common.ratio_row("train step wall", "s/step", timing["ours"]["median_s"],
                                     timing[other]["median_s"], other, "lower"))
        rows.append(common.ratio_row("train step CPU", "s/step", timing["ours"]["cpu_median_s"],
                                     timing[other]["cpu_median_s"], other, "lower"))
        if memory:
            rows.append(common.ratio_row("peak step memory", "MiB", common.mib(memory.get("ours")),
                                         common.mib(memory.get(other)), other, "lower"))
    nproc = int(opts.extra.get("nproc") or 1)
    scaling = None
    if nproc > 1:
        from tcja_deploy.bench.ddp_scaling import run_scaling

        if case["batch"] % nproc:
            raise common.BenchUnavailable(f"--nproc {nproc}: the batch of size {size!r} ({case['batch']}) is not a "
                                          f"multiple of it")
        threads = opts.threads or torch.get_num_threads()
        scaling = run_scaling(case, nproc, opts.device, opts.repeats, threads, opts.seed)
        rows.append(common.ratio_row(f"DDP train step, {nproc} processes vs 1", "samples/s",
                                     scaling["runs"][1]["samples_per_s"], scaling["runs"][0]["samples_per_s"],
                                     "1 process", "higher", efficiency=scaling["efficiency"]))
    return {
        "ddp_scaling": scaling,
        "size": {"name": size, **case, "input_shape": list(config.input_shape), "preset": PRESET,
                 "sj_backend": sj_backend(opts.device)},
        "implementations": list(impls),
        "check": check,
        "timing": timing,
        "samples_per_s": sps,
        "memory": memory,
        "rows": rows,
    }

"""Training configuration: one dataclass whose field names are the CLI flags of ``python -m tcja_deploy.train``.

Fields left at ``None`` take the preset's defaults (epochs, batch_size, lr, loss, T) or, on
``--resume``, the resumed run's values. :func:`resolve` turns a user config into a complete one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tcja_deploy.errors import UserError
from tcja_deploy.models.presets import PRESET_NAMES, Preset, Recipe, get_preset
from tcja_deploy.models.specs import MAX_T, TCJAAttention
from tcja_deploy.models.presets.vae import is_vae_preset
from tcja_deploy.models.tcja import GATE_FUNCTIONS
from tcja_deploy.models.vae import VAE_LOSSES

DEFAULT_PRESET = "digits"
LOSSES = ("mse", "ce")
RECIPES = ("ours", "reference")
ENCODINGS = {"events": "digits-events", "images": "digits-images"}

# Fields that define what a run computes. On --resume they must agree with the saved run (when given).
RUN_FIELDS = ("preset", "epochs", "batch_size", "lr", "T", "loss", "seed", "augment", "encoding", "max_samples",
              "recipe", "drop_last", "causal", "gate_function", "no_tcja", "tcja_blocks")
# Fields that only say how to run (where the data lives, which device, ...): free to change on --resume.
RUNTIME_FIELDS = ("data_dir", "device", "amp", "compile", "out", "resume", "workers", "download", "sync_bn")


@dataclass(frozen=True)
class TrainConfig:
    """What ``python -m tcja_deploy.train`` does; each field is the CLI flag of the same name.

    Attributes:
        preset: network preset (see ``tcja_deploy.models.PRESET_NAMES``); None → ``digits``.
        data_dir: dataset root folder; None → the data module's default.
        epochs: training epochs; None → preset default.
        batch_size: samples per optimizer step — the global batch, split evenly across the ranks of a
            distributed run (it must be a multiple of the world size); None → preset default.
        lr: Adam's initial learning rate (cosine-annealed to 0 over the epochs); None → preset default.
        T: time steps per sample; None → preset default.
        loss: ``mse`` (firing rate vs one-hot, reference) or ``ce``; None → preset default.
        device: ``cpu``, ``cuda``, ``cuda:1``, ...; None or ``auto`` → CUDA if available, else CPU.
        amp: mixed precision (float16 autocast + gradient scaling) on CUDA; a no-op with a warning on CPU.
        compile: ``torch.compile`` the model for training and evaluation.
        seed: seed of weights, data order, dropout and augmentation.
        out: run directory; None → ``runs/<preset>-<YYYYmmdd-HHMMSS>``.
        resume: run directory to continue from its last completed epoch.
        workers: DataLoader worker processes (0: load in the main process).
        augment: training-set augmentation; None → the dataset's default.
        download: allow the data module to download a missing dataset.
        encoding: ``events`` or ``images`` (digits only): digits as DVS events or as static images.
        max_samples: use at most this many samples of each split (a fixed random subset; for smoke tests).
        recipe: ``ours`` (our defaults) or ``reference``: the reference code's surrogate, detached reset, AMP,
            drop_last and epochs (:class:`tcja_deploy.models.presets.Recipe`; presets with reference code only).
        drop_last: drop the last incomplete training batch; None → the recipe's (ours: keep it).
        sync_bn: BatchNorm statistics over all ranks (``torch.nn.SyncBatchNorm``; CUDA only) in distributed runs.
        no_tcja: spiking-VAE presets: the same network without its TCJA layers (the ablation).
        tcja_blocks: spiking-VAE presets: comma-separated blocks followed by TCJA (``enc0``…, ``dec0``…); None → all.
    """

    preset: str | None = None
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    T: int | None = None
    loss: str | None = None
    device: str | None = None
    amp: bool = False
    compile: bool = False
    seed: int = 0
    out: str | None = None
    resume: str | None = None
    workers: int = 0
    augment: bool | None = None
    download: bool = False
    encoding: str | None = None
    max_samples: int | None = None
    recipe: str = "ours"
    drop_last: bool | None = None
    sync_bn: bool = False
    causal: bool = False
    gate_function: str = "sigmoid"
    no_tcja: bool = False
    tcja_blocks: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "train config") -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise a one-line UserError naming ``source``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"{source}: unknown train config field(s) {unknown}")
        return cls(**d)


def dataset_name(preset: Preset, encoding: str | None) -> str:
    """Dataset the run trains on: the preset's, or digits-events / digits-images for ``--encoding``."""
    if encoding is None:
        return preset.dataset
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding {encoding!r}: choose one of {', '.join(ENCODINGS)}")
    if preset.model.preset != "digits":
        raise UserError(f"--encoding applies to the digits preset only, not to {preset.model.preset!r}")
    return ENCODINGS[encoding]


def load_preset(name: str, T: int | None = None) -> Preset:
    """The named preset (at ``T`` steps); unknown names and bad T raise UserError."""
    if name not in PRESET_NAMES:
        raise UserError(f"--preset {name!r}: unknown preset; choose one of: {', '.join(PRESET_NAMES)}")
    try:
        return get_preset(name, T)
    except ValueError as e:
        raise UserError(f"--T {T}: {e}") from None


def validate(config: TrainConfig) -> None:
    """Check value ranges of the fields that are set; a bad value raises a one-line UserError."""
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "T": config.T,
                "max_samples": config.max_samples}
    for name, value in positive.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be ≥ 1")
    if config.lr is not None and not (config.lr > 0 and math.isfinite(config.lr)):
        raise UserError(f"--lr {config.lr}: must be a finite number > 0")
    if not 0 <= config.seed < 2**63:
        raise UserError(f"--seed {config.seed}: must lie in [0, 2^63)")
    if config.T is not None and config.T > MAX_T:
        raise UserError(f"--T {config.T}: at most {MAX_T} time steps")
    losses = VAE_LOSSES if is_vae_preset(config.preset) else LOSSES
    if config.loss is not None and config.loss not in losses:
        raise UserError(f"--loss {config.loss!r}: choose one of {', '.join(losses)}")
    if config.workers < 0:
        raise UserError(f"--workers {config.workers}: must be ≥ 0")
    if config.encoding is not None and config.encoding not in ENCODINGS:
        raise UserError(f"--encoding {config.encoding!r}: choose one of {', '.join(ENCODINGS)}")
    if config.recipe not in RECIPES:
        raise UserError(f"--recipe {config.recipe!r}: choose one of {', '.join(RECIPES)}")
    if config.gate_function not in GATE_FUNCTIONS:
        raise UserError(f"--gate-function {config.gate_function!r}: choose one of {', '.join(GATE_FUNCTIONS)}")


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill unset fields from the preset: a config with preset, epochs, batch_size, lr, T and loss set."""
    validate(config)
    preset = load_preset(config.preset or DEFAULT_PRESET, config.T)
    dataset = dataset_name(preset, config.encoding)  # rejects --encoding for presets other than digits
    encoding = config.encoding
    if encoding is None and preset.model.preset == "digits":
        encoding = next((key for key, name in ENCODINGS.items() if name == dataset), None)
    recipe = reference_recipe(preset) if config.recipe == "reference" else None
    epochs = recipe.epochs if recipe else preset.epochs
    return replace(
        config,
        preset=preset.model.preset,
        amp=config.amp or bool(recipe and recipe.amp),
        drop_last=config.drop_last if config.drop_last is not None else bool(recipe and recipe.drop_last),
        epochs=config.epochs if config.epochs is not None else epochs,
        batch_size=config.batch_size if config.batch_size is not None else preset.batch_size,
        lr=config.lr if config.lr is not None else preset.lr,
        T=preset.model.T,
        loss=config.loss if config.loss is not None else preset.loss,
        encoding=encoding,
    )


def with_attention(model, causal: bool, gate_function: str):
    """The model config with every TCJA layer made causal (streaming-deployable) and/or given the chip's gate
    function; unchanged when neither is asked for."""
    if not causal and gate_function == "sigmoid":
        return model
    layers = tuple(replace(layer, causal=layer.causal or causal, gate_function=gate_function)
                   if isinstance(layer, TCJAAttention) else layer for layer in model.layers)
    return replace(model, layers=layers)


def reference_recipe(preset: Preset) -> Recipe:
    """The preset's reference training recipe; presets without reference code raise UserError."""
    if preset.reference is None:
        with_ref = [name for name in PRESET_NAMES if get_preset(name).reference is not None]
        raise UserError(f"--recipe reference: preset {preset.model.preset!r} has no reference code to follow; "
                        f"presets with one: {', '.join(with_ref)}")
    return preset.reference


def merge_resumed(saved: TrainConfig, given: TrainConfig, source: str) -> TrainConfig:
    """The config of a resumed run: the saved run's fields, with the runtime fields the user gave.

    A run-defining field (``RUN_FIELDS``) given on the command line that differs from the saved run
    raises UserError naming ``source`` (the run's config.json): resuming cannot change what is computed.
    """
    defaults = TrainConfig()
    for name in RUN_FIELDS:
        value, old = getattr(given, name), getattr(saved, name)
        if value != getattr(defaults, name) and value != old:
            flag = f"--{name.replace('_', '-')}"
            raise UserError(f"{source}: the run was trained with {name}={old!r}, not {flag} {value!r}; "
                            f"drop {flag} to resume it, or start a new run")
    runtime = {name: getattr(given, name) for name in RUNTIME_FIELDS}
    return replace(saved, **runtime)

"""Network presets, one module per dataset. ``get_preset(name)`` returns its :class:`Preset`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from tcja_deploy.models.specs import LIF, ModelConfig


@dataclass(frozen=True)
class Recipe:
    """How the reference code (ridgerchu/TCJA) trains a preset, where it differs from our defaults.

    Attributes:
        surrogate, alpha: the LIF surrogate gradient (SpikingJelly's ATan α = 2 or PiecewiseQuadratic α = 1).
        detach_reset: no gradient through the reset (SpikingJelly ``detach_reset=True``).
        amp: mixed precision (the reference README trains with ``-amp``).
        drop_last: drop the last incomplete training batch (the reference's training loaders do).
        epochs: the reference's epoch count.
        source: where each value comes from.
    """

    surrogate: str
    alpha: float
    detach_reset: bool
    amp: bool
    drop_last: bool
    epochs: int
    source: str

    def apply(self, model: ModelConfig) -> ModelConfig:
        """``model`` with every LIF layer trained with this recipe's surrogate and reset gradient."""
        layers = tuple(replace(layer, surrogate=self.surrogate, alpha=self.alpha, detach_reset=self.detach_reset)
                       if isinstance(layer, LIF) else layer for layer in model.layers)
        return replace(model, layers=layers)


@dataclass(frozen=True)
class Preset:
    """A dataset's reference network and its training defaults.

    Attributes:
        model: the network (input shape, T, layers).
        dataset: dataset name understood by :func:`tcja_deploy.data.registry.get_dataset`.
        epochs, batch_size, lr, loss: training defaults (reference values where one exists).
        source: where the layer list comes from.
        reference: the reference code's training recipe (``--recipe reference``), None where there is no
            reference code for the preset.
    """

    model: ModelConfig
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    loss: str
    source: str
    reference: Optional[Recipe] = None

    def with_T(self, T: int | None) -> "Preset":
        """The same preset at another number of time steps."""
        if T is None or T == self.model.T:
            return self
        if T < 1:
            raise ValueError(f"T must be ≥ 1, got {T}")
        return replace(self, model=replace(self.model, T=T))


def _registry() -> dict[str, Preset]:
    from tcja_deploy.models.presets import cifar10_dvs, digits, dvs128_gesture, fashion_mnist, ncaltech101

    return {m.PRESET.model.preset: m.PRESET for m in (digits, dvs128_gesture, cifar10_dvs, ncaltech101, fashion_mnist)}


PRESET_NAMES = ("digits", "dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist")


def get_preset(name: str, T: int | None = None) -> Preset:
    """The preset called ``name``, optionally at ``T`` time steps. Unknown names raise ValueError."""
    presets = _registry()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESET_NAMES)}")
    return presets[name].with_T(T)

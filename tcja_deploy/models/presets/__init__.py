"""Network presets, one module per dataset. ``get_preset(name)`` returns its :class:`Preset`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tcja_deploy.models.specs import ModelConfig


@dataclass(frozen=True)
class Preset:
    """A dataset's reference network and its training defaults.

    Attributes:
        model: the network (input shape, T, layers).
        dataset: dataset name understood by :func:`tcja_deploy.data.registry.get_dataset`.
        epochs, batch_size, lr, loss: training defaults (reference values where one exists).
        source: where the layer list comes from.
    """

    model: ModelConfig
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    loss: str
    source: str

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

"""CIFAR10-DVS: the reference VGG (ridgerchu/TCJA ``src/cifar10dvs.py``, VGGNet_2), T=10, 2×48×48 input."""

from tcja_deploy.models.presets import Preset, Recipe
from tcja_deploy.models.specs import LIF, AvgPool, BatchNorm, Conv, Flatten, Linear, ModelConfig, TCJAAttention


def _conv(c: int):
    return (Conv(c, bias=True), BatchNorm(), LIF())


PRESET = Preset(
    model=ModelConfig(
        preset="cifar10_dvs",
        input_shape=(2, 48, 48),
        T=10,
        num_classes=10,
        layers=(
            *_conv(64), *_conv(128), AvgPool(2),
            *_conv(256), *_conv(256), AvgPool(2),
            *_conv(512), *_conv(512), TCJAAttention(kernel_tla=4, kernel_cla=4), AvgPool(2),
            *_conv(512), *_conv(512), TCJAAttention(kernel_tla=4, kernel_cla=4), AvgPool(2),
            Flatten(),
            Linear(10, bias=True),
        ),
    ),
    dataset="cifar10_dvs",
    epochs=200,
    batch_size=16,
    lr=1e-3,
    loss="ce",
    source="ridgerchu/TCJA src/cifar10dvs.py VGGNet_2 (TCJA(4, 4, T=10, C=512) ×2); output: mean over T of the last linear",
    reference=Recipe(surrogate="piecewise_quadratic", alpha=1.0, detach_reset=True, amp=True, drop_last=True,
                     epochs=1024, source="ridgerchu/TCJA src/cifar10dvs.py: surrogate.PiecewiseQuadratic(), detach_reset=True, GradScaler with -amp (README), drop_last=True on the training DataLoader, 1024 epochs"),
)

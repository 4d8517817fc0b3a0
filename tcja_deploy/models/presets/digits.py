"""Embedded default: scikit-learn digits as DVS event frames, 2×32×32, T=8 (ours, small for CPU)."""

from tcja_deploy.models.presets import Preset
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, ModelConfig, TCJAAttention, Vote

PRESET = Preset(
    model=ModelConfig(
        preset="digits",
        input_shape=(2, 32, 32),
        T=8,
        num_classes=10,
        layers=(
            Conv(16), BatchNorm(), LIF(), MaxPool(2),
            Conv(32), BatchNorm(), LIF(), TCJAAttention(kernel_tla=4, kernel_cla=4), MaxPool(2),
            Conv(32), BatchNorm(), LIF(), TCJAAttention(kernel_tla=4, kernel_cla=4), MaxPool(2),
            Flatten(), Dropout(0.2),
            Linear(128), LIF(),
            Linear(100), LIF(), Vote(10),
        ),
    ),
    dataset="digits-events",
    epochs=12,
    batch_size=32,
    lr=2e-3,
    loss="mse",
    source="ours: the reference DVS128 Gesture design scaled down to 32×32 inputs",
)

"""DVS128 Gesture: the reference network (ridgerchu/TCJA ``src/dvs128.py``), T=20, 2×128×128 input."""

from tcja_deploy.models.presets import Preset, Recipe
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, ModelConfig, TCJAAttention, Vote


def _block(tcja: bool):
    return (Conv(128), BatchNorm(), LIF()) + ((TCJAAttention(kernel_tla=4, kernel_cla=4),) if tcja else ()) + (MaxPool(2),)


PRESET = Preset(
    model=ModelConfig(
        preset="dvs128_gesture",
        input_shape=(2, 128, 128),
        T=20,
        num_classes=11,
        layers=(
            *_block(False), *_block(False), *_block(False), *_block(True), *_block(True),
            Flatten(), Dropout(0.5),
            Linear(512), LIF(),
            Dropout(0.5),
            Linear(110), LIF(), Vote(10),
        ),
    ),
    dataset="dvs128_gesture",
    epochs=1024,
    batch_size=16,
    lr=1e-3,
    loss="mse",
    source="ridgerchu/TCJA src/dvs128.py (TCJA(4, 4, T=20, C=128) in the last two blocks)",
    reference=Recipe(surrogate="atan", alpha=2.0, detach_reset=True, amp=True, drop_last=True, epochs=1024,
                     source="ridgerchu/TCJA src/dvs128.py: surrogate.ATan(), detach_reset=True, GradScaler with -amp (README), drop_last=True on the training DataLoader, 1024 epochs"),
)

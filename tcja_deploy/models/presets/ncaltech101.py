"""N-Caltech101: the reference network (ridgerchu/TCJA ``src/caltech101.py``, CextNet), T=14, 2×180×240."""

from tcja_deploy.models.presets import Preset, Recipe
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, ModelConfig, TCJAAttention


def _conv(c: int):
    return (Conv(c), BatchNorm(), LIF())


PRESET = Preset(
    model=ModelConfig(
        preset="ncaltech101",
        input_shape=(2, 180, 240),
        T=14,
        num_classes=101,
        layers=(
            *_conv(64), MaxPool(2),
            *_conv(128), MaxPool(2),
            *_conv(256), MaxPool(2),
            # reference TCJA(kernel_size_t=4, kernel_size_c=4): CLA kernel 4, TLA kernel 4
            *_conv(256), TCJAAttention(kernel_tla=4, kernel_cla=4), MaxPool(2),
            # reference TCJA(kernel_size_t=2, kernel_size_c=4): CLA kernel 2, TLA kernel 4
            *_conv(512), TCJAAttention(kernel_tla=4, kernel_cla=2), MaxPool(2),
            Flatten(), Dropout(0.5),
            Linear(1024), LIF(),
            Dropout(0.5),
            Linear(101), LIF(),
        ),
    ),
    dataset="ncaltech101",
    epochs=200,
    batch_size=16,
    lr=1e-3,
    loss="mse",
    source="ridgerchu/TCJA src/caltech101.py CextNet (5×7 features after five pools of 180×240)",
    reference=Recipe(surrogate="atan", alpha=2.0, detach_reset=True, amp=True, drop_last=True, epochs=1024,
                     source="ridgerchu/TCJA src/caltech101.py: surrogate.ATan(), detach_reset=True, GradScaler with -amp (README), drop_last=True on the training DataLoader, 1024 epochs"),
)

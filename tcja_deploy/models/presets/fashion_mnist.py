"""Fashion-MNIST: no reference code exists; SpikingJelly's conv Fashion-MNIST net with TCJA after each
conv block (our placement), static images repeated over T=8 (direct encoding)."""

from tcja_deploy.models.presets import Preset
from tcja_deploy.models.specs import LIF, BatchNorm, Conv, Flatten, Linear, MaxPool, ModelConfig, TCJAAttention

PRESET = Preset(
    model=ModelConfig(
        preset="fashion_mnist",
        input_shape=(1, 28, 28),
        T=8,
        num_classes=10,
        layers=(
            Conv(128), BatchNorm(), LIF(), TCJAAttention(kernel_tla=4, kernel_cla=4), MaxPool(2),
            Conv(128), BatchNorm(), LIF(), TCJAAttention(kernel_tla=4, kernel_cla=4), MaxPool(2),
            Flatten(),
            Linear(2048), LIF(),
            Linear(10), LIF(),
        ),
    ),
    dataset="fashion_mnist",
    epochs=64,
    batch_size=64,
    lr=1e-3,
    loss="mse",
    source="SpikingJelly clock_driven/examples/conv_fashion_mnist.py (channels 128) + TCJA (ours)",
)

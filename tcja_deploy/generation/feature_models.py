"""The two ANN networks whose features the image metrics are computed on: a small CNN classifier and
FSVAE's convolutional autoencoder.

Both read images [N, C, H, W] in [−1, 1] (the VAE's scale) and return features [N, D]:

- :class:`ImageClassifier` (ours): ``len(widths)`` blocks of 3×3 conv (padding 1) + BatchNorm + ReLU, a
  2×2 max-pool between blocks, global average pooling → features [N, widths[-1]] (the role of Inception's
  pool3 features), then one linear layer → K class logits (their softmax gives the Inception-Score-style
  score).
- :class:`ImageAutoencoder`: the autoencoder FSVAE uses for its "autoencoder FID" (kamata1729/
  FullySpikingVAE, ``ann_models/ann_ae.py``: ``AE`` for 32×32 images, ``AELarge`` with a fifth layer for
  64×64 CelebA; trained by ``main_ann_ae.py`` with MSE, AdamW lr 1e-3; FID on ``encode``'s output in
  ``metrics/autoencoder_fid.py``): stride-2 3×3 convs with 32, 64, 128, … channels + BatchNorm + LeakyReLU
  down to 2×2, a linear layer to the latent (no activation: these are the features), and a mirrored decoder
  (linear, transposed convs k3 s2 p1 output-padding 1 + BatchNorm + LeakyReLU, a last transposed conv to
  the image channels, tanh). FSVAE's latent sizes: 64 for the 1-channel sets, 128 for CIFAR10 and CelebA.
  Our code is written from that description; the layer count follows from the image size (log2(H) − 1
  stride-2 layers reach 2×2), which gives FSVAE's 4 at 32×32 and 5 at 64×64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from tcja_deploy.errors import UserError

KINDS = ("classifier", "autoencoder")
#: The classifier's channels per block (features: the last one).
CLASSIFIER_WIDTHS = (16, 32, 64)
#: FSVAE's autoencoder latent size by image channels.
AUTOENCODER_LATENT = {1: 64, 3: 128}
#: LeakyReLU slope of the autoencoder (PyTorch's default, as FSVAE's nn.LeakyReLU()).
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class FeatureNetConfig:
    """What a feature network is: enough to rebuild it before loading its weights.

    Attributes:
        kind: ``classifier`` or ``autoencoder``.
        image_shape: (C, H, W) of the images it reads.
        num_classes: K logits (classifier); 0 for the autoencoder.
        feature_dim: D of :meth:`features` (classifier: its last width; autoencoder: the latent size).
    """

    kind: str
    image_shape: tuple[int, int, int]
    num_classes: int
    feature_dim: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
            raise ValueError(f"image_shape must be three positive integers (C, H, W), got {self.image_shape!r}")
        object.__setattr__(self, "image_shape", shape)
        for name in ("num_classes", "feature_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer ≥ 0, got {v!r}")
        if self.kind == "classifier" and self.num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.num_classes}")
        if self.kind == "autoencoder":
            _autoencoder_depth(shape)
        if self.feature_dim < 1:
            raise ValueError("feature_dim must be ≥ 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureNetConfig":
        if not isinstance(d, dict):
            raise ValueError("the network config must be an object")
        unknown = sorted(set(d) - {"kind", "image_shape", "num_classes", "feature_dim"})
        if unknown:
            raise ValueError(f"unknown network config keys {unknown}")
        try:
            return cls(kind=d["kind"], image_shape=tuple(d["image_shape"]), num_classes=d["num_classes"],
                       feature_dim=d["feature_dim"])
        except KeyError as e:
            raise ValueError(f"network config has no {e.args[0]!r}") from None
        except TypeError as e:
            raise ValueError(f"network config: {e}") from None


def default_config(kind: str, image_shape: tuple[int, int, int], num_classes: int = 0) -> FeatureNetConfig:
    """The default network of ``kind`` for images ``image_shape`` (C, H, W); ValueError if it cannot be built."""
    if kind == "classifier":
        return FeatureNetConfig(kind, tuple(image_shape), num_classes, CLASSIFIER_WIDTHS[-1])
    if kind == "autoencoder":
        c = int(image_shape[0])
        return FeatureNetConfig(kind, tuple(image_shape), 0, AUTOENCODER_LATENT.get(c, 128))
    raise ValueError(f"kind {kind!r}: choose one of {', '.join(KINDS)}")


def _autoencoder_depth(shape: tuple[int, int, int]) -> int:
    """Stride-2 layers that take H×W down to 2×2 (square images, H a power of two ≥ 4)."""
    _, h, w = shape
    if h != w or h < 4 or h & (h - 1):
        raise ValueError(f"the autoencoder needs square images whose side is a power of two ≥ 4, got {h}×{w}")
    return int(math.log2(h)) - 1


class ImageClassifier(nn.Module):
    """Small CNN: images [N, C, H, W] → features [N, D] → logits [N, K] (see the module docstring)."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        c = config.image_shape[0]
        widths = CLASSIFIER_WIDTHS[:-1] + (config.feature_dim,)
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ImageAutoencoder(nn.Module):
    """FSVAE's ANN autoencoder: images [N, C, H, W] → latent [N, D] (the features) → images in [−1, 1]."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        c, _, _ = config.image_shape
        depth = _autoencoder_depth(config.image_shape)
        widths = [32 * 2**i for i in range(depth)]
        down: list[nn.Module] = []
        for width in widths:
            down += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(LEAKY_SLOPE)]
            c = width
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.latent = nn.Linear(widths[-1] * 4, config.feature_dim)
        self.decoder_input = nn.Linear(config.feature_dim, widths[-1] * 4)
        self.top = widths[-1]
        up: list[nn.Module] = []
        for wide, narrow in zip(widths[::-1], widths[-2::-1]):
            up += [nn.ConvTranspose2d(wide, narrow, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(narrow),
                   nn.LeakyReLU(LEAKY_SLOPE)]
        first = widths[0]
        up += [nn.ConvTranspose2d(first, first, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(first),
               nn.LeakyReLU(LEAKY_SLOPE), nn.ConvTranspose2d(first, config.image_shape[0], 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*up)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_input(z).view(-1, self.top, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.features(x))


def build_network(config: FeatureNetConfig) -> nn.Module:
    """A fresh (randomly initialised) network for ``config``."""
    return ImageClassifier(config) if config.kind == "classifier" else ImageAutoencoder(config)


def check_images(images: torch.Tensor, image_shape: tuple[int, int, int], what: str = "images") -> None:
    """UserError unless ``images`` is a floating tensor [N, *image_shape] with N ≥ 1."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise UserError(f"{what}: expected a float tensor [N, C, H, W], got {type(images).__name__}"
                        + (f" of {images.dtype}" if isinstance(images, torch.Tensor) else ""))
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape) or images.shape[0] < 1:
        c, h, w = image_shape
        raise UserError(f"{what}: expected shape [N, {c}, {h}, {w}], got {list(images.shape)}")

"""The standard (Inception) FID, computed by a maintained library from a weights file the user has locally.

The figures of FSVAE's table and of the other papers are FIDs on the features of the TensorFlow Inception v3
network of Heusel et al. 2017. Those weights cannot be downloaded here and no package ships them, so this is
opt-in: with clean-fid installed (``pip install clean-fid``; Parmar et al., "On Aliased Resizing and
Surprising Subtleties in GAN Evaluation", CVPR 2022) and its TorchScript weights file
``inception-2015-12-05.pt`` on disk, :func:`standard_fid` computes the FID as clean-fid's ``"clean"`` mode
does: 8-bit images (as if saved to PNG), PIL bicubic resize to 299×299 without re-quantizing
(``cleanfid.resize.build_resizer("clean")``), clean-fid's ``InceptionV3W`` wrapper of the weights (pool3
features, 2,048-D), ``cleanfid.fid.fid_from_feats``. No Inception network is written here. FSVAE computed
its FIDs with clean-fid too (kamata1729/FullySpikingVAE ``metrics/clean_fid.py``), though against
precomputed dataset statistics, not on the same test images as here.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from tcja_deploy.errors import UserError

#: The file name clean-fid's ``InceptionV3W`` loads from a folder.
CLEANFID_WEIGHTS_NAME = "inception-2015-12-05.pt"
INSTALL_HINT = "pip install clean-fid"


def check_inception_file(inception_file: Path) -> Path:
    """The weights file exists, is readable and is a TorchScript archive (a zip); else a one-line UserError."""
    path = Path(inception_file)
    if not path.exists():
        raise UserError(f"{path}: Inception weights file not found (clean-fid's {CLEANFID_WEIGHTS_NAME})")
    if not path.is_file():
        raise UserError(f"{path}: not a file (expected clean-fid's {CLEANFID_WEIGHTS_NAME})")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a TorchScript archive (clean-fid's {CLEANFID_WEIGHTS_NAME} is one)")
    return path


def _cleanfid():
    """clean-fid's pieces (the Inception wrapper, the resizer, the FID of two feature sets), or a UserError."""
    try:
        from cleanfid.fid import fid_from_feats
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer
    except ImportError as e:
        raise UserError(f"the standard FID needs the clean-fid package ({e.name or e}): {INSTALL_HINT}") from None
    return InceptionV3W, build_resizer, fid_from_feats


def to_uint8_rgb(images: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [−1, 1] (C = 1 or 3) → uint8 [N, H, W, 3], as 8-bit PNG files would hold them."""
    x = ((images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise UserError(f"the Inception network reads 1- or 3-channel images, got {x.shape[1]} channels")
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def standard_fid(real: torch.Tensor, fake: torch.Tensor, inception_file: Path, *, device: str | torch.device = "cpu",
                 batch_size: int = 32) -> float:
    """Inception FID between two image sets [N, C, H, W] and [M, C, H, W] in [−1, 1], by clean-fid.

    Raises:
        UserError: a missing, unreadable or foreign weights file (naming it), clean-fid not installed (saying
            what to install), fewer than 2 images in a set.
    """
    path = check_inception_file(inception_file)
    InceptionV3W, build_resizer, fid_from_feats = _cleanfid()
    for name, images in (("real images", real), ("generated images", fake)):
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise UserError(f"{name}: expected a float tensor [N, C, H, W]")
        if images.shape[0] < 2:
            raise UserError(f"{name}: the FID needs at least 2 images, got {images.shape[0]}")
    device = torch.device(device)
    with tempfile.TemporaryDirectory(prefix="tcja_inception.") as folder:
        os.symlink(path.resolve(), Path(folder) / CLEANFID_WEIGHTS_NAME)  # InceptionV3W loads <folder>/<that name>
        try:
            model = InceptionV3W(folder, download=False, resize_inside=False).to(device).eval()
        except (RuntimeError, ValueError, OSError, AttributeError) as e:
            raise UserError(f"{path}: not clean-fid's Inception TorchScript file "
                            f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    resize = build_resizer("clean")
    feats = [_features(model, resize, images, device, batch_size) for images in (real, fake)]
    return float(fid_from_feats(feats[0], feats[1]))


def _features(model, resize, images: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    """clean-fid pool3 features [N, 2048] of images in [−1, 1]."""
    pixels = to_uint8_rgb(images)
    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = np.stack([resize(img) for img in pixels[start:start + batch_size]])  # float [B, 299, 299, 3]
            x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float().to(device)
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)

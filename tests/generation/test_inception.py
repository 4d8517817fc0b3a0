"""The standard FID's wrapper of clean-fid: its error paths always; the computation where clean-fid is installed.

clean-fid is not a dependency of the project and its Inception weights cannot be downloaded here, so the
computation runs on a stand-in TorchScript file with the interface clean-fid's ``InceptionV3W`` uses
(a ``layers`` submodule mapping [N, 3, 299, 299] to [N, 2048, 1, 1]).
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tcja_deploy.errors import UserError
from tcja_deploy.generation.inception import INSTALL_HINT, check_inception_file, standard_fid, to_uint8_rgb


class _Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 2048, 1)

    def forward(self, x):
        return self.proj(nn.functional.adaptive_avg_pool2d(x, 1))


class _StandIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "my-inception.pt"
    torch.jit.script(_StandIn()).save(str(path))
    return path


def images(n: int, seed: int, channels: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match=r"nope.pt: Inception weights file not found \(clean-fid's "
                                        r"inception-2015-12-05.pt\)"):
        standard_fid(images(4, 0), images(4, 1), tmp_path / "nope.pt")


def test_folder_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="not a file"):
        check_inception_file(tmp_path)
    bad = tmp_path / "inception.pt"
    bad.write_bytes(b"definitely not a zip archive")
    with pytest.raises(UserError, match="inception.pt: not a TorchScript archive"):
        standard_fid(images(4, 0), images(4, 1), bad)


def test_missing_library_says_what_to_install(weights, monkeypatch):
    for name in [m for m in sys.modules if m == "cleanfid" or m.startswith("cleanfid.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cleanfid", None)  # import cleanfid → ImportError, installed or not
    with pytest.raises(UserError, match=f"needs the clean-fid package.*{INSTALL_HINT}$") as info:
        standard_fid(images(4, 0), images(4, 1), weights)
    assert "\n" not in str(info.value)


def test_images_become_8_bit_rgb():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 128], [255, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


HAS_CLEANFID = importlib.util.find_spec("cleanfid") is not None
needs_cleanfid = pytest.mark.skipif(not HAS_CLEANFID, reason="clean-fid is not installed (optional: pip install "
                                                              "clean-fid)")


@needs_cleanfid
@pytest.mark.slow
def test_standard_fid_through_clean_fid(weights):
    # each call takes the square root of a 2048×2048 matrix (about 20-45 s on 2 shared cores)
    real, other = images(6, 0), images(6, 1) * 0.3
    # gray images are read as RGB with equal channels: the same set either way
    assert standard_fid(real, real.expand(-1, 3, -1, -1), weights) == pytest.approx(0.0, abs=1e-3)
    assert standard_fid(real, other, weights) > 1e-3


@needs_cleanfid
def test_a_zip_that_is_not_torchscript_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "fake.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a model")
    with pytest.raises(UserError, match="fake.pt: not clean-fid's Inception TorchScript file"):
        standard_fid(images(4, 0), images(4, 1), path)

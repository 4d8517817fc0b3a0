"""get_dataset: names, dispatch to the loader modules, errors."""

import sys
import types
from pathlib import Path

import pytest
import torch

from tcja_deploy.data import registry
from tcja_deploy.data.registry import DATASET_NAMES, DatasetPair, get_dataset
from tcja_deploy.errors import UserError


def test_dataset_names():
    assert DATASET_NAMES == ("digits-events", "digits-images", "dvs128_gesture", "cifar10_dvs", "ncaltech101",
                             "fashion_mnist")
    assert set(registry._LOADERS) == set(DATASET_NAMES)


def test_unknown_name_is_a_one_line_user_error_listing_the_names():
    with pytest.raises(UserError) as info:
        get_dataset("mnist", T=4)
    message = str(info.value)
    assert "\n" not in message and "'mnist'" in message
    assert all(name in message for name in DATASET_NAMES)


@pytest.mark.parametrize("T", [0, -3])
def test_T_below_one_is_a_user_error(T):
    with pytest.raises(UserError, match="T must be at least 1"):
        get_dataset("digits-images", T=T)


@pytest.mark.parametrize("name, shape", [("digits-events", (2, 32, 32)), ("digits-images", (1, 32, 32))])
def test_digits_through_the_registry(name, shape):
    pair = get_dataset(name, T=5, seed=3)
    assert isinstance(pair, DatasetPair) and pair.name == name
    assert pair.input_shape == shape and pair.num_classes == 10
    frames, label = pair.train[0]
    assert frames.shape == (5, *shape) and frames.dtype == torch.float32
    assert 0 <= label < 10


def test_paper_datasets_dispatch_to_their_module_with_all_arguments(monkeypatch):
    calls = []
    fake = types.ModuleType("tcja_deploy.data.fashion_mnist")

    def load(**kwargs):
        calls.append(kwargs)
        return "pair"

    fake.load = load
    monkeypatch.setitem(sys.modules, "tcja_deploy.data.fashion_mnist", fake)
    result = get_dataset("fashion_mnist", T=6, data_dir="/data", augment=True, download=True, seed=2, workers=3)
    assert result == "pair"
    assert calls == [dict(T=6, data_dir=Path("/data"), augment=True, download=True, seed=2, workers=3)]


def test_missing_loader_module_is_a_user_error(monkeypatch):
    monkeypatch.setitem(registry._LOADERS, "dvs128_gesture", ("no_such_loader_module", "load"))
    with pytest.raises(UserError, match="dvs128_gesture.*not available"):
        get_dataset("dvs128_gesture", T=4)


def test_missing_dependency_inside_a_loader_is_not_hidden(monkeypatch):
    """Only the loader module itself being absent is translated; a broken import inside it propagates."""

    def failing_import(name):
        raise ModuleNotFoundError("No module named 'h5py'", name="h5py")

    monkeypatch.setattr(registry.importlib, "import_module", failing_import)
    with pytest.raises(ModuleNotFoundError, match="h5py"):
        get_dataset("cifar10_dvs", T=4)

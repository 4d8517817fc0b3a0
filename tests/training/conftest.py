"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
import torch

from tcja_deploy.training import data as training_data
from train_fakes import fake_get_dataset


@pytest.fixture
def fake_data(monkeypatch):
    """Route the training stage's dataset loading to :func:`fake_get_dataset`; returns the call log."""
    calls: list[tuple[str, dict]] = []

    def get(name, **kwargs):
        calls.append((name, kwargs))
        return fake_get_dataset(name, **kwargs)

    monkeypatch.setattr(training_data, "get_dataset", get)
    return calls


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is as fast as two, and far faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Training-state checkpoint: optimizer and scheduler state survive a save/load round trip exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from tcja_deploy.errors import UserError
from tcja_deploy.training.state import TrainState, load_train_state, save_train_state


def stepped_adam() -> tuple[torch.nn.Module, torch.optim.Adam, torch.optim.lr_scheduler.CosineAnnealingLR]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    for _ in range(2):
        model(torch.randn(6, 3)).square().mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def test_round_trip_restores_an_identical_optimizer(tmp_path):
    model, optimizer, scheduler = stepped_adam()
    history = [{"epoch": 1, "test_accuracy": 0.5}]
    path = tmp_path / "state.safetensors"
    save_train_state(path, TrainState(epoch=1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                                      scheduler=scheduler.state_dict(), config={"seed": 3}, history=history))
    loaded = load_train_state(path)
    assert loaded.epoch == 1 and loaded.history == history and loaded.config == {"seed": 3}
    assert loaded.model.keys() == model.state_dict().keys()
    assert loaded.model["1.num_batches_tracked"].dtype == torch.int64

    fresh_model, fresh_optimizer, fresh_scheduler = stepped_adam()
    fresh_optimizer.load_state_dict(loaded.optimizer)
    fresh_scheduler.load_state_dict(loaded.scheduler)
    assert fresh_optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    for i, entries in optimizer.state_dict()["state"].items():
        for key, value in entries.items():
            assert torch.equal(fresh_optimizer.state_dict()["state"][i][key], value), (i, key)
    with safe_open(str(path), framework="pt") as f:  # a plain safetensors file with a JSON header
        assert json.loads(f.metadata()["train_state"])["epoch"] == 1


def test_a_weights_file_is_not_a_training_state(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(UserError, match="not a tcja_deploy training-state checkpoint"):
        load_train_state(path)

"""Every preset builds and trains one step on a batch of its real input shape."""

from __future__ import annotations

import pytest
import torch

from tcja_deploy.models import PRESET_NAMES, TCJASNN, get_preset, rate_loss


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_forward_backward(name):
    preset = get_preset(name)
    model_config = preset.model
    torch.manual_seed(0)
    model = TCJASNN(model_config).train()
    x = (torch.rand(model_config.T, 1, *model_config.input_shape) < 0.2).float()
    labels = torch.tensor([model_config.num_classes - 1])
    scores = model(x)
    assert scores.shape == (1, model_config.num_classes)
    assert torch.all((scores >= 0) & (scores <= 1)) or preset.loss == "ce"
    loss = rate_loss(scores, labels, preset.loss, model_config.num_classes)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)  # the surrogate lets gradient reach the weights

"""cuba_fixed reads the synaptic sums and leaves them as they were (run_graph records them as the synapse's
output): float64 sums whose current can wrap once came back scaled by 64 and wrapped."""

import pytest
import torch

from tcja_deploy.conversion.fixed_point import cuba_fixed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.int64])
@pytest.mark.parametrize("i_decay", [4096, 2048])
def test_cuba_fixed_does_not_modify_the_sums(dtype, i_decay):
    a = torch.tensor([[[5_000_000.0, -3.0]], [[1_000_000.0, 7.0]], [[0.0, 2.0]]]).to(dtype)
    before = a.clone()
    spikes = cuba_fixed(a, i_decay, 2048, 100)
    assert torch.equal(a, before)
    assert spikes.shape == a.shape

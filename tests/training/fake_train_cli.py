"""``python -m tcja_deploy.train`` on the fake dataset, for tests that run training in a subprocess.

Usage: ``python tests/training/fake_train_cli.py [train flags]`` (or under ``torchrun``). ``FAKE_ITEM_DELAY``
(seconds per item) slows data loading so that a signal can land inside an epoch; ``FAKE_NO_NORM=1`` drops the
preset's BatchNorm and Dropout layers (a network whose result does not depend on how a batch is split).
"""

import os
import sys

import dataclasses

import train_fakes
from tcja_deploy import train
from tcja_deploy.models import specs
from tcja_deploy.training import config, data


def without_norm(get_preset):
    """The preset with a small network without BatchNorm or Dropout (low thresholds, so that it spikes)."""
    def get(name, T=None):
        preset = get_preset(name, T)
        layers = (specs.Conv(8), specs.LIF(v_th=0.3), specs.TCJAAttention(2, 2), specs.MaxPool(2), specs.Flatten(),
                  specs.Linear(100), specs.LIF(v_th=0.3), specs.Vote(10))
        return dataclasses.replace(preset, model=dataclasses.replace(preset.model, layers=layers))
    return get


if __name__ == "__main__":
    train_fakes.FakeFrames.delay = float(os.environ.get("FAKE_ITEM_DELAY", "0"))
    data.get_dataset = train_fakes.fake_get_dataset
    if os.environ.get("FAKE_NO_NORM") == "1":
        config.get_preset = without_norm(config.get_preset)
    sys.exit(train.main(sys.argv[1:]))

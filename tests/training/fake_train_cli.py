"""``python -m tcja_deploy.train`` on the fake dataset, for tests that run training in a subprocess.

Usage: ``python tests/training/fake_train_cli.py [train flags]``. ``FAKE_ITEM_DELAY`` (seconds per item)
slows data loading so that a signal can land inside an epoch.
"""

import os
import sys

import train_fakes
from tcja_deploy import train
from tcja_deploy.training import data

if __name__ == "__main__":
    train_fakes.FakeFrames.delay = float(os.environ.get("FAKE_ITEM_DELAY", "0"))
    data.get_dataset = train_fakes.fake_get_dataset
    sys.exit(train.main(sys.argv[1:]))

"""tcja_deploy: TCJA-SNN from training (Norse) to Loihi 2 (Lava-DL / NetX), with measured energy.

Stages: :mod:`tcja_deploy.training`, :mod:`tcja_deploy.conversion`, :mod:`tcja_deploy.hardware`.
"""

__version__ = "0.1.0"

import os as _os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On 2 cores shared with other
# work, spinning threads made training epochs 5-10x slower (measured: 35-70 s vs 6 s for 20 digits
# batches). Set here so that every entry point (train, convert, profile, demo, tests) gets it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""tcja_deploy: TCJA-SNN from training (Norse) to Loihi 2 (Lava-DL / NetX), with measured energy.

Stages: :mod:`tcja_deploy.training`, :mod:`tcja_deploy.conversion`, :mod:`tcja_deploy.hardware`.
"""

__version__ = "0.1.0"

"""Custom Lava processes: the TCJA attention gate (:class:`TCJAGate`).

Kept as a tiny, self-contained package: Lava's compiler executes every ``.py`` file in the folder
of a module that defines a Process when it looks for ProcessModels.
"""

from tcja_deploy.hardware.lava_procs.process import TCJAGate

__all__ = ["TCJAGate"]

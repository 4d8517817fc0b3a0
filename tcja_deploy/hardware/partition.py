"""Networks beyond one chip: chips needed, a per-layer partition, and the Loihi 2 systems that hold it.

The partition is a sequential packing of the layers' estimated cores (:mod:`resources`) onto chips of
``cores_per_chip`` neuro cores, in execution order, so that consecutive layers share a chip where they
fit and a layer larger than one chip spans whole chips. It is a lower bound with the same caveats as the
core estimate (Lava's compiler partitions differently and needs routing memory); it says how many chips
a network needs at least and which layers share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcja_deploy.hardware.resources import LayerResources, limit


@dataclass(frozen=True)
class System:
    name: str
    chips: int
    source: str
    verified: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "chips": self.chips, "source": self.source, "verified": self.verified,
                "note": self.note}


#: Loihi 2 systems, smallest first. ``verified``: checked against the cited source in this project.
LOIHI2_SYSTEMS = (
    System("Oheo Gulch", 1, "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', "
           "technology brief, 2021", False, "single-chip board"),
    System("Kapoho Point", 8, "Intel Labs' announcement of Kapoho Point (2022)", False,
           "8 chips on a stackable board; not checked against a primary source here"),
    System("Hala Point", 1152, "Intel / Sandia National Laboratories announcement, April 2024 (as reported: "
           "1,152 Loihi 2 chips, 140,544 neuromorphic cores, 1.15 billion neurons)", False,
           "its 122 cores per chip (140,544 / 1,152) are fewer than the 128 assumed here"),
)


def partition(layers: list[LayerResources], cores_per_chip: int | None = None) -> dict:
    """Chips per layer (sequential packing), chips in all, and the smallest listed system that holds them.

    Returns {"cores_per_chip", "chips", "layers": [{"name", "cores", "chips": [first, last]}],
    "system": {...} or None (larger than every listed system), "systems": [...]}.
    """
    per_chip = int(cores_per_chip or limit("cores_per_chip"))
    chip, used = 0, 0
    out = []
    for layer in layers:
        c = int(layer.cores)
        if c == 0:
            out.append({"name": layer.name, "cores": 0, "chips": None})
            continue
        if used and used + c > per_chip:  # does not fit beside the layers already on this chip
            chip, used = chip + 1, 0
        first = chip
        span = math.ceil(c / per_chip)
        if c > per_chip:
            chip, used = chip + span - 1, c - (span - 1) * per_chip
        else:
            used += c
        out.append({"name": layer.name, "cores": c, "chips": [first, chip]})
    chips = (chip + 1) if any(layer["chips"] for layer in out) else 0
    system = next((s for s in LOIHI2_SYSTEMS if s.chips >= chips), None) if chips else None
    return {"cores_per_chip": per_chip, "chips": chips, "layers": out,
            "system": None if system is None else system.to_dict(),
            "systems": [s.to_dict() for s in LOIHI2_SYSTEMS]}

"""TCJA layer, Norse LIF, layer specs, the TCJA-SNN network and per-dataset presets."""

from tcja_deploy.models.network import TCJASNN, infer_shapes, rate_loss
from tcja_deploy.models.presets import PRESET_NAMES, Preset, get_preset
from tcja_deploy.models.specs import ModelConfig
from tcja_deploy.models.tcja import TCJA, tcja_gate

__all__ = ["TCJA", "TCJASNN", "ModelConfig", "PRESET_NAMES", "Preset", "get_preset", "infer_shapes", "rate_loss", "tcja_gate"]

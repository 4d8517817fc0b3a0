"""Training stage: loop, checkpoints (safetensors + JSON) and resume."""

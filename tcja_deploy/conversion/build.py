"""The conversion graph of a trained TCJA-SNN (a :class:`TCJASNN` or a run directory).

Layer ``config.layers[i]`` becomes one node named after its type and its index among layers of that
type (``conv0``, ``bn0``, ``lif0``, ``tcja0``, ``pool0``, ``flatten0``, ``dropout0``, ``linear0``, ``vote``);
weights are copied as float32 numpy arrays. A final linear with no LIF after it becomes the host-side
``readout0`` node (:class:`graph.Readout`: scores = mean over T of W·s + b). The graph ends with a
``vote`` node (``Vote(1)`` when the config has none: the score is then the mean output over time, as
:meth:`TCJASNN.forward`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.errors import UserError
from tcja_deploy.models import specs
from tcja_deploy.models.network import TCJASNN
from tcja_deploy.training import checkpoint

#: Layer spec types the conversion understands (all of :data:`specs.LAYER_TYPES` today).
SUPPORTED_LAYER_TYPES = ("avgpool", "batchnorm", "conv", "dropout", "flatten", "linear", "lif", "maxpool", "tcja",
                         "vote")

_PREFIX = {"conv": "conv", "batchnorm": "bn", "lif": "lif", "tcja": "tcja", "maxpool": "pool", "avgpool": "avgpool",
           "dropout": "dropout", "flatten": "flatten", "linear": "linear", "vote": "vote"}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def unsupported_layer(index: int, kind: str) -> UserError:
    return UserError(f"layer {index} has type {kind!r}, which the conversion does not support; "
                     f"supported layer types: {', '.join(SUPPORTED_LAYER_TYPES)}")


def _is_readout(layers, i: int) -> bool:
    """A linear with no LIF after it (only dropout / vote follow): the network's non-spiking readout."""
    return all(isinstance(layer, (specs.Dropout, specs.Vote)) for layer in layers[i + 1:])


def build_graph(model: TCJASNN) -> g.Graph:
    """The float graph of ``model`` (eval-mode semantics: BatchNorm running statistics, no dropout noise)."""
    config = model.config
    nodes: dict[str, g.Node] = {"input": g.Input(tuple(config.input_shape))}
    counts: dict[str, int] = {}
    for i, (spec, module) in enumerate(zip(config.layers, model.layers)):
        kind = getattr(spec, "kind", type(spec).__name__)
        if kind not in SUPPORTED_LAYER_TYPES:
            raise unsupported_layer(i, kind)
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        name = "vote" if kind == "vote" else f"{_PREFIX[kind]}{n}"
        if isinstance(spec, specs.Conv):
            conv = module.module
            nodes[name] = g.Conv2d(_np(conv.weight), None if conv.bias is None else _np(conv.bias),
                                   stride=spec.stride, padding=spec.padding)
        elif isinstance(spec, specs.BatchNorm):
            bn = module.module
            nodes[name] = g.BatchNorm(_np(bn.running_mean), _np(bn.running_var), _np(bn.weight), _np(bn.bias),
                                      float(bn.eps))
        elif isinstance(spec, specs.LIF):
            nodes[name] = g.LIF(float(spec.tau_mem), float(spec.tau_syn), float(spec.v_th))
        elif isinstance(spec, specs.TCJAAttention):
            nodes[name] = g.TCJA(_np(module.tla.weight), _np(module.cla.weight), bool(spec.causal),
                                 gate_function=str(spec.gate_function))
        elif isinstance(spec, specs.MaxPool):
            nodes[name] = g.MaxPool(int(spec.kernel_size))
        elif isinstance(spec, specs.AvgPool):
            nodes[name] = g.AvgPool(int(spec.kernel_size))
        elif isinstance(spec, specs.Dropout):
            nodes[name] = g.Dropout(float(spec.p))
        elif isinstance(spec, specs.Flatten):
            nodes[name] = g.Flatten()
        elif isinstance(spec, specs.Linear):
            lin = module.module
            bias = None if lin.bias is None else _np(lin.bias)
            if _is_readout(config.layers, i):
                nodes[f"readout{counts.get('readout', 0)}"] = g.Readout(_np(lin.weight), bias)
                counts["readout"] = counts.get("readout", 0) + 1
            else:
                nodes[name] = g.Linear(_np(lin.weight), bias)
        elif isinstance(spec, specs.Vote):
            if i != len(config.layers) - 1:
                raise UserError(f"layer {i} (vote) must be the last layer")
            nodes[name] = g.Vote(int(spec.voters))
    if not isinstance(list(nodes.values())[-1], g.Vote):
        nodes["vote"] = g.Vote(1)
    meta = {"T": int(config.T), "num_classes": int(config.num_classes), "preset": config.preset,
            "input_shape": list(config.input_shape), "passes": []}
    return g.Graph(nodes, meta)


def check_layer_types(run_dir: Path) -> None:
    """Name the first layer of ``run_dir/config.json`` whose type the conversion does not support."""
    path = Path(run_dir) / checkpoint.CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
        layers = raw["model"]["layers"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # load_run_config reports malformed files
    if not isinstance(layers, list):
        return
    for i, layer in enumerate(layers):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if kind not in SUPPORTED_LAYER_TYPES:
            raise UserError(f"{path}: " + str(unsupported_layer(i, kind)))


def load_run(run_dir: Path) -> tuple[TCJASNN, dict]:
    """(trained model in eval mode, train config dict) of a run directory; bad input → one-line UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    check_layer_types(run_dir)
    _, train = checkpoint.load_run_config(run_dir)
    model = checkpoint.load_model(run_dir)
    return model, train

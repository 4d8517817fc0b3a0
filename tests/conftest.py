"""Fixtures shared by the test folders: a tiny model, its converted graphs, a tiny deploy directory and
synthetic activity. The helper modules next to this file (``tiny``, ``synthetic_activity``) are importable
from every test folder (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import pytest

from synthetic_activity import small_network
from tiny import tiny_input, tiny_model, tiny_run


@pytest.fixture(scope="session")
def tiny_float_graph():
    """The tiny model's float graph (build_graph), before any pass."""
    from tcja_deploy.conversion.build import build_graph

    return build_graph(tiny_model())


@pytest.fixture(scope="session")
def tiny_qgraph(tiny_float_graph):
    """The tiny model converted for loihi2, calibrated on 8 tiny inputs."""
    from tcja_deploy.conversion.targets import get_target, run_passes

    return run_passes(get_target("loihi2", tiny_input(8)), tiny_float_graph)


@pytest.fixture(scope="session")
def tiny_deploy_dir(tmp_path_factory):
    """A loihi2 deploy directory of the tiny model (no Lava check)."""
    from tcja_deploy.conversion.deploy import convert

    root = tmp_path_factory.mktemp("tiny_deploy")
    convert(tiny_run(root / "run"), root / "deploy", "loihi2", lava_samples=0, log=lambda s: None)
    return root / "deploy"


@pytest.fixture
def synthetic_network():
    """Hand-built activity: conv → OR pool → window gate (squeezing the conv) → dense."""
    return small_network()

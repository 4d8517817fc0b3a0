"""Benchmarks: ``python -m tcja_deploy.bench <name> [--size cpu|full] [--device cpu|cuda] [--compile]
[--amp] [--repeats N]``.

Each benchmark measures our figure and a peer's in the same process (alternating repetitions,
median), prints a table (ours, peer, ours/peer) and writes
``bench/results/<name>-<host>-<timestamp>.json`` with the machine's description. Names:
``train-step``, ``lif-layer``, ``emulate``, ``convert``, ``profile`` (see ``bench/NOTES.md``).
"""

from tcja_deploy.bench.registry import BENCHMARKS, load_benchmark

__all__ = ["BENCHMARKS", "load_benchmark"]

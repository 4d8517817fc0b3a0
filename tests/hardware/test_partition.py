"""Chips beyond one: the sequential packing of layers onto chips and the smallest system holding them."""

from tcja_deploy.hardware.partition import partition
from tcja_deploy.hardware.resources import LayerResources


def layer(name: str, cores: int) -> LayerResources:
    return LayerResources(name, "conv", neurons=cores * 8192, synapses=0, weights=0, synaptic_memory_bits=0,
                          cores=cores)


def test_layers_share_chips_where_they_fit_and_large_ones_span_chips():
    p = partition([layer("a", 100), layer("b", 20), layer("c", 10), layer("d", 300), layer("e", 5),
                   LayerResources("gate", "gate", 0, 0, 0, 0, 0)], cores_per_chip=128)
    chips = {row["name"]: row["chips"] for row in p["layers"]}
    assert chips["a"] == [0, 0] and chips["b"] == [0, 0]  # 120 cores on chip 0
    assert chips["c"] == [1, 1]  # 130 would not fit chip 0
    assert chips["d"] == [2, 4]  # 300 cores: three whole chips, the last holding 44
    assert chips["e"] == [4, 4] and chips["gate"] is None
    assert p["chips"] == 5 and p["system"]["name"] == "Kapoho Point" and p["system"]["chips"] == 8


def test_one_chip_and_beyond_every_system():
    assert partition([layer("a", 3)])["system"]["name"] == "Oheo Gulch"
    huge = partition([layer("a", 128 * 2000)])
    assert huge["chips"] == 2000 and huge["system"] is None
    assert partition([])["chips"] == 0

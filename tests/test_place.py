"""passes/place.py and hcompile.plan: placement annotations and partition boundaries."""

from __future__ import annotations

import numpy as np

from hcompile.ir import Graph, Node, TensorType
from hcompile.passes import PassOptions, place
from hcompile.plan import build_partitions, subgraph

T = TensorType((2,), "float32")


def _graph() -> Graph:
    return Graph("g", {"x": T}, ["y", "h"], [
        Node("Add", "a", ["x", "c"], ["h"], output_types=[T]),
        Node("Relu", "b", ["h"], ["r"], output_types=[T]),
        Node("Neg", "c", ["r"], ["y"], output_types=[T]),
    ], constants={"c": np.ones(2, np.float32)})


def test_single_target_places_everything_in_one_partition():
    g = _graph()
    assert place.run(g, PassOptions(targets=["cpu"])) is True
    assert {n.meta["target"] for n in g.nodes} == {"cpu"}
    assert place.run(g, PassOptions(targets=["cpu"])) is False
    (part,) = build_partitions(g)
    assert part.inputs == ["x"] and part.outputs == ["h", "y"]
    sub = subgraph(g, part)
    assert list(sub.inputs) == ["x"] and set(sub.constants) == {"c"}


def test_partition_boundaries_between_two_partitions():
    g = _graph()
    place.run(g, PassOptions())
    g.nodes[2].meta["partition"] = 1
    first, second = build_partitions(g)
    assert first.outputs == ["h", "r"]  # h is a model output, r feeds partition 1
    assert second.inputs == ["r"] and second.outputs == ["y"]

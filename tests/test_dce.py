"""passes/dce.py: removes dead nodes and constants, reports whether it changed anything."""

from __future__ import annotations

import numpy as np

from hcompile.ir import Graph, Node, TensorType, verify
from hcompile.passes import PassOptions, dce

T = TensorType((2,), "float32")


def test_removes_dead_nodes_and_constants():
    g = Graph("g", {"x": T}, ["y"], [
        Node("Relu", "live", ["x"], ["y"], output_types=[T]),
        Node("Add", "dead", ["x", "c"], ["z"], output_types=[T]),
    ], constants={"c": np.ones(2, np.float32), "unused": np.zeros(3, np.float32)})
    assert dce.run(g, PassOptions()) is True
    verify(g)
    assert [n.name for n in g.nodes] == ["live"]
    assert g.constants == {}
    assert dce.run(g, PassOptions()) is False


def test_keeps_everything_live():
    g = Graph("g", {"x": T}, ["y"], [
        Node("Add", "a", ["x", "c"], ["h"], output_types=[T]),
        Node("Relu", "b", ["h"], ["y"], output_types=[T]),
    ], constants={"c": np.ones(2, np.float32)})
    assert dce.run(g, PassOptions()) is False
    assert len(g.nodes) == 2 and "c" in g.constants

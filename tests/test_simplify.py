"""passes/simplify.py: Identity and inference Dropout disappear; numbers do not change."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

import hcompile
from hcompile.ir import Graph, Node, TensorType, verify
from hcompile.passes import PassOptions, simplify

T = TensorType((2,), "float32")


def test_removes_identity_and_dropout_rewiring_consumers():
    g = Graph("g", {"x": T}, ["y"], [
        Node("Identity", "id", ["x"], ["a"], output_types=[T]),
        Node("Dropout", "drop", ["a"], ["b"], output_types=[T]),
        Node("Relu", "relu", ["b"], ["y"], output_types=[T]),
    ])
    assert simplify.run(g, PassOptions()) is True
    verify(g)
    assert [n.name for n in g.nodes] == ["relu"]
    assert g.nodes[0].inputs == ["x"]
    assert simplify.run(g, PassOptions()) is False


def test_keeps_identity_producing_a_graph_output_and_dropout_with_mask():
    g = Graph("g", {"x": T}, ["y", "m"], [
        Node("Dropout", "drop", ["x"], ["d", "m"], output_types=[T, TensorType((2,), "bool")]),
        Node("Identity", "id", ["d"], ["y"], output_types=[T]),
    ])
    assert simplify.run(g, PassOptions()) is False
    assert [n.name for n in g.nodes] == ["drop", "id"]


def test_numbers_unchanged_end_to_end(isolated_cache):
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Dropout", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y = hcompile.load(hcompile.compile(model)).run({"x": x})["y"]
    np.testing.assert_array_equal(y, np.maximum(x, 0))

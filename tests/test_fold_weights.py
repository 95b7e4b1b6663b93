"""fold_weights: Gemm(transB=1) on a constant B gets B transposed at compile time."""

from __future__ import annotations

import numpy as np

from hcompile.ir import Graph, Node, TensorType
from hcompile.passes import PassOptions, fold_weights


def _graph(b_const: bool, users: int = 1) -> Graph:
    f32 = "float32"
    b = np.arange(12, dtype=np.float32).reshape(4, 3)  # [N, K]
    nodes = [Node("Gemm", f"g{i}", ["x", "B"], [f"y{i}"], {"transB": 1, "alpha": 2.0},
                  [TensorType((2, 4), f32)], opset=13) for i in range(users)]
    inputs = {"x": TensorType((2, 3), f32)}
    if not b_const:
        inputs["B"] = TensorType((4, 3), f32)
    return Graph("g", inputs, [f"y{i}" for i in range(users)], nodes,
                 {"B": b} if b_const else {})


def test_constant_b_is_transposed_once_for_every_user():
    graph = _graph(True, users=2)
    assert fold_weights.run(graph, PassOptions()) is True
    names = {n.inputs[1] for n in graph.nodes}
    assert len(names) == 1 and "B" not in names
    (name,) = names
    np.testing.assert_array_equal(graph.constants[name], graph.constants["B"].T)
    assert graph.constants[name].flags.c_contiguous
    assert all(n.attrs["transB"] == 0 and n.attrs["alpha"] == 2.0 for n in graph.nodes)


def test_run_time_b_is_left_alone():
    graph = _graph(False)
    assert fold_weights.run(graph, PassOptions()) is False
    assert graph.nodes[0].inputs[1] == "B" and graph.nodes[0].attrs["transB"] == 1

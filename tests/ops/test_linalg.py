"""Det against ONNX Runtime (float32) and numpy (float64, which ONNX Runtime has no kernel
for): batches, pivoting (a zero leading entry), singular matrices, 1x1."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .harness import check_graph, make_model, node, rand, run_hcompile


def test_det_float32():
    pivot = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.5, 2.0]], np.float32)
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 5.0]], np.float32)
    nodes = [node("Det", [f"x{k}"], f"y{k}") for k in range(4)]
    inputs = {
        "x0": rand(2, 3, 4, 4),
        "x1": np.stack([pivot, singular, np.eye(3, dtype=np.float32)]),
        "x2": rand(5, 5),
        "x3": rand(3, 1, 1),
    }
    check_graph(nodes, inputs, [f"y{k}" for k in range(4)], opset=11)


def test_det_float64_against_numpy():
    x = rand(2, 6, 6, dtype="float64")
    graph = helper.make_graph(
        [node("Det", ["x"], "y")], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2])])
    (got,) = run_hcompile(make_model(graph, 11), {"x": x})
    np.testing.assert_allclose(got, np.linalg.det(x), rtol=1e-10)

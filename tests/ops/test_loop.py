"""Loop with a compile-time trip count / condition, unrolled by the importer, against ONNX
Runtime: loop-carried values, scan outputs, the iteration number, outer-scope tensors, a
condition that stops the loop early, and a trip count given as a model input (frozen by the
ONNX backend)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from hcompile.backend import Backend
from hcompile.errors import HcompileError

from .harness import Const, check_graph, make_model, node, rand, run_ort


def _body(stop_at: int | None = None, cond_from_data: bool = False) -> helper.GraphProto:
    """y_out = y_in * 0.5 + w[i] + outer; scan = y_out; cond: i < stop_at (or y_in > 0)."""
    nodes = [
        node("Gather", ["w", "i"], "row", axis=0),
        node("Mul", ["y_in", "half"], "scaled"),
        node("Add", ["scaled", "row"], "partial"),
        node("Add", ["partial", "outer"], "y_out"),
        node("Identity", ["y_out"], "scan"),
    ]
    if cond_from_data:
        nodes += [node("ReduceSum", ["y_in"], "total", keepdims=0),
                  node("Greater", ["total", "zero"], "cond_out")]
    elif stop_at is None:
        nodes.append(node("Identity", ["cond_in"], "cond_out"))
    else:
        nodes.append(node("Less", ["i", "stop"], "cond_out"))
    consts = [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
              helper.make_tensor("stop", TensorProto.INT64, [], [stop_at or 0]),
              helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    return helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_in", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [3])],
        consts)


def _inputs() -> dict:
    return {"y": rand(3), "outer": rand(3), "w": Const(rand(6, 3)),
            "m": Const(np.array(5, np.int64)), "c": Const(np.array(True))}


@pytest.mark.parametrize("stop_at", [None, 2])
def test_loop_unrolled(stop_at):
    loop = node("Loop", ["m", "c", "y"], ["y_final", "ys"], body=_body(stop_at))
    check_graph([loop], _inputs(), ["y_final", "ys"], opset=13)


def test_loop_without_trip_count_stops_on_its_condition():
    loop = node("Loop", ["", "c", "y"], ["y_final", "ys"], body=_body(3))
    check_graph([loop], _inputs(), ["y_final", "ys"], opset=13)


def test_loop_trip_count_as_a_model_input_is_frozen():
    loop = node("Loop", ["m", "c", "y"], ["y_final", "ys"], body=_body())
    w = rand(6, 3)
    graph = helper.make_graph(
        [loop], "g",
        [helper.make_tensor_value_info("m", TensorProto.INT64, []),
         helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("outer", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y_final", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [6, 3], w.reshape(-1).tolist())])
    model = make_model(graph, 13)
    feeds = {"m": np.array(4, np.int64), "c": np.array(True), "y": rand(3), "outer": rand(3)}
    expected = run_ort(model, feeds)
    got = Backend.prepare(model).run(feeds)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_loop_with_a_run_time_condition_is_rejected():
    loop = node("Loop", ["m", "c", "y"], ["y_final", "ys"], body=_body(cond_from_data=True))
    with pytest.raises(HcompileError, match="condition computed at run time"):
        check_graph([loop], _inputs(), ["y_final", "ys"], opset=13)

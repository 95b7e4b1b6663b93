"""Reductions and ArgMax/ArgMin against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_graph, check_node, node, rand

OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]  # fmt: skip
AXES = [None, [1], [-1], [0, 2], [-3, -1], [0, 1, 2]]


def _x() -> np.ndarray:
    return rand(3, 4, 5, low=0.5, high=1.5)  # positive, for LogSum; products stay O(1)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_input_opset18(axes, keepdims):
    inputs = {"x": _x()}
    names = ["x"]
    if axes is not None:
        inputs["axes"] = Const(np.array(axes, np.int64))
        names.append("axes")
    nodes = [node(op, names, op, keepdims=keepdims) for op in OPS]
    check_graph(nodes, inputs, OPS, opset=18)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_attribute_opset13(axes, keepdims):
    ops = [op for op in OPS if op != "ReduceSum"]
    attrs = {"keepdims": keepdims} | ({} if axes is None else {"axes": axes})
    nodes = [node(op, ["x"], op, **attrs) for op in ops]
    if axes is None:
        nodes.append(node("ReduceSum", ["x"], "ReduceSum", keepdims=keepdims))
    else:
        nodes.append(node("ReduceSum", ["x", "axes"], "ReduceSum", keepdims=keepdims))
    inputs = {"x": _x()} | ({} if axes is None else {"axes": Const(np.array(axes, np.int64))})
    check_graph(nodes, inputs, [*ops, "ReduceSum"], opset=13)


def test_reduce_noop_with_empty_axes():
    nodes = [node(op, ["x"], op, noop_with_empty_axes=1) for op in OPS]
    check_graph(nodes, {"x": _x()}, OPS, opset=18)


def test_reduce_empty_axes_input_reduces_all():
    ops = ["ReduceSum", "ReduceMax"]
    nodes = [node(op, ["x", "axes"], op) for op in ops]
    check_graph(nodes, {"x": _x(), "axes": Const(np.array([], np.int64))}, ops, opset=18)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_reduce_integer(dtype):
    ops = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]
    x = rand(3, 4, dtype=dtype, low=-3, high=4)
    nodes = [node(op, ["x", "axes"], op, keepdims=0) for op in ops]
    check_graph(nodes, {"x": x, "axes": Const(np.array([1], np.int64))}, ops, opset=18)


def test_reduce_log_sum_exp_large_values():
    x = np.array([[1000.0, 1000.5, 999.0], [-1000.0, -999.0, -1001.0]], np.float32)
    check_node("ReduceLogSumExp", [x, Const(np.array([1], np.int64))], opset=18)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_max_min(axis, keepdims, last):
    x = rand(3, 4, 5, dtype="int32", low=0, high=4).astype(np.float32)  # many ties
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": last}
    nodes = [node(op, ["x"], op, **attrs) for op in ("ArgMax", "ArgMin")]
    check_graph(nodes, {"x": x}, ["ArgMax", "ArgMin"])


def test_arg_max_integer_input():
    check_node("ArgMax", [rand(4, 6, dtype="int64", low=-100, high=100)], {"axis": 1})

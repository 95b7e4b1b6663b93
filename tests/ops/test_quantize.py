"""QuantizeLinear / DequantizeLinear and BitShift against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_graph, check_node, node, rand


@pytest.mark.parametrize("zero_dtype", [None, "uint8", "int8"])
def test_quantize_per_tensor(zero_dtype):
    inputs = [rand(3, 8, low=-30, high=30), Const(np.array(0.25, np.float32))]
    if zero_dtype:
        inputs.append(Const(np.array(3, zero_dtype)))
    check_node("QuantizeLinear", inputs)


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_quantize_dequantize_per_axis(axis):
    x = rand(2, 3, 4, low=-5, high=5)
    size = x.shape[axis]
    nodes = [
        node("QuantizeLinear", ["x", "scale", "zero"], "q", axis=axis),
        node("DequantizeLinear", ["q", "scale", "zero"], "dq", axis=axis),
    ]
    inputs = {
        "x": x,
        "scale": Const(rand(size, low=0.02, high=0.1)),
        "zero": Const(rand(size, dtype="int8", low=-10, high=10)),
    }
    check_graph(nodes, inputs, ["q", "dq"])


def test_dequantize_int32_and_runtime_scale():
    check_node(
        "DequantizeLinear",
        [rand(4, 5, dtype="int32", low=-1000, high=1000), np.array(0.01, np.float32)],
    )
    check_node(
        "DequantizeLinear",
        [rand(4, 5, dtype="uint8", low=0, high=255), Const(np.array(0.5, np.float32))],
    )


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift(direction):
    x = rand(3, 4, dtype="uint32", low=0, high=1000)
    check_node("BitShift", [x, rand(4, dtype="uint32", low=0, high=8)], {"direction": direction})

"""Activations and softmax-like ops against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_graph, check_node, node, rand


def test_activations_default_attributes():
    ops = ["Relu", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus",
           "Softsign", "Mish", "ThresholdedRelu", "Shrink", "Sigmoid", "Tanh"]  # fmt: skip
    x = rand(4, 33, low=-5, high=5)
    check_graph([node(op, ["x"], op) for op in ops], {"x": x}, ops, opset=18)


def test_activations_with_attributes():
    nodes = [
        node("LeakyRelu", ["x"], "leaky", alpha=0.3),
        node("Elu", ["x"], "elu", alpha=0.5),
        node("Selu", ["x"], "selu", alpha=1.5, gamma=2.0),
        node("Celu", ["x"], "celu", alpha=2.0),
        node("HardSigmoid", ["x"], "hsig", alpha=0.3, beta=0.4),
        node("ThresholdedRelu", ["x"], "trelu", alpha=0.5),
        node("Shrink", ["x"], "shrink", lambd=1.0, bias=0.5),
    ]
    outputs = [n.output[0] for n in nodes]
    check_graph(nodes, {"x": rand(3, 40, low=-4, high=4)}, outputs)


def test_softplus_large_magnitudes():
    x = np.array([-100.0, -30.0, -1.0, 0.0, 1.0, 19.0, 21.0, 30.0, 100.0], np.float32)
    check_node("Softplus", [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    check_node("Gelu", [rand(3, 50, low=-5, high=5)], {"approximate": approximate}, opset=20)


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.0, 6.0), (-1.0, None), (None, 0.5), (None, None), (2.0, 1.0)],  # min > max: max wins
)
def test_clip_constant_bounds(low, high):
    inputs = [rand(2, 3, 8, low=-8, high=8)]
    inputs.append(None if low is None else Const(np.array(low, np.float32)))
    inputs.append(None if high is None else Const(np.array(high, np.float32)))
    while inputs[-1] is None and len(inputs) > 1:
        inputs.pop()
    check_node("Clip", inputs)


def test_clip_runtime_bounds_and_integers():
    check_node(
        "Clip", [rand(3, 8, low=-8, high=8), np.array(-1.5, np.float32), np.array(2.5, np.float32)]
    )
    x = rand(3, 8, dtype="int32", low=-20, high=20)
    check_node("Clip", [x, Const(np.array(-5, np.int32)), Const(np.array(7, np.int32))])


@pytest.mark.parametrize("slope_shape", [(1,), (5, 1, 1), (4,), (3, 5, 1, 4)])
def test_prelu(slope_shape):
    check_node("PRelu", [rand(3, 5, 2, 4), rand(*slope_shape, low=0, high=1)])


def test_prelu_constant_slope():
    check_node("PRelu", [rand(2, 6, 3, 3), Const(rand(6, 1, 1, low=0, high=1))])


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax_family(axis):
    ops = ["Softmax", "LogSoftmax", "Hardmax"]
    nodes = [node(op, ["x"], op, axis=axis) for op in ops]
    check_graph(nodes, {"x": rand(3, 4, 5, low=-5, high=5)}, ops)


def test_softmax_default_axis():
    ops = ["Softmax", "LogSoftmax", "Hardmax"]
    check_graph([node(op, ["x"], op) for op in ops], {"x": rand(2, 7, low=-5, high=5)}, ops)


def test_hardmax_first_of_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], np.float32)
    check_node("Hardmax", [x], {"axis": 1})

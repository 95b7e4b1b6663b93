"""Pooling against ONNX Runtime."""

from __future__ import annotations

import pytest

from .harness import check_graph, check_node, node, rand

POOL_ATTRS = [
    {"kernel_shape": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 0, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "VALID", "strides": [2, 2]},
]


@pytest.mark.parametrize("attrs", POOL_ATTRS)
def test_max_pool2d(attrs):
    check_node("MaxPool", [rand(2, 3, 9, 10)], attrs)


@pytest.mark.parametrize("attrs", POOL_ATTRS)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool2d(attrs, count_include_pad):
    check_node(
        "AveragePool", [rand(2, 3, 9, 10)], {**attrs, "count_include_pad": count_include_pad}
    )


def test_max_pool_dilations_and_ranks():
    check_node("MaxPool", [rand(1, 2, 10, 10)], {"kernel_shape": [2, 2], "dilations": [2, 2]})
    check_node("MaxPool", [rand(1, 2, 11)], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]})
    check_node("MaxPool", [rand(1, 2, 5, 6, 7)], {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]})


def test_average_pool_ranks_and_dilations():
    check_node(
        "AveragePool", [rand(1, 2, 11)], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}
    )
    check_node("AveragePool", [rand(1, 2, 5, 6, 7)], {"kernel_shape": [2, 2, 2], "pads": [1] * 6})
    check_node(
        "AveragePool", [rand(1, 2, 10, 10)], {"kernel_shape": [2, 2], "dilations": [2, 2]}, opset=19
    )


def test_max_pool_integer():
    check_node(
        "MaxPool", [rand(1, 2, 6, 6, dtype="int8", low=-100, high=100)], {"kernel_shape": [2, 2]}
    )


def test_global_pools():
    ops = ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"]
    for shape in [(2, 3, 5, 4), (2, 3, 7), (1, 2, 3, 4, 5)]:
        check_graph([node(op, ["x"], op) for op in ops], {"x": rand(*shape)}, ops)


def test_lp_pool():
    check_node("LpPool", [rand(1, 2, 6, 6)], {"kernel_shape": [2, 2], "p": 2, "strides": [2, 2]})
    check_node("LpPool", [rand(1, 2, 6, 6)], {"kernel_shape": [3, 3], "p": 1, "pads": [1, 1, 1, 1]})

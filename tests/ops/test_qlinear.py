"""MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv and DynamicQuantizeLinear against
ONNX Runtime, including the per-row / per-channel zero points and scales the node suite lacks."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_node, rand


@pytest.mark.parametrize("dtypes", [("uint8", "uint8"), ("uint8", "int8")])
def test_matmul_integer_per_column_zero_point(dtypes):
    a_dt, b_dt = dtypes
    lo_a, hi_a = (0, 255) if a_dt == "uint8" else (-128, 127)
    lo_b, hi_b = (0, 255) if b_dt == "uint8" else (-128, 127)
    a = rand(3, 4, dtype=a_dt, low=lo_a, high=hi_a)
    b = rand(4, 5, dtype=b_dt, low=lo_b, high=hi_b)
    # ONNX Runtime takes a scalar a_zero_point only; b_zero_point may be per column
    check_node("MatMulInteger", [a, b, Const(np.array(9, a_dt)),
                                 Const(rand(5, dtype=b_dt, low=0, high=20))])


def test_matmul_integer_batched_no_zero_points():
    check_node("MatMulInteger", [rand(2, 3, 4, dtype="uint8", low=0, high=255),
                                 rand(4, 6, dtype="uint8", low=0, high=255)])


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]},
                                   {"group": 2, "dilations": [2, 2]}])
def test_conv_integer(attrs):
    x = rand(1, 4, 7, 7, dtype="uint8", low=0, high=255)
    w = rand(4, 4 // attrs.get("group", 1), 3, 3, dtype="uint8", low=0, high=255)
    check_node("ConvInteger", [x, Const(w), Const(np.array(7, np.uint8)),
                               Const(np.array(3, np.uint8))], attrs)


def test_qlinear_matmul_int8():
    a = rand(2, 4, 3, dtype="int8", low=-128, high=127)
    b = rand(3, 5, dtype="int8", low=-128, high=127)
    check_node("QLinearMatMul", [
        a, Const(np.array(0.05, np.float32)), Const(np.array(-3, np.int8)),
        Const(b), Const(np.array(0.02, np.float32)), Const(np.array(2, np.int8)),
        Const(np.array(0.3, np.float32)), Const(np.array(5, np.int8)),
    ])


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv(per_channel):
    x = rand(1, 3, 6, 6, dtype="uint8", low=0, high=255)
    w = rand(4, 3, 3, 3, dtype="uint8", low=0, high=255)
    w_scale = rand(4, low=0.001, high=0.01) if per_channel else np.array(0.004, np.float32)
    w_zero = (rand(4, dtype="uint8", low=100, high=150) if per_channel
              else np.array(128, np.uint8))
    bias = rand(4, dtype="int32", low=-500, high=500)
    check_node("QLinearConv", [
        x, Const(np.array(0.02, np.float32)), Const(np.array(120, np.uint8)),
        Const(w), Const(w_scale), Const(w_zero),
        Const(np.array(0.05, np.float32)), Const(np.array(100, np.uint8)), Const(bias),
    ], {"pads": [1, 1, 1, 1]})


def test_dynamic_quantize_linear():
    # expanded from ONNX's function body by the importer
    check_node("DynamicQuantizeLinear", [rand(3, 7, low=-4, high=9)], outputs=3)

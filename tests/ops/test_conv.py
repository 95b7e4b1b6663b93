"""Conv and ConvTranspose against ONNX Runtime (fp32 sums of up to a few hundred products)."""

from __future__ import annotations

import pytest

from .harness import Const, check_node, rand

ATOL = 1e-4  # accumulation order differs from ONNX Runtime's im2col GEMM


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"pads": [1, 1, 1, 1]},
        {"pads": [0, 1, 2, 1], "strides": [2, 1]},
        {"strides": [2, 2], "dilations": [2, 1]},
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
        {"auto_pad": "SAME_UPPER", "kernel_shape": [3, 3]},
        {"auto_pad": "VALID", "strides": [1, 2]},
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(attrs, bias):
    inputs = [rand(2, 3, 9, 8), Const(rand(4, 3, 3, 3))] + ([Const(rand(4))] if bias else [])
    check_node("Conv", inputs, attrs, atol=ATOL)


@pytest.mark.parametrize(("channels", "group", "out"), [(4, 2, 6), (6, 6, 6), (6, 6, 12)])
def test_conv2d_groups(channels, group, out):
    w = Const(rand(out, channels // group, 3, 3))
    check_node(
        "Conv",
        [rand(1, channels, 7, 7), w, Const(rand(out))],
        {"group": group, "pads": [1] * 4},
        atol=ATOL,
    )


def test_conv2d_runtime_weight():
    check_node("Conv", [rand(1, 2, 6, 6), rand(3, 2, 2, 2)], {"strides": [2, 2]}, atol=ATOL)


@pytest.mark.parametrize(
    "attrs", [{}, {"pads": [2, 1], "strides": [2], "dilations": [2]}, {"auto_pad": "SAME_UPPER"}]
)
def test_conv1d(attrs):
    check_node("Conv", [rand(2, 3, 11), Const(rand(5, 3, 4)), Const(rand(5))], attrs, atol=ATOL)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 0, 1, 1, 0, 1], "strides": [1, 2, 2]}])
def test_conv3d(attrs):
    check_node(
        "Conv", [rand(1, 2, 5, 6, 6), Const(rand(3, 2, 3, 3, 3)), Const(rand(3))], attrs, atol=ATOL
    )


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"strides": [2, 2]},
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"strides": [2, 2], "pads": [0, 1, 1, 0], "output_padding": [1, 1]},
        {"strides": [3, 2], "dilations": [2, 1]},
        {"strides": [2, 2], "output_shape": [10, 9]},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER", "output_shape": [9, 8]},
    ],
)
def test_conv_transpose2d(attrs):
    inputs = [rand(2, 4, 4, 4), Const(rand(4, 3, 3, 3)), Const(rand(3))]
    check_node("ConvTranspose", inputs, attrs, atol=ATOL)


def test_conv_transpose_groups_1d_3d():
    check_node(
        "ConvTranspose",
        [rand(1, 4, 5), Const(rand(4, 3, 3))],
        {"group": 2, "strides": [2]},
        atol=ATOL,
    )
    check_node(
        "ConvTranspose",
        [rand(1, 2, 3, 3, 3), Const(rand(2, 2, 2, 2, 2))],
        {"strides": [2, 2, 2]},
        atol=ATOL,
    )

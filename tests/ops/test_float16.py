"""float16 through the common ops. Tolerance: fp16 has an 11-bit mantissa (eps 9.8e-4), and
ONNX Runtime accumulates some of these in fp32, so results differ by a few fp16 ulps.
"""

from __future__ import annotations

import numpy as np

from .harness import Const, check_graph, check_node, node, rand

RTOL, ATOL = 1e-2, 1e-2


def test_float16_elementwise_and_softmax():
    x, b = rand(3, 8, dtype="float16"), rand(8, dtype="float16")
    ops = [node("Add", ["x", "b"], "add"), node("Relu", ["x"], "relu"),
           node("Sigmoid", ["x"], "sig"), node("Softmax", ["x"], "softmax"),
           node("Cast", ["x"], "f32", to=1)]  # fmt: skip
    check_graph(
        ops, {"x": x, "b": b}, ["add", "relu", "sig", "softmax", "f32"], rtol=RTOL, atol=ATOL
    )


def test_float16_layer_norm_stashes_float32():
    x = rand(3, 8, dtype="float16")
    inputs = [x, Const(rand(8, dtype="float16")), Const(rand(8, dtype="float16"))]
    check_node("LayerNormalization", inputs, outputs=3, rtol=RTOL, atol=ATOL)
    check_node("LayerNormalization", inputs, rtol=RTOL, atol=ATOL)


def test_float16_matmul_conv_pool_resize():
    check_node(
        "MatMul", [rand(3, 4, dtype="float16"), rand(4, 5, dtype="float16")], rtol=RTOL, atol=ATOL
    )
    w = Const(rand(3, 2, 3, 3, dtype="float16"))
    check_node("Conv", [rand(1, 2, 5, 5, dtype="float16"), w], rtol=RTOL, atol=ATOL)
    check_node("MaxPool", [rand(1, 2, 5, 5, dtype="float16")], {"kernel_shape": [2, 2]})
    scales = Const(np.array([1, 1, 2, 2], np.float32))
    check_node(
        "Resize",
        [rand(1, 1, 4, 4, dtype="float16"), None, scales],
        {"mode": "linear"},
        rtol=RTOL,
        atol=ATOL,
    )

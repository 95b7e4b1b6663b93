"""Ops hcompile compiles through ONNX's function bodies (RMSNormalization, the losses, ...)
or by unrolling (Scan), plus CumProd, float Mod with fmod=0 and bool reductions, against
ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .harness import (
    Const,
    check_graph,
    check_node,
    make_node_model,
    node,
    rand,
    run_hcompile,
    with_output_types,
)


def test_rms_normalization_function_body():
    check_node("RMSNormalization", [rand(2, 3, 8), Const(rand(8))], {"axis": -1}, opset=23)


def test_softmax_cross_entropy_loss_with_weights_and_ignore_index():
    labels = np.array([[0, 2, 1], [3, 1, 0]], np.int64)
    check_node("SoftmaxCrossEntropyLoss", [rand(2, 4, 3), labels, Const(rand(4, low=0.1))],
               {"reduction": "mean", "ignore_index": 1}, opset=13)


def test_cumprod_reverse_exclusive():
    """ONNX Runtime has no CumProd kernel yet: compared with numpy."""
    x = rand(3, 4, low=0.5, high=1.5)
    model, feeds = make_node_model("CumProd", [x, Const(np.array(1, np.int64))],
                                   {"reverse": 1, "exclusive": 1}, opset=26)
    want = np.flip(np.cumprod(np.flip(x, 1), axis=1), 1)
    want = np.concatenate([want[:, 1:], np.ones((3, 1), np.float32)], axis=1)
    got = run_hcompile(with_output_types(model, [want]), feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_mod_float_fmod0_is_numpy_remainder(dt):
    a = np.array([-4.5, 4.5, -3, 3, 0, 7.25], dt)
    b = np.array([2, -2, 2, -2, 3, 0.5], dt)
    model, feeds = make_node_model("Mod", [a, b], {"fmod": 0})
    want = np.mod(a, b)
    np.testing.assert_allclose(run_hcompile(with_output_types(model, [want]), feeds)[0], want)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_extremes_bool_and_infinities(op):
    check_node(op, [rand(3, 4, dtype="bool"), Const(np.array([1], np.int64))], opset=20)
    x = np.full((2, 3), -np.inf if op == "ReduceMax" else np.inf, np.float32)
    x[1, 1] = 1.0
    check_node(op, [x, Const(np.array([1], np.int64))], opset=18)


def test_scan_unrolled_both_directions():
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "x"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y"])],
        "body",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    scan = node("Scan", ["init", "xs"], ["final", "ys"], body=body, num_scan_inputs=1,
                scan_input_directions=[1], scan_output_axes=[1])
    check_graph([scan], {"init": rand(2), "xs": rand(5, 2)}, ["final", "ys"])


@pytest.mark.parametrize("attrs,length,channels", [({}, 12, 2), ({"onesided": 1}, 8, 1),
                                                   ({"inverse": 1}, None, 2)])
def test_dft_lengths_and_complex_input(attrs, length, channels):
    """dft_length padding / truncation and complex input: combinations the node suite lacks."""
    x = rand(2, 10, channels)
    inputs = [x, Const(np.array(length, np.int64)) if length else None,
              Const(np.array(1, np.int64))]
    check_node("DFT", inputs, attrs, opset=20, rtol=1e-4, atol=1e-4)

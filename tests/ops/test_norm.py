"""Normalisations against ONNX Runtime."""

from __future__ import annotations

import pytest

from .harness import Const, check_node, rand

# The importer cannot type these ONNX function ops yet (ShapeError), and the ONNX checker rejects
# GroupNormalization-18 as deprecated: test their lowerings directly.
FUNCTION_OPS = "lowering"


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (2, 3, 7), (1, 3, 2, 2, 2)])
def test_batch_norm(shape):
    c = shape[1]
    params = [Const(rand(c)), Const(rand(c)), Const(rand(c)), Const(rand(c, low=0.1, high=2))]
    check_node("BatchNormalization", [rand(*shape), *params], {"epsilon": 1e-3})


def test_batch_norm_runtime_params():
    c = 4
    params = [rand(c), rand(c), rand(c), rand(c, low=0.1, high=2)]
    check_node("BatchNormalization", [rand(2, c, 3, 3), *params], opset=15)


@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(axis, bias):
    x = rand(2, 3, 8, low=-3, high=5)
    norm_shape = x.shape[axis:]
    inputs = [x, Const(rand(*norm_shape))] + ([Const(rand(*norm_shape))] if bias else [])
    check_node("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-5})


def test_layer_norm_with_stats_outputs():
    x = rand(2, 3, 8, low=-3, high=5)
    check_node("LayerNormalization", [x, Const(rand(8)), Const(rand(8))], outputs=3)
    check_node(
        "LayerNormalization", [x, rand(3, 8), rand(3, 8)], {"axis": 1}, outputs=["y", "", "inv"]
    )


def test_layer_norm_broadcast_scale():
    x = rand(2, 3, 8)
    check_node("LayerNormalization", [x, Const(rand(1, 8)), Const(rand(8))], {"axis": 1})


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 7), (1, 2, 3, 3, 3)])
def test_instance_norm(shape):
    c = shape[1]
    check_node(
        "InstanceNormalization", [rand(*shape), Const(rand(c)), Const(rand(c))], {"epsilon": 1e-4}
    )


@pytest.mark.parametrize(("opset", "per_channel"), [(18, False), (21, True)])
def test_group_norm(opset, per_channel):
    n = 6 if per_channel else 3
    inputs = [rand(2, 6, 4, 4), Const(rand(n)), Const(rand(n))]
    attrs = {"num_groups": 3, "epsilon": 1e-5}
    check_node("GroupNormalization", inputs, attrs, opset=opset, via=FUNCTION_OPS)


@pytest.mark.parametrize("size", [1, 3, 5])  # ONNX Runtime rejects even sizes
def test_lrn(size):
    attrs = {"size": size, "alpha": 1e-2, "beta": 0.75, "bias": 2.0}
    check_node("LRN", [rand(2, 6, 3, 3)], attrs)


@pytest.mark.parametrize(("axis", "p"), [(-1, 2), (1, 1), (0, 2)])
def test_lp_normalization(axis, p):
    check_node("LpNormalization", [rand(3, 4, 5)], {"axis": axis, "p": p})


@pytest.mark.parametrize("axes", [None, [1], [0, 1, 2, 3]])
def test_mean_variance_normalization(axes):
    attrs = {} if axes is None else {"axes": axes}
    check_node("MeanVarianceNormalization", [rand(2, 3, 4, 5)], attrs, via=FUNCTION_OPS)

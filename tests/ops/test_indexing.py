"""Slice, Pad, Gather/Scatter, OneHot, TopK, CumSum, Trilu against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_node, rand

BIG = np.iinfo(np.int64).max


def _i64(*values: int) -> Const:
    return Const(np.array(values, np.int64))


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ([1], [3], None, None),
        ([0, 1], [2, -1], [0, 2], None),
        ([-3], [BIG], [1], None),
        ([0], [10], [-1], [2]),
        ([-1], [-BIG], [2], [-1]),  # full reversal
        ([4], [0], [2], [-2]),
        ([5], [-10], [-1], [-3]),
        ([1, 3], [0, 1], [0, 1], [-1, -1]),
        ([2], [2], [1], [1]),  # empty
        ([10], [20], [2], [1]),  # clamped to empty
        ([-100], [100], [0], [1]),
    ],
)
def test_slice(starts, ends, axes, steps):
    inputs = [rand(3, 4, 6), _i64(*starts), _i64(*ends)]
    if axes is not None or steps is not None:
        inputs.append(_i64(*axes) if axes is not None else None)
    if steps is not None:
        inputs.append(_i64(*steps))
    check_node("Slice", inputs)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 1, 0, 2], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
def test_pad(mode, pads):
    inputs = [rand(3, 4, 5), _i64(*pads)]
    if mode == "constant":
        inputs.append(Const(np.array(1.5, np.float32)))
    check_node("Pad", inputs, {"mode": mode})


def test_pad_negative_and_axes():
    check_node("Pad", [rand(3, 4, 5), _i64(-1, 2, 0, 1, -2, 1)])
    check_node(
        "Pad",
        [rand(3, 4, 5), _i64(1, 2, 3, 0), Const(np.array(0, np.float32)), _i64(0, -1)],
        {"mode": "edge"},
        opset=18,
    )
    check_node("Pad", [rand(3, 4, 5), _i64(2, 1, 0, 0, 3, 2)], {"mode": "wrap"}, opset=19)


def test_pad_integer():
    x = rand(3, 4, dtype="int64", low=-9, high=9)
    check_node("Pad", [x, _i64(1, 0, 0, 2), Const(np.array(-7, np.int64))])


@pytest.mark.parametrize(
    ("data_shape", "indices", "axis"),
    [
        ((5, 4), np.array([0, 2, 4]), 0),
        ((5, 4), np.array([[0, -1], [3, -4]]), 1),
        ((2, 5, 3), np.array(2), 1),
        ((2, 5, 3), np.array([-1, 0, -2]), -2),
    ],
)
@pytest.mark.parametrize("const", [True, False])
def test_gather(data_shape, indices, axis, const):
    idx = indices.astype(np.int64)
    check_node("Gather", [rand(*data_shape), Const(idx) if const else idx], {"axis": axis})


def test_gather_int32_indices_and_int_data():
    x = rand(4, 6, dtype="int64", low=-99, high=99)
    check_node("Gather", [x, np.array([[3, -1], [0, 2]], np.int32)], {"axis": 0})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    data = rand(3, 4)
    size = data.shape[axis]
    indices = rand(3, 4, dtype="int64", low=-size, high=size)
    check_node("GatherElements", [data, indices], {"axis": axis})


@pytest.mark.parametrize(
    ("data_shape", "indices", "batch_dims"),
    [
        ((3, 4), [[0, 1], [2, -1]], 0),
        ((3, 4, 2), [[1], [-1]], 0),
        ((2, 3, 4), [[[1, 2]], [[0, -1]]], 0),
        ((2, 3, 4), [[1], [2]], 1),
    ],
)
def test_gather_nd(data_shape, indices, batch_dims):
    idx = np.array(indices, np.int64)
    check_node("GatherND", [rand(*data_shape), idx], {"batch_dims": batch_dims})
    check_node("GatherND", [rand(*data_shape), Const(idx)], {"batch_dims": batch_dims})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction):
    data = rand(4, 3, 2)
    indices = np.array([[1], [-1]], np.int64)
    updates = rand(2, 3, 2)
    check_node("ScatterND", [data, indices, updates], {"reduction": reduction}, opset=18)


def test_scatter_nd_element_updates():
    check_node("ScatterND", [rand(3, 4), np.array([[0, 1], [2, -1]], np.int64), rand(2)])


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    data = rand(3, 4)
    indices = (
        np.array([[0, 1, 2], [2, -1, 0]], np.int64)
        if axis == 0
        else np.array([[0, 3], [1, -2], [3, 0]], np.int64)
    )
    if reduction == "none":  # duplicate targets have no defined result without a reduction
        indices = (
            np.array([[0, 1, 2], [2, -2, 0]], np.int64)
            if axis == 0
            else np.array([[0, 3], [1, -1], [3, 0]], np.int64)
        )
    updates = rand(*indices.shape)
    check_node(
        "ScatterElements",
        [data, indices, updates],
        {"axis": axis, "reduction": reduction},
        opset=18,
    )


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis):
    indices = np.array([[0, 2, -1], [5, -4, 1]], np.int64)  # 5 and -4 are out of range: all off
    values = Const(np.array([0.5, 3.0], np.float32))
    check_node("OneHot", [indices, _i64(4), values], {"axis": axis})


def test_one_hot_float_indices_int_values():
    indices = np.array([0.0, 2.7, 1.2], np.float32)
    check_node("OneHot", [indices, Const(np.array(3.0, np.float32)), np.array([-1, 7], np.float32)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("largest", [0, 1])
def test_topk(axis, largest):
    x = rand(4, 5, 6)
    check_node("TopK", [x, _i64(3)], {"axis": axis, "largest": largest}, outputs=2)


def test_topk_ties_prefer_lower_index():
    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0]], np.float32)
    check_node("TopK", [x, _i64(4)], outputs=2)
    check_node("TopK", [x, _i64(4)], {"largest": 0}, outputs=2)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(exclusive, reverse, axis):
    check_node("CumSum", [rand(3, 5), _i64(axis)], {"exclusive": exclusive, "reverse": reverse})


def test_cumsum_integer():
    check_node("CumSum", [rand(3, 5, dtype="int64", low=-9, high=9), Const(np.array(1, np.int32))])


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -2, 5])
def test_trilu(upper, k):
    inputs = [rand(2, 4, 5)] + ([] if k is None else [Const(np.array(k, np.int64))])
    check_node("Trilu", inputs, {"upper": upper})

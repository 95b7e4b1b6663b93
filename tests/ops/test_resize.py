"""Resize against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_node, rand

COORDINATE_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]


def _f32(*values: float) -> Const:
    return Const(np.array(values, np.float32))


def _i64(*values: int) -> Const:
    return Const(np.array(values, np.int64))


@pytest.mark.parametrize("coord_mode", COORDINATE_MODES)
@pytest.mark.parametrize(
    "nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
)
@pytest.mark.parametrize("scales", [(1, 1, 2, 3), (1, 1, 0.5, 0.6), (1, 1, 1.7, 0.75)])
def test_resize_nearest_scales(coord_mode, nearest_mode, scales):
    attrs = {
        "mode": "nearest",
        "coordinate_transformation_mode": coord_mode,
        "nearest_mode": nearest_mode,
    }
    check_node("Resize", [rand(1, 2, 5, 6), None, _f32(*scales)], attrs)


@pytest.mark.parametrize("coord_mode", [*COORDINATE_MODES, "half_pixel_symmetric"])
@pytest.mark.parametrize("scales", [(1, 1, 2, 3), (1, 1, 0.5, 0.6), (1, 1, 1.7, 0.75)])
def test_resize_linear_scales(coord_mode, scales):
    attrs = {"mode": "linear", "coordinate_transformation_mode": coord_mode}
    check_node("Resize", [rand(2, 3, 5, 6), None, _f32(*scales)], attrs, opset=19)


# Cubic compiles slowly (16 gathers in one fused kernel): fewer combinations.
@pytest.mark.parametrize("coord_mode", ["half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("scales", [(1, 1, 0.5, 0.6), (1, 1, 1.7, 0.75)])
def test_resize_cubic_scales(coord_mode, scales):
    attrs = {"mode": "cubic", "coordinate_transformation_mode": coord_mode}
    check_node("Resize", [rand(1, 2, 5, 6), None, _f32(*scales)], attrs, opset=19)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [(1, 2, 10, 3), (1, 2, 1, 1), (1, 2, 7, 12)])
def test_resize_sizes(mode, sizes):
    check_node("Resize", [rand(1, 2, 5, 6), None, None, _i64(*sizes)], {"mode": mode})


def test_resize_cubic_attributes():
    attrs = {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}
    check_node("Resize", [rand(1, 1, 6, 6), None, _f32(1, 1, 1.5, 0.7)], attrs)


def test_resize_opset11_empty_roi_and_scales():
    inputs = [rand(1, 2, 4, 4), _f32(), _f32(), _i64(1, 2, 8, 6)]
    check_node("Resize", inputs, {"mode": "linear"}, opset=11)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_tf_crop_and_resize(mode):
    roi = _f32(0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3)
    attrs = {
        "mode": mode,
        "coordinate_transformation_mode": "tf_crop_and_resize",
        "extrapolation_value": -7.0,
    }
    check_node("Resize", [rand(1, 2, 6, 6), roi, None, _i64(1, 2, 4, 5)], attrs)


def test_resize_axes_and_aspect_ratio():
    check_node(
        "Resize",
        [rand(1, 2, 5, 6), None, _f32(2.0, 0.5)],
        {"axes": [2, 3], "mode": "linear"},
        opset=18,
    )
    for policy in ["not_larger", "not_smaller"]:
        # positive axes: ONNX Runtime mishandles negative ones here
        attrs = {"axes": [2, 3], "keep_aspect_ratio_policy": policy}
        check_node("Resize", [rand(1, 2, 5, 6), None, None, _i64(10, 9)], attrs, opset=18)


def test_resize_3d_and_1d():
    check_node("Resize", [rand(1, 1, 3, 4, 5), None, _f32(1, 1, 2, 1.5, 0.8)], {"mode": "linear"})
    check_node("Resize", [rand(2, 7), None, _f32(1, 2.5)], {"mode": "cubic"})


def test_resize_nearest_integer_data():
    x = rand(1, 1, 4, 4, dtype="int32", low=-50, high=50)
    check_node("Resize", [x, None, _f32(1, 1, 2, 1.5)], {"mode": "nearest"})

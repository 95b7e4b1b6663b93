"""DeformConv against ONNX Runtime: groups, offset groups, mask, bias, strides, dilations, pads,
offsets large enough to move taps outside the input."""

from __future__ import annotations

import pytest

from .harness import check_node, rand


@pytest.mark.parametrize(("x", "w", "attrs", "out"), [
    ((1, 2, 5, 5), (3, 2, 3, 3), {"pads": [1, 1, 1, 1]}, (5, 5)),
    ((2, 4, 6, 5), (4, 2, 2, 2), {"group": 2, "offset_group": 2, "strides": [2, 1]}, (3, 4)),
    ((1, 2, 7, 7), (2, 2, 2, 3), {"dilations": [2, 1], "pads": [0, 1, 1, 0]}, (6, 6)),
])  # fmt: skip
@pytest.mark.parametrize("with_mask", [False, True])
def test_deform_conv(x, w, attrs, out, with_mask):
    taps = w[2] * w[3] * attrs.get("offset_group", 1)
    offset = rand(x[0], 2 * taps, *out, low=-2.5, high=2.5)
    inputs = [rand(*x), rand(*w), offset]
    if with_mask:
        inputs += [rand(w[0]), rand(x[0], taps, *out, low=0.0, high=1.0)]
    check_node("DeformConv", inputs, {"kernel_shape": list(w[2:]), **attrs}, opset=19)

"""MaxUnpool and Col2Im against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_graph, check_node, make_node_model, node, rand, run_ort


def _pool_indices(x: np.ndarray, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """MaxPool's values and indices from ONNX Runtime (hcompile has no Indices output)."""
    model, feeds = make_node_model("MaxPool", [x], attrs, outputs=2)
    values, indices = run_ort(model, feeds)
    return values, indices


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]},
    {"kernel_shape": [2], "strides": [2]},
])  # fmt: skip
def test_max_unpool(attrs):
    # Sizes MaxPool covers exactly, so that unpooling restores the input's shape.
    x = {(2, 2): rand(2, 3, 6, 4), (3, 2): rand(2, 3, 7, 5), (2,): rand(2, 3, 10)}[
        tuple(attrs["kernel_shape"])]
    values, indices = _pool_indices(x, attrs)
    check_node("MaxUnpool", [values, indices], attrs, opset=11)


def test_max_unpool_output_shape_equal_to_the_pooled_input():
    x = rand(1, 2, 4, 4)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    values, indices = _pool_indices(x, attrs)
    shape = Const(np.array([1, 2, 4, 4], np.int64))
    check_node("MaxUnpool", [values, indices, shape], attrs, opset=11)


def test_col2im_variants():
    """Overlapping blocks (sums), dilations, pads, strides, 1-D and 3-D images in one graph."""
    cases = [
        ((2, 3 * 6, 8), [5, 4], [2, 3], {}),
        ((1, 2 * 4, 9), [5, 5], [2, 2], {"dilations": [2, 2]}),
        ((1, 1 * 9, 12), [6, 6], [3, 3], {"pads": [1, 0, 2, 1], "strides": [2, 2]}),
        ((1, 2 * 3, 7), [9], [3], {"strides": [1]}),
        ((1, 1 * 8, 12), [3, 4, 5], [2, 2, 2], {"strides": [1, 2, 2], "pads": [0, 1, 0, 0, 0, 1]}),
    ]
    nodes, inputs, outputs = [], {}, []
    for k, (shape, image, block, attrs) in enumerate(cases):
        inputs[f"x{k}"] = rand(*shape)
        inputs[f"i{k}"] = Const(np.array(image, np.int64))
        inputs[f"b{k}"] = Const(np.array(block, np.int64))
        outputs.append(f"y{k}")
        nodes.append(node("Col2Im", [f"x{k}", f"i{k}", f"b{k}"], outputs[-1], **attrs))
    check_graph(nodes, inputs, outputs, opset=18)

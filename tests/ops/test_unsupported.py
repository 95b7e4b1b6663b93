"""Attribute combinations hcompile rejects: an UnsupportedOpError naming the attribute."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.errors import UnsupportedOpError

from .harness import Const, make_node_model, rand, run_hcompile, run_ort, with_output_types

CASES = [
    ("MaxPool", [rand(1, 1, 4, 4)], {"kernel_shape": [2, 2]}, 2, 17, "Indices"),
    ("Dropout", [rand(2, 3), Const(np.array(0.5, np.float32)), Const(np.array(True))], {}, 1, 17,
     "training_mode"),
    ("Resize", [rand(1, 1, 8, 8), None, Const(np.array([1, 1, 0.5, 0.5], np.float32))],
     {"mode": "linear", "antialias": 1}, 1, 18, "antialias"),
    ("Resize", [rand(1, 1, 4, 4, dtype="int8", low=-9, high=9), None,
                Const(np.array([1, 1, 2, 2], np.float32))], {"mode": "linear"}, 1, 18, "linear"),
    ("Pad", [rand(3, 4), Const(np.array([-1, 1, 0, 1], np.int64))], {"mode": "edge"}, 1, 17,
     "negative pads"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "inputs", "attrs", "outputs", "opset", "match"), CASES)
@pytest.mark.parametrize("via", ["hcompile", "lowering"])
def test_unsupported(op, inputs, attrs, outputs, opset, match, via):
    model, feeds = make_node_model(op, inputs, attrs, outputs=outputs, opset=opset)
    typed = with_output_types(model, run_ort(model, feeds))  # ONNX Runtime runs it fine
    with pytest.raises(UnsupportedOpError, match=match):
        run_hcompile(typed, feeds, via=via)


def test_runtime_value_for_a_static_input():
    model, feeds = make_node_model("TopK", [rand(2, 5), np.array([2], np.int64)], outputs=2)
    typed = with_output_types(model, run_ort(model, feeds))
    with pytest.raises(UnsupportedOpError, match="compile-time constant"):
        run_hcompile(typed, feeds, via="lowering")

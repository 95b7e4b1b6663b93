"""BitCast against ONNX Runtime: every same-width pair the node tests use and a few more, in one
graph (one compile), with values whose bit patterns matter (NaN, -0.0, negative integers)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from hcompile.errors import HcompileError

from .harness import check_graph, make_model, make_node_model, node, run_hcompile

# (input dtype, ONNX `to` code, output dtype name)
PAIRS = [
    ("float32", 6, "int32"), ("int32", 1, "float32"), ("float64", 7, "int64"),
    ("int64", 11, "float64"), ("uint16", 5, "int16"), ("float16", 4, "uint16"),
    ("int16", 10, "float16"), ("int8", 2, "uint8"), ("uint8", 3, "int8"),
    ("uint32", 6, "int32"), ("uint64", 7, "int64"),
]  # fmt: skip


def _values(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(1)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("float"):
        out = rng.standard_normal(shape).astype(dtype)
        out.reshape(-1)[:3] = [np.nan, -0.0, np.inf]
        return out
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def test_bitcast_pairs():
    nodes, inputs, outputs = [], {}, []
    for k, (src, to, _) in enumerate(PAIRS):
        inputs[f"x{k}"] = _values(src, (3, 4) if k % 2 else (2, 3, 5))
        outputs.append(f"y{k}")
        nodes.append(node("BitCast", [f"x{k}"], outputs[-1], to=to))
    got = check_graph(nodes, inputs, outputs, opset=26)
    for (_, _, name), value in zip(PAIRS, got, strict=True):
        assert value.dtype == np.dtype(name)


def test_bitcast_scalar_matches_numpy_view():
    x = np.array(-1.5, np.float32)
    (got,) = check_graph([node("BitCast", ["x"], "y", to=6)], {"x": x}, ["y"], opset=26)
    assert got == x.view(np.int32)


def test_bitcast_bool_to_uint8_matches_numpy_view():
    """ONNX Runtime has no bool kernel for BitCast: compare with numpy's reinterpretation."""
    x = _values("bool", (3, 5))
    graph = helper.make_graph(
        [node("BitCast", ["x"], "y", to=2)], "g",
        [helper.make_tensor_value_info("x", TensorProto.BOOL, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, x.shape)])
    (got,) = run_hcompile(make_model(graph, 26), {"x": x})
    np.testing.assert_array_equal(got, x.view(np.uint8))
    assert got.dtype == np.uint8


def test_bitcast_width_mismatch_is_rejected():
    model, feeds = make_node_model("BitCast", [np.ones((2, 2), np.float32)], {"to": 7},
                                   opset=26)
    with pytest.raises(HcompileError):
        run_hcompile(model, feeds)

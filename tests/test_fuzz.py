"""A deterministic slice of the importer fuzzer, and every crasher it found, kept as tests.

The full run (10,000 cases): ``.venv/bin/python -m tests.fuzz.run --cases 10000``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hcompile.errors import HcompileError, ModelError, ShapeError, UnsupportedOpError
from hcompile.frontend import import_model
from hcompile.passes import PassOptions, run_pipeline
from tests.fuzz.run import case_list, run_cases


def test_fuzz_slice_has_no_crash_or_timeout():
    results = run_cases(case_list(320), seed=7, compile_every=40, jobs=1)
    outcomes = {str(r["outcome"]).split(":")[0] for r in results}
    bad = [r for r in results if str(r["outcome"]).startswith(("crash", "timeout"))]
    assert not bad, bad
    assert "error" in outcomes and ("imported" in outcomes or "compiled" in outcomes)


def test_regression_initializer_with_unknown_data_type():
    """Found by the fuzzer (initializer_dtype): numpy_helper raised KeyError: 77."""
    init = numpy_helper.from_array(np.ones((2,), np.float32), "w")
    init.data_type = 77
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(HcompileError) as info:
        import_model(model.SerializeToString())
    assert "'w'" in str(info.value) or "checker" in str(info.value)


def _lstm(steps: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1, 8, 3)).astype(np.float32), "W")
    r = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "R")
    node = helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=2)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [steps, 1, 3])],
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, 2])],
                              [w, r])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_regression_lstm_with_two_billion_steps_is_refused_quickly():
    """Found by the fuzzer (bad_dims): unrolling 2**31 steps ran past the 30 s limit."""
    graph, _ = import_model(_lstm(2**31))
    with pytest.raises(UnsupportedOpError, match="at most 4096 steps"):
        run_pipeline(graph, PassOptions())


def test_huge_declared_dims_are_refused_at_import():
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**20, 2**20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2**20, 2**20])]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ShapeError, match="4096 GiB"):
        import_model(model)


def test_truncated_model_is_a_model_error():
    data = _lstm(4).SerializeToString()
    with pytest.raises(ModelError):
        import_model(data[: len(data) // 2])


def test_regression_softmax_on_bool_is_a_compile_error():
    """Found by the fuzzer (wrong_dtype): TVM's TypeError escaped while emitting Softmax."""
    import hcompile
    from hcompile.errors import CompileError

    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.BOOL, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.BOOL, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(HcompileError) as info:
        hcompile.compile(model)
    assert isinstance(info.value, CompileError | ModelError)
    assert "Softmax" in str(info.value)


def test_gather_with_out_of_range_runtime_index_never_crashes(isolated_cache):
    """ONNX leaves out-of-range Gather indices undefined; hcompile clamps instead of crashing."""
    import hcompile

    graph = helper.make_graph([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2]),
                               helper.make_tensor_value_info("i", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    exe = hcompile.load(hcompile.compile(model))
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    y = exe.run({"x": x, "i": np.array([1, 10**9, -(10**9)], np.int64)})["y"]
    assert y.shape == (3, 2) and np.isfinite(y).all()
    np.testing.assert_array_equal(y[0], x[1])


@pytest.mark.parametrize("op", ["GatherElements", "ScatterElements"])
def test_element_index_ops_clamp_out_of_range_runtime_indices(op, isolated_cache):
    import hcompile

    inputs = ["x", "i"] + (["u"] if op == "ScatterElements" else [])
    value_infos = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2]),
                   helper.make_tensor_value_info("i", TensorProto.INT64, [3, 2])]
    if op == "ScatterElements":
        value_infos.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, [3, 2]))
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], axis=0)], "g", value_infos,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    exe = hcompile.load(hcompile.compile(model))
    feeds = {"x": np.ones((3, 2), np.float32),
             "i": np.array([[0, 10**9], [-(10**9), 2], [1, 5]], np.int64)}
    if op == "ScatterElements":
        feeds["u"] = np.full((3, 2), 7, np.float32)
    y = exe.run(feeds)["y"]
    assert y.shape == (3, 2) and np.isfinite(y).all()

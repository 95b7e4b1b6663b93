"""``Executor.run``'s direct path (one partition, no sharding): same results, same checks,
same fallback behaviour as the generic path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import hcompile
from hcompile.errors import DeviceError, InputError
from hcompile.runtime.inputs import check_inputs
from tests.runtime_models import diamond, sleep_artifact

X = np.arange(4, dtype=np.float32)


@pytest.fixture(scope="module")
def linear():
    """y = x @ W + b (one CPU partition of real TVM code), with its weights."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((24, 20)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 20])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return hcompile.load(hcompile.compile(model)), w, b


def _variants(x: np.ndarray) -> dict[str, np.ndarray]:
    """``x`` as arrays TVM cannot take in place: misaligned, non-contiguous, read-only."""
    raw = np.empty(x.size + 1, dtype=x.dtype)
    misaligned = raw[1:].reshape(x.shape)  # 4 bytes past numpy's (>= 16-byte) alignment
    misaligned[...] = x
    transposed = np.asfortranarray(x)
    readonly = x.copy()
    readonly.flags.writeable = False
    return {"misaligned": misaligned, "fortran": transposed, "readonly": readonly, "plain": x}


def test_single_partition_uses_the_direct_path_with_every_kind_of_input(linear):
    exe, w, b = linear
    assert exe._direct is not None
    x = np.random.default_rng(1).standard_normal((3, 24)).astype(np.float32)
    expected = x @ w + b
    for label, value in _variants(x).items():
        out = exe.run({"x": value})
        np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-5, err_msg=label)
        np.testing.assert_array_equal(value, x)  # the caller's array is left alone


def test_outputs_are_fresh_arrays(linear):
    exe, _, _ = linear
    x = np.ones((3, 24), np.float32)
    first = exe.run({"x": x})["y"]
    kept = first.copy()
    first[...] = 123.0  # writing to one result must not change the next
    second = exe.run({"x": x})["y"]
    assert first.flags.writeable and first.flags.owndata
    np.testing.assert_array_equal(second, kept)


@pytest.mark.parametrize("given", [
    {"x": np.ones((3, 24), np.float64)},
    {"x": np.ones((3, 25), np.float32)},
    {"x": np.ones((3, 24), np.float32), "z": np.ones(1)},
    {},
    {"x": [[1.0] * 24] * 3},
    {"x": np.ones((3, 24), np.dtype(">f4"))},
])
def test_bad_inputs_get_the_generic_messages(linear, given):
    exe, _, _ = linear
    with pytest.raises(InputError) as expected:
        check_inputs(exe.inputs, given)
    with pytest.raises(InputError) as got:
        exe.run(given)
    assert str(got.value) == str(expected.value)


def test_not_a_mapping_is_an_input_error(linear):
    exe, _, _ = linear
    with pytest.raises(InputError, match="mapping"):
        exe.run([np.ones((3, 24), np.float32)])  # type: ignore[arg-type]


def test_several_partitions_or_a_trace_take_the_generic_path():
    assert hcompile.load(diamond(sleep=0.0))._direct is None


def test_direct_path_falls_back_once_and_strict_raises(caplog):
    art = sleep_artifact([("fpga", ["x"], ["y"], 0.0, 2.0)], failing=[0])
    exe = hcompile.load(art)
    assert exe._direct is not None
    with caplog.at_level(logging.WARNING, logger="hcompile"):
        outs = [exe.run({"x": X})["y"] for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out, X + 2)
    warnings = [r for r in caplog.records if "runs on its CPU fallback" in r.getMessage()]
    assert len(warnings) == 1 and exe.partitions[0].fallback
    with pytest.raises(DeviceError, match="CPU fallback"):
        hcompile.load(art, strict=True).run({"x": X})


def test_direct_path_without_fallback_raises_every_time():
    exe = hcompile.load(sleep_artifact([("cpu", ["x"], ["y"], 0.0, 1.0)], fallback=False,
                                       failing=[0]))
    for _ in range(2):
        with pytest.raises(DeviceError, match="test failure"):
            exe.run({"x": X})


def test_fault_injection_reaches_the_direct_path(monkeypatch):
    monkeypatch.setenv("HCOMPILE_FAULT_INJECT", "fpga")
    exe = hcompile.load(sleep_artifact([("fpga", ["x"], ["y"], 0.0, 1.0)]))
    np.testing.assert_array_equal(exe.run({"x": X})["y"], X + 1)  # the CPU fallback's result
    assert exe.partitions[0].fallback

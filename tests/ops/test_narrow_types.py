"""Narrow element types end to end (hcompile.ops.narrow_types): bfloat16, float8, float4,
int4/uint4/int2/uint2 through import, lowering, TVM code, artifact and runtime.

The oracle is ONNX's reference implementation (``onnx.reference``, itself ml_dtypes); results
must match it bit for bit (NaN payloads aside) and come back with the ml_dtypes dtype.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import hcompile
from hcompile.errors import HcompileError, InputError
from hcompile.ir.types import NARROW_STORAGE, storage_dtype

OPSET = 25

#: ONNX element type of each narrow dtype
ONNX_TYPES = {
    "bfloat16": TensorProto.BFLOAT16, "float8_e4m3fn": TensorProto.FLOAT8E4M3FN,
    "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ, "float8_e5m2": TensorProto.FLOAT8E5M2,
    "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ, "float8_e8m0fnu": TensorProto.FLOAT8E8M0,
    "float4_e2m1fn": TensorProto.FLOAT4E2M1, "int4": TensorProto.INT4,
    "uint4": TensorProto.UINT4, "int2": TensorProto.INT2, "uint2": TensorProto.UINT2,
}  # fmt: skip
#: bits of each sub-byte type (the rest are whole bytes)
SUB_BYTE = {"float4_e2m1fn": 4, "int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def _edge_values(dtype: str) -> np.ndarray:
    """float32 values that probe ``dtype``'s encoder: specials, its largest finite value and
    just past it, its smallest subnormal and half of it, halfway cases (ties to even)."""
    base = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 1.5, 2.5, 3.5, -2.5, 1e30,
            -1e30, 1e-30, 3.0e38, 1e-45, 7.0, 8.5, -8.5, 100.0, -100.0, 1e10]
    if dtype in ("int4", "uint4", "int2", "uint2"):
        return np.array(base + list(np.arange(-20, 20, 0.75)), np.float32)
    info = ml_dtypes.finfo(dtype)
    top, tiny = float(info.max), float(info.smallest_subnormal)
    eps = float(info.eps)
    edges = [top, -top, top * (1 + eps / 4), top * (1 + eps / 2), top * (1 + eps), tiny,
             tiny / 2, tiny * 0.75, tiny * 1.5, tiny * 2.5, float(info.smallest_normal),
             1 + eps / 2, 1 + eps * 1.5, -(1 + eps / 2)]
    rng = np.random.default_rng(1)
    spread = rng.standard_normal(400) * np.exp2(rng.integers(-20, 20, 400))
    with np.errstate(over="ignore"):  # bfloat16's max * (1 + eps) is past float32's range
        return np.array(base + edges + list(spread), np.float32)


def _all_bits(dtype: str) -> np.ndarray:
    width = SUB_BYTE.get(dtype, 8 * np.dtype(storage_dtype(dtype)).itemsize)
    return np.arange(2**width, dtype=storage_dtype(dtype)).view(dtype)


def _cast_model(dtype: str, n_float: int, n_bits: int, extra: list[dict]) -> onnx.ModelProto:
    """x (float32) -> one Cast to ``dtype`` per attribute set in ``extra``; b (``dtype``) ->
    float32 and float16."""
    t = ONNX_TYPES[dtype]
    nodes = [helper.make_node("Cast", ["x"], [f"y{i}"], to=t, **attrs)
             for i, attrs in enumerate(extra)]
    nodes += [helper.make_node("Cast", ["b"], ["f32"], to=TensorProto.FLOAT),
              helper.make_node("Cast", ["b"], ["f16"], to=TensorProto.FLOAT16)]
    outputs = [helper.make_tensor_value_info(f"y{i}", t, [n_float]) for i in range(len(extra))]
    outputs += [helper.make_tensor_value_info("f32", TensorProto.FLOAT, [n_bits]),
                helper.make_tensor_value_info("f16", TensorProto.FLOAT16, [n_bits])]
    graph = helper.make_graph(nodes, "casts", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [n_float]),
        helper.make_tensor_value_info("b", t, [n_bits])], outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    exe = hcompile.load(hcompile.compile(model))
    got = exe.run(feeds)
    want = ReferenceEvaluator(model).run(None, feeds)
    return [got[o.name] for o in model.graph.output], list(want)


def _assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Same dtype, and the same bits except that any NaN matches any NaN."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, what
    with np.errstate(invalid="ignore"):
        wide_got, wide_want = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(wide_got) & np.isnan(wide_want)
    storage = NARROW_STORAGE.get(got.dtype.name, got.dtype.name)
    same = got.view(storage) == want.view(storage) if storage != got.dtype.name else \
        (wide_got == wide_want)
    bad = ~(same | both_nan)
    assert not bad.any(), (f"{what}: {int(bad.sum())} differ, e.g. got {got[bad][:6]} want "
                           f"{want[bad][:6]}")


FLOAT8 = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"]


@pytest.mark.parametrize("dtype", [*FLOAT8, "bfloat16", "float4_e2m1fn", "int4", "uint4",
                                   "int2", "uint2"])
def test_cast_matches_reference(dtype: str) -> None:
    x, bits = _edge_values(dtype), _all_bits(dtype)
    # saturate only means something for float8; the others ignore it (both are checked)
    extra = [{"saturate": 1}, {"saturate": 0}]
    got, want = _run_both(_cast_model(dtype, x.size, bits.size, extra), {"x": x, "b": bits})
    for name, g, w in zip(["saturate=1", "saturate=0", "decode f32", "decode f16"], got, want,
                          strict=True):
        _assert_same(g, w, f"{dtype} {name}")


def test_float8_saturate_modes_differ() -> None:
    """The two saturate modes give what ONNX specifies at the edges, not just the same as the
    reference: max finite (saturate=1) and inf / NaN (saturate=0) for 1e6 and inf."""
    x = np.array([1e6, -np.inf, 470.0, np.nan], np.float32)
    model = _cast_model("float8_e4m3fn", 4, 1, [{"saturate": 1}, {"saturate": 0}])
    got, _ = _run_both(model, {"x": x, "b": np.zeros(1, ml_dtypes.float8_e4m3fn)})
    assert got[0].astype(np.float32)[:3].tolist() == [448.0, -448.0, 448.0]
    assert np.isnan(got[0].astype(np.float32)[3])
    assert np.isnan(got[1].astype(np.float32)).all()  # e4m3fn has no inf: overflow is NaN
    model = _cast_model("float8_e5m2", 4, 1, [{"saturate": 1}, {"saturate": 0}])
    got, _ = _run_both(model, {"x": x, "b": np.zeros(1, ml_dtypes.float8_e5m2)})
    assert got[0].astype(np.float32)[:3].tolist() == [57344.0, -57344.0, 448.0]
    assert got[1].astype(np.float32)[:2].tolist() == [np.inf, -np.inf]


def test_cast_e8m0_round_modes() -> None:
    x = np.concatenate([_edge_values("float8_e5m2"),
                        np.array([3.0, 1.25, 1.75, 6.0, 2.0**127 * 1.5, 2.0**-127, 1e-40, -3.0],
                                 np.float32)])
    extra = [{"saturate": s, "round_mode": m} for s in (0, 1) for m in ("up", "nearest", "down")]
    got, want = _run_both(_cast_model("float8_e8m0fnu", x.size, 256, extra),
                          {"x": x, "b": _all_bits("float8_e8m0fnu")})
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        _assert_same(g, w, f"e8m0 output {index}")


def test_cast_between_narrow_types() -> None:
    """Narrow to narrow (float8 -> int4, bfloat16 -> float8) goes through the wide type."""
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["a"], ["i4"], to=TensorProto.INT4),
         helper.make_node("Cast", ["a"], ["e5"], to=TensorProto.FLOAT8E5M2, saturate=0),
         helper.make_node("Cast", ["i"], ["bf"], to=TensorProto.BFLOAT16)], "g",
        [helper.make_tensor_value_info("a", TensorProto.BFLOAT16, [256]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [5])],
        [helper.make_tensor_value_info("i4", TensorProto.INT4, [256]),
         helper.make_tensor_value_info("e5", TensorProto.FLOAT8E5M2, [256]),
         helper.make_tensor_value_info("bf", TensorProto.BFLOAT16, [5])]),
        opset_imports=[helper.make_opsetid("", OPSET)])
    a = np.linspace(-20, 20, 256).astype(ml_dtypes.bfloat16)
    i = np.array([-(2**40) - 3, -7, 0, 257, 2**33 + 1], np.int64)
    got, want = _run_both(model, {"a": a, "i": i})
    for name, g, w in zip(["int4", "e5m2", "bf16"], got, want, strict=True):
        _assert_same(g, w, name)


@pytest.mark.parametrize(("dtype", "saturate"), [("float8_e4m3fn", 1), ("float8_e5m2", 0),
                                                 ("int4", 1), ("uint2", 1)])
def test_quantize_dequantize(dtype: str, saturate: int) -> None:
    t = ONNX_TYPES[dtype]
    # no inf: the reference's rint(inf).astype(int32) is undefined (x86 gives INT_MIN)
    x = np.array([[0.0, 1.7, -3.2, 900.0, -1e5, 1e9], [0.3, 2.5, -2.5, 7.0, -9.0, 1.1]],
                 np.float32)
    zero = np.zeros(2, dtype) if dtype.startswith("float8") else np.array([1, 0], dtype)
    scale = np.array([0.5, 2.0], np.float32)
    attrs = {"saturate": saturate} if dtype.startswith("float8") else {}
    model = helper.make_model(helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0, **attrs),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], axis=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("q", t, [2, 6]),
         helper.make_tensor_value_info("d", TensorProto.FLOAT, [2, 6])],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")]),
        opset_imports=[helper.make_opsetid("", OPSET)])
    got, want = _run_both(model, {"x": x})
    _assert_same(got[0], want[0], f"quantize {dtype}")
    _assert_same(got[1], want[1], f"dequantize {dtype}")


def test_other_ops_compute_wide_and_move_bits() -> None:
    """bfloat16 arithmetic rounds per op like the reference, also with a large bfloat16
    constant (an artifact weight); a float8 Transpose moves the bits, a float8 Pad computes
    on decoded values and encodes them back exactly."""
    w = np.linspace(-300, 300, 200).astype(ml_dtypes.bfloat16)
    f8 = TensorProto.FLOAT8E4M3FN
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Mul", ["a", "a"], ["sq"]),
         helper.make_node("Relu", ["sq"], ["r"]),
         helper.make_node("Add", ["a", "w"], ["aw"]),
         helper.make_node("Transpose", ["f"], ["ft"], perm=[1, 0]),
         helper.make_node("Pad", ["f", "pads", "v"], ["fp"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.BFLOAT16, [200]),
         helper.make_tensor_value_info("f", f8, [2, 128])],
        [helper.make_tensor_value_info("r", TensorProto.BFLOAT16, [200]),
         helper.make_tensor_value_info("aw", TensorProto.BFLOAT16, [200]),
         helper.make_tensor_value_info("ft", f8, [128, 2]),
         helper.make_tensor_value_info("fp", f8, [2, 131])],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.array([0, 1, 0, 2], np.int64), "pads"),
         numpy_helper.from_array(np.array(-1.5, ml_dtypes.float8_e4m3fn), "v")]),
        opset_imports=[helper.make_opsetid("", OPSET)])
    a = np.linspace(-3.3, 3.3, 200).astype(ml_dtypes.bfloat16)
    f = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).reshape(2, 128)
    got, want = _run_both(model, {"a": a, "f": f})
    for name, g, wnt in zip(["bf16 mul relu", "bf16 add weight", "f8 transpose", "f8 pad"],
                            got, want, strict=True):
        _assert_same(g, wnt, name)


def _identity_model() -> onnx.ModelProto:
    t = TensorProto.FLOAT8E5M2FNUZ
    return helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", t, [3, 4])],
        [helper.make_tensor_value_info("y", t, [3, 4])]),
        opset_imports=[helper.make_opsetid("", OPSET)])


def test_runtime_round_trip_from_file(tmp_path: Path) -> None:
    """A saved artifact declares the real dtype and gives back ml_dtypes arrays."""
    path = tmp_path / "f8.hca"
    hcompile.compile(_identity_model()).save(path)
    exe = hcompile.load(path)
    assert [s.dtype for s in (*exe.inputs, *exe.outputs)] == ["float8_e5m2fnuz"] * 2
    x = np.arange(12, dtype=np.uint8).view(ml_dtypes.float8_e5m2fnuz).reshape(3, 4) * 3
    y = exe.run({"x": x})["y"]
    assert y.dtype == np.dtype(ml_dtypes.float8_e5m2fnuz)
    np.testing.assert_array_equal(y.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("wrong", [np.uint8, np.float32, ml_dtypes.float8_e5m2])
def test_runtime_rejects_wrong_input_dtype(wrong: type) -> None:
    exe = hcompile.load(hcompile.compile(_identity_model()))
    with pytest.raises(InputError) as err:
        exe.run({"x": np.zeros((3, 4), wrong)})
    assert isinstance(err.value, HcompileError)
    assert "expected float8_e5m2fnuz" in str(err.value)
    assert "astype(ml_dtypes.float8_e5m2fnuz)" in str(err.value)


def test_every_type_on_opencl() -> None:
    """The codecs are plain integer TIR, so OpenCL (PoCL here) runs them too: every narrow
    type, there and back, on the ``fpga`` target, against the reference."""
    nodes, outputs = [], []
    for dtype, t in ONNX_TYPES.items():
        nodes += [helper.make_node("Cast", ["x"], [dtype], to=t),
                  helper.make_node("Cast", [dtype], [f"{dtype}_back"], to=TensorProto.FLOAT)]
        outputs += [helper.make_tensor_value_info(dtype, t, [64]),
                    helper.make_tensor_value_info(f"{dtype}_back", TensorProto.FLOAT, [64])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])], outputs),
        opset_imports=[helper.make_opsetid("", OPSET)])
    x = np.concatenate([_edge_values("float8_e4m3fn")[:32],
                        np.linspace(-40, 40, 32, dtype=np.float32)])
    artifact = hcompile.compile(model, targets=["fpga"], place=["*=fpga"])
    assert [p["target"] for p in artifact.manifest["partitions"]] == ["fpga"]
    exe = hcompile.load(artifact)
    assert [(p.runs_on, p.fallback) for p in exe.partitions] == [("fpga", False)]  # PoCL
    got = exe.run({"x": x})
    want = ReferenceEvaluator(model).run(None, {"x": x})
    for out, w in zip(model.graph.output, want, strict=True):
        _assert_same(got[out.name], w, f"opencl {out.name}")

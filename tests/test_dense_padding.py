"""Matmuls with weights get whole vectors of columns (zero padding) on the CPU; results are
unchanged (checked against ONNX Runtime) and the padding is done once, at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper

import hcompile
from hcompile.targets.llvm_cpu.dense_padding import PadDenseColumns, padded_columns
from hcompile.targets.llvm_cpu.layout import layout_passes
from hcompile.targets.llvm_cpu.schedules import CPUFeatures
from tests.conftest import ort_run

LANES = 16


@pytest.mark.parametrize(("columns", "padded"), [
    (100, 112), (1000, 1008), (84, 96), (120, 128),  # up to 25% more: padded
    (10, 10), (16, 16), (32, 32),  # one vector or less, or whole vectors: unchanged
    (20, 20), (17, 17),  # 32 columns would be 60% / 88% more work
])
def test_padded_columns(columns: int, padded: int):
    assert padded_columns(columns, LANES) == padded


def _model(path: Path, nodes: list, outputs: list[tuple[str, int]], rows: int,
           hidden: int = 100, out_cols: int = 10) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("W1", rng.standard_normal((64, hidden)) * 0.2), ("b1", rng.standard_normal(hidden)),
        ("W2", rng.standard_normal((hidden, out_cols)) * 0.2),
        ("b2", rng.standard_normal(out_cols))]]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"]),
         helper.make_node("Add", ["h", "b1"], ["hb"]), *nodes], "pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, 64])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [rows, cols]) for o, cols in outputs],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


#: name -> (nodes after x @ W1 + b1, outputs): each takes the padded tensor another way
CASES = {
    "relu then matmul": ([helper.make_node("Relu", ["hb"], ["r"]),
                          helper.make_node("MatMul", ["r", "W2"], ["y0"]),
                          helper.make_node("Add", ["y0", "b2"], ["y1"]),
                          helper.make_node("Softmax", ["y1"], ["y"], axis=1)], [("y", 10)]),
    "sigmoid then matmul": ([helper.make_node("Sigmoid", ["hb"], ["s"]),  # pads become 0.5
                             helper.make_node("MatMul", ["s", "W2"], ["y"])], [("y", 10)]),
    "padded tensor as output": ([helper.make_node("Relu", ["hb"], ["y"])], [("y", 100)]),
    "softmax and matmul read it": ([helper.make_node("Softmax", ["hb"], ["s"], axis=1),
                                    helper.make_node("MatMul", ["hb", "W2"], ["m"])],
                                   [("s", 100), ("m", 10)]),
    "divided by itself": ([helper.make_node("Div", ["hb", "hb"], ["y"])], [("y", 100)]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("rows", [16, 1])
def test_results_match_onnxruntime(tmp_path: Path, case: str, rows: int):
    nodes, outputs = CASES[case]
    model = _model(tmp_path / "m.onnx", nodes, outputs, rows)
    x = np.random.default_rng(1).standard_normal((rows, 64)).astype(np.float32)
    got = hcompile.load(hcompile.compile(model)).run({"x": x})
    for (name, _), want in zip(outputs, ort_run(model, {"x": x}), strict=True):
        assert got[name].shape == want.shape
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-5)


def _lowered(model: Path) -> tvm.IRModule:
    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, run_pipeline
    from hcompile.plan import build_partitions, subgraph
    from hcompile.targets.lowering import lower_graph, partition_params

    graph, _ = import_model(model, None)
    run_pipeline(graph, PassOptions(targets=["cpu"]))
    (part,) = build_partitions(graph)
    sub = subgraph(graph, part)
    return lower_graph(sub, partition_params(sub))


def test_weights_are_padded_once_at_load_and_kept_through_relu(tmp_path: Path):
    nodes, outputs = CASES["relu then matmul"]
    # 16 fp32 lanes (AVX-512) whatever this CPU has: the structure is what is checked here
    passes = [PadDenseColumns(LANES), tvm.relax.transform.LiftTransformParams()]
    module = tvm.transform.Sequential(passes)(
        _lowered(_model(tmp_path / "m.onnx", nodes, outputs, 16)))
    main, lifted = module["main"].script(), module["main_transform_params"].script()
    assert "R.nn.pad" not in main and "strided_slice" not in main
    assert lifted.count("R.nn.pad") == 3  # W1's columns, b1, W2's rows
    assert "R.Tensor((16, 112)" in main  # the hidden layer in whole vectors
    assert "R.Tensor((112, 10)" in main  # W2 with zero rows takes it as is


def test_a_padded_tensor_is_sliced_once_for_other_consumers(tmp_path: Path):
    nodes, outputs = CASES["softmax and matmul read it"]
    module = PadDenseColumns(LANES)(_lowered(_model(tmp_path / "m.onnx", nodes, outputs, 16)))
    main = module["main"].script()
    assert main.count("R.strided_slice") == 1  # for Softmax; the matmul takes it padded


def test_one_row_is_not_padded(tmp_path: Path):
    nodes, outputs = CASES["relu then matmul"]
    lowered = _lowered(_model(tmp_path / "m.onnx", nodes, outputs, 1))
    assert "R.nn.pad" not in PadDenseColumns(LANES)(lowered).script()


def test_the_cpu_pipeline_pads(tmp_path: Path):
    """layout_passes includes the padding wherever the CPU has vectors to fill."""
    from hcompile.targets.llvm_cpu import LLVMCPUTarget

    features = CPUFeatures.of(LLVMCPUTarget().tvm_target())
    names = [p.info.name for p in layout_passes(features)]
    assert features.lanes(32) < 4 or "hcompile.PadDenseColumns" in names

"""The importer: static shapes, constant folding, and clear errors for bad models."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hcompile.errors import (
    DynamicShapeError,
    ModelError,
    ShapeError,
    UnsupportedOpError,
    UsageError,
)
from hcompile.frontend import import_model, parse_input_shape


def _model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_malformed_bytes_file(tmp_path: Path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07this is not protobuf\xff\xff\xff")
    with pytest.raises(ModelError, match="not a valid ONNX file"):
        import_model(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        import_model(tmp_path / "nope.onnx")


def test_checker_rejects_dangling_input():
    model = _model([helper.make_node("Relu", ["ghost"], ["y"])], [_vi("x", [1, 4])],
                   [_vi("y", [1, 4])])
    with pytest.raises(ModelError, match="checker rejected"):
        import_model(model)


def test_symbolic_batch_defaults_to_one(caplog: pytest.LogCaptureFixture):
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", 4])],
                   [_vi("y", ["N", 4])])
    with caplog.at_level(logging.INFO, logger="hcompile"):
        graph, _ = import_model(model)
    assert graph.inputs["x"].shape == (1, 4)
    assert graph.nodes[0].output_types[0].shape == (1, 4)
    assert "symbolic batch dim 'N' set to 1" in caplog.text


def test_symbolic_non_batch_dim_is_an_error_naming_input_and_flag():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", "features"])],
                   [_vi("y", ["N", "features"])])
    with pytest.raises(ShapeError) as info:
        import_model(model)
    text = str(info.value)
    assert "input 'x'" in text and "'features'" in text and "--input-shape x=" in text


def test_input_shape_override_and_errors():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", "F"])],
                   [_vi("y", ["N", "F"])])
    graph, _ = import_model(model, {"x": (3, 5)})
    assert graph.inputs["x"].shape == (3, 5)
    with pytest.raises(UsageError, match="unknown input"):
        import_model(model, {"z": (3, 5)})
    with pytest.raises(ShapeError, match="rank 3"):
        import_model(model, {"x": (3, 5, 1)})


@pytest.mark.parametrize("spec, expected", [("x=1,784", ("x", (1, 784))), ("a=b=2", ("a=b", (2,))),
                                            ("s=", ("s", ()))])
def test_parse_input_shape(spec, expected):
    assert parse_input_shape(spec) == expected


@pytest.mark.parametrize("spec", ["x", "=1,2", "x=1,a", "x=-1"])
def test_parse_input_shape_rejects(spec):
    with pytest.raises(UsageError):
        parse_input_shape(spec)


def test_shape_subgraph_is_folded():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch exports flatten()."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    model = _model(nodes, [_vi("x", ["N", 2, 3])], [_vi("y", ["N", 6])], inits)
    graph, _ = import_model(model, {"x": (4, 2, 3)})
    assert [n.op for n in graph.nodes] == ["Reshape"]
    assert graph.constants[graph.nodes[0].inputs[1]].tolist() == [4, -1]
    assert graph.nodes[0].output_types[0].shape == (4, 6)


def test_constant_if_is_inlined():
    then_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                                   [_vi("t", [2])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                   [_vi("e", [2])])
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ReduceSum", ["s"], ["n"], keepdims=0),
             helper.make_node("Greater", ["n", "one"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_graph,
                              else_branch=else_graph)]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one")]
    graph, _ = import_model(_model(nodes, [_vi("x", [2])], [_vi("y", [2])], inits))
    assert [n.op for n in graph.nodes] == ["Relu", "Identity"]
    assert graph.nodes[-1].outputs == ["y"]


def test_every_unsupported_op_is_listed_with_node_names():
    nodes = [helper.make_node("Frobnicate", ["x"], ["a"], name="frob1", domain="com.example"),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Frobnicate", ["b"], ["c"], name="frob2", domain="com.example"),
             helper.make_node("StringNormalizer", ["s"], ["t"], name="strnorm")]
    model = _model(nodes, [_vi("x", [2]), _vi("s", [2], TensorProto.STRING)],
                   [_vi("c", [2]), _vi("t", [2], TensorProto.STRING)], domains=["com.example"])
    onnx.checker.check_model(model)
    with pytest.raises(ModelError) as info:
        import_model(model)
    # The string input is rejected up front, naming it; without it both custom nodes are listed.
    assert "input 's': element type STRING is not supported" in str(info.value)
    model = _model(nodes[:3], [_vi("x", [2])], [_vi("c", [2])], domains=["com.example"])
    with pytest.raises(UnsupportedOpError) as info:
        import_model(model)
    text = str(info.value)
    assert "com.example::Frobnicate" in text and "frob1" in text and "frob2" in text


def test_nonzero_on_data_is_dynamic_but_folds_on_constants():
    model = _model([helper.make_node("NonZero", ["x"], ["y"])], [_vi("x", [4])],
                   [_vi("y", [1, None], TensorProto.INT64)])
    with pytest.raises(DynamicShapeError, match="dynamic output size"):
        import_model(model)
    nodes = [helper.make_node("NonZero", ["c"], ["idx"]),
             helper.make_node("Cast", ["idx"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "f"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0, 3, 0, 5], np.float32), "c")]
    graph, _ = import_model(_model(nodes, [_vi("x", [1, 2])], [_vi("y", [1, 2])], inits))
    assert [n.op for n in graph.nodes] == ["Add"]
    assert graph.constants[graph.nodes[0].inputs[1]].tolist() == [[1.0, 3.0]]


def test_external_data_is_loaded(tmp_path: Path):
    weight = np.arange(4096, dtype=np.float32).reshape(64, 64)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", [1, 64])],
                   [_vi("y", [1, 64])], [numpy_helper.from_array(weight, "w")])
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="ext.bin",
                    size_threshold=0)
    assert (tmp_path / "ext.bin").exists()
    graph, _ = import_model(path)
    np.testing.assert_array_equal(graph.constants["w"], weight)


def test_old_opset_is_upgraded():
    nodes = [helper.make_node("Unsqueeze", ["x"], ["y"], axes=[0])]  # axes attr: opset < 13
    graph, _ = import_model(_model(nodes, [_vi("x", [3])], [_vi("y", [1, 3])], opset=9))
    assert graph.opsets[""] == 13
    assert graph.nodes[0].op == "Unsqueeze" and graph.nodes[0].opset == 13
    assert graph.constants[graph.nodes[0].inputs[1]].tolist() == [0]


def test_zoo_models_import_with_static_shapes(zoo_path):
    for name in ("resnet18", "transformer", "lstm"):
        graph, _ = import_model(zoo_path(name))
        assert not {"Shape", "Constant", "ConstantOfShape"} & set(graph.op_counts())
        for ttype in graph.tensor_types().values():
            assert all(isinstance(d, int) and d >= 0 for d in ttype.shape)

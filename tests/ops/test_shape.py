"""Reshape-like, copy and generator ops against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .harness import Const, check_graph, check_node, node, rand

# The importer folds ops whose result depends only on shapes and constants, so the public API
# never reaches their lowerings: test those through the lowering path directly.
FOLDED = "lowering"


def _i64(*values: int) -> Const:
    return Const(np.array(values, np.int64))


@pytest.mark.parametrize(
    ("shape", "allowzero"),
    [((4, 6), 0), ((-1,), 0), ((0, -1), 0), ((2, 0, 2, -1), 0), ((3, 2, 4), 0), ((1, -1, 1), 1)],
)
def test_reshape(shape, allowzero):
    check_node("Reshape", [rand(2, 3, 4), _i64(*shape)], {"allowzero": allowzero})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis):
    check_node("Flatten", [rand(2, 3, 4)], {"axis": axis} if axis != 1 else {})


@pytest.mark.parametrize("axes", [None, [0], [-1], [0, 2]])
def test_squeeze(axes):
    inputs = [rand(1, 3, 1, 2, 1)] + ([] if axes is None else [_i64(*axes)])
    check_node("Squeeze", inputs)


@pytest.mark.parametrize("axes", [[0], [-1], [1, 3], [-1, 0], [4, 0, 2]])
def test_unsqueeze(axes):
    check_node("Unsqueeze", [rand(3, 2), _i64(*axes)])


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1], [1, 0, 2]])
def test_transpose(perm):
    check_node("Transpose", [rand(2, 3, 4)], {} if perm is None else {"perm": perm})


@pytest.mark.parametrize(
    ("shape", "target"), [((3, 1), (2, 3, 4)), ((3, 4), (1, 1)), ((1,), (3,)), ((2, 1, 4), (3, 1))]
)
def test_expand(shape, target):
    check_node("Expand", [rand(*shape), _i64(*target)])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    check_node("DepthToSpace", [rand(2, 8, 3, 2)], {"blocksize": 2, "mode": mode})


def test_space_to_depth():
    check_node("SpaceToDepth", [rand(2, 3, 4, 6)], {"blocksize": 2})


def test_identity_and_dropout():
    x = rand(2, 3)
    nodes = [
        node("Identity", ["x"], "id"),
        node("Dropout", ["x"], ["drop", "mask"]),
        node("Dropout", ["x", "ratio", "training"], "drop2"),
    ]
    inputs = {"x": x, "ratio": Const(np.array(0.3, np.float32)), "training": Const(np.array(False))}
    check_graph(nodes, inputs, ["id", "drop", "mask", "drop2"])


CASTS = [
    ("float32", TensorProto.INT32),
    ("float32", TensorProto.INT64),
    ("float32", TensorProto.UINT8),
    ("float32", TensorProto.BOOL),
    ("float32", TensorProto.FLOAT16),
    ("float32", TensorProto.DOUBLE),
    ("int64", TensorProto.FLOAT),
    ("int64", TensorProto.INT32),
    ("int32", TensorProto.BOOL),
    ("bool", TensorProto.FLOAT),
    ("bool", TensorProto.INT64),
    ("float64", TensorProto.FLOAT),
    ("int32", TensorProto.INT32),
]


@pytest.mark.parametrize(("source", "to"), CASTS)
def test_cast(source, to):
    low, high = (0, 200) if to == TensorProto.UINT8 else (-100, 100)
    x = rand(3, 7, dtype=source, low=low, high=high)
    if source.startswith("float"):
        x[0, :4] = [0.0, 0.5, -0.5, -0.0]  # truncation toward zero, and zero -> False
    check_node("Cast", [x], {"to": to})


def test_cast_like():
    check_node("CastLike", [rand(2, 3, low=-9, high=9), rand(1, dtype="int32")], opset=15)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    a = rand(2, 3, 4)
    shape_b = list(a.shape)
    shape_b[axis] = 2
    check_node("Concat", [a, rand(*shape_b), Const(rand(*shape_b))], {"axis": axis})


def test_concat_single_and_empty():
    check_node("Concat", [rand(2, 3)], {"axis": 0})
    # via="lowering": the runtime cannot take a zero-sized input yet (DLPack alignment error)
    check_node("Concat", [rand(2, 3), rand(2, 0)], {"axis": 1}, via="lowering")


@pytest.mark.parametrize(
    ("axis", "split", "outputs", "opset"),
    [
        (0, None, 3, 13),
        (1, [1, 3], 2, 13),
        (-1, [2, 2, 1], 3, 13),
        (1, None, 4, 13),
        (2, None, 2, 18),  # num_outputs with an uneven last part
        (-1, None, 3, 18),
    ],
)
def test_split(axis, split, outputs, opset):
    x = rand(3, 4, 5)
    inputs = [x] + ([] if split is None else [_i64(*split)])
    attrs = {"axis": axis} | ({"num_outputs": outputs} if opset >= 18 and split is None else {})
    check_node("Split", inputs, attrs, outputs=outputs, opset=opset)


@pytest.mark.parametrize("repeats", [(1, 1), (2, 3), (1, 4), (3, 1)])
def test_tile(repeats):
    check_node("Tile", [rand(2, 3), _i64(*repeats)])


def test_shape_and_size():
    x = rand(2, 3, 4)
    nodes = [
        node("Shape", ["x"], "shape"),
        node("Shape", ["x"], "tail", start=1),
        node("Shape", ["x"], "mid", start=-2, end=-1),
        node("Size", ["x"], "size"),
    ]
    check_graph(nodes, {"x": x}, ["shape", "tail", "mid", "size"], opset=15, via=FOLDED)


def test_constant_of_shape():
    value = helper.make_tensor("value", TensorProto.INT64, [1], [7])
    nodes = [
        node("ConstantOfShape", ["s"], "zeros"),
        node("ConstantOfShape", ["s"], "sevens", value=value),
        node("Add", ["x", "zeros"], "sum"),
    ]
    inputs = {"x": rand(2, 3), "s": _i64(2, 3)}
    check_graph(nodes, inputs, ["sevens", "sum"], via=FOLDED)


@pytest.mark.parametrize(
    ("start", "limit", "delta", "dtype"),
    [
        (0, 5, 1, "int64"),
        (10, 2, -3, "int32"),
        (0.5, 3.0, 0.7, "float32"),
        (3, 3, 1, "int64"),
        (1, 20, 4, "int64"),
    ],
)
def test_range(start, limit, delta, dtype):
    inputs = [Const(np.array(v, dtype)) for v in (start, limit, delta)]
    check_node("Range", inputs, via=FOLDED)


@pytest.mark.parametrize("k", [0, 1, -2])
def test_eye_like(k):
    check_node("EyeLike", [rand(3, 5)], {"k": k})
    check_node("EyeLike", [rand(4, 4)], {"k": k, "dtype": TensorProto.INT32}, via=FOLDED)

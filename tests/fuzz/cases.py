"""Seed models and deterministic case construction for the fuzzer."""

from __future__ import annotations

import functools
import random
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.fuzz.mutators import MUTATORS

ROOT = Path(__file__).resolve().parents[2]
CLASSES = sorted(MUTATORS)
#: Small zoo models (big ones make each case slow) plus hand-built graphs with shape logic.
SEEDS = ["mlp", "lenet5", "lstm", "transformer", "convpool", "shapeops"]


@functools.cache
def seed_model(name: str) -> bytes:
    if name == "convpool":
        return _convpool().SerializeToString()
    if name == "shapeops":
        return _shapeops().SerializeToString()
    path = ROOT / "models" / "onnx" / f"{name}.onnx"
    if not path.exists():
        import sys

        sys.path.insert(0, str(ROOT))
        from models.build import build_model

        build_model(name, path.parent)
    return path.read_bytes()


def make_case(seed: int, index: int, cls: str, seed_name: str) -> bytes:
    rng = random.Random(zlib.crc32(f"{seed}/{index}/{cls}/{seed_name}".encode()))
    model = onnx.ModelProto()
    model.ParseFromString(seed_model(seed_name))
    return MUTATORS[cls](rng, model)


def _convpool() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "convpool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])],
                              [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _shapeops() -> onnx.ModelProto:
    consts = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
              numpy_helper.from_array(np.array([-1], np.int64), "m1"),
              numpy_helper.from_array(np.array([0], np.int64), "ax0"),
              numpy_helper.from_array(np.array([1, 0], np.int64), "idx")]
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
             helper.make_node("Concat", ["b1", "m1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["flat"]),
             helper.make_node("Gather", ["flat", "idx"], ["g"], axis=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "shapeops",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

"""Malformed-model generators for the importer fuzzer, one function per mutation class.

Every mutator takes a seeded ``random.Random`` and a valid seed ModelProto (a copy it may
change) and returns the hostile model as bytes. Deterministic: (class, seed, index) names a case.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Mutator = Callable[[random.Random, onnx.ModelProto], bytes]


def truncated(rng: random.Random, model: onnx.ModelProto) -> bytes:
    data = model.SerializeToString()
    return data[: rng.randrange(0, max(len(data) - 1, 1))]


def byte_flips(rng: random.Random, model: onnx.ModelProto) -> bytes:
    data = bytearray(model.SerializeToString())
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def wrong_dtype(rng: random.Random, model: onnx.ModelProto) -> bytes:
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    target = rng.choice(values)
    target.type.tensor_type.elem_type = rng.choice(
        [0, TensorProto.STRING, TensorProto.INT8, TensorProto.DOUBLE, TensorProto.BOOL,
         TensorProto.COMPLEX64, TensorProto.FLOAT16, 99])
    return model.SerializeToString()


def initializer_dtype(rng: random.Random, model: onnx.ModelProto) -> bytes:
    if model.graph.initializer:
        init = rng.choice(model.graph.initializer)
        init.data_type = rng.choice([0, TensorProto.STRING, TensorProto.INT64, 77])
    return model.SerializeToString()


def cycle(rng: random.Random, model: onnx.ModelProto) -> bytes:
    nodes = model.graph.node
    if len(nodes) >= 2:
        i = rng.randrange(len(nodes) - 1)
        j = rng.randrange(i + 1, len(nodes))
        if nodes[i].input and nodes[j].output:
            nodes[i].input[0] = nodes[j].output[0]
    return model.SerializeToString()


def dangling_name(rng: random.Random, model: onnx.ModelProto) -> bytes:
    node = rng.choice(model.graph.node)
    if node.input:
        node.input[rng.randrange(len(node.input))] = f"ghost_{rng.randrange(1000)}"
    return model.SerializeToString()


def duplicate_name(rng: random.Random, model: onnx.ModelProto) -> bytes:
    nodes = model.graph.node
    if len(nodes) >= 2:
        a, b = rng.sample(range(len(nodes)), 2)
        nodes[b].output[0] = nodes[a].output[0]
    return model.SerializeToString()


def missing_initializer(rng: random.Random, model: onnx.ModelProto) -> bytes:
    if model.graph.initializer:
        del model.graph.initializer[rng.randrange(len(model.graph.initializer))]
    return model.SerializeToString()


def bad_dims(rng: random.Random, model: onnx.ModelProto) -> bytes:
    value = rng.choice(list(model.graph.input))
    dims = value.type.tensor_type.shape.dim
    if dims:
        dim = dims[rng.randrange(len(dims))]
        dim.dim_value = rng.choice([-1, -7, 0, 2**31, 2**40, 3])
    return model.SerializeToString()


def rank_mismatch(rng: random.Random, model: onnx.ModelProto) -> bytes:
    if model.graph.initializer:
        init = rng.choice(model.graph.initializer)
        array = numpy_helper.to_array(init)
        shape = rng.choice([(array.size,), (1, *array.shape), (*array.shape, 1)])
        init.CopyFrom(numpy_helper.from_array(array.reshape(shape), init.name))
    value = rng.choice(list(model.graph.input))
    dims = value.type.tensor_type.shape.dim
    if dims and rng.random() < 0.5:
        dims.add().dim_value = 2
    return model.SerializeToString()


def bad_attribute(rng: random.Random, model: onnx.ModelProto) -> bytes:
    node = rng.choice(model.graph.node)
    choice = rng.randrange(4)
    if choice == 0 and node.attribute:
        attr = rng.choice(node.attribute)
        if attr.ints:
            attr.ints[rng.randrange(len(attr.ints))] = rng.choice([-5, 0, 10**6, -(2**40)])
        elif attr.type == onnx.AttributeProto.INT:
            attr.i = rng.choice([-5, 99, 10**9])
        elif attr.type == onnx.AttributeProto.FLOAT:
            attr.f = rng.choice([float("nan"), -1.0, 1e38])
        else:
            attr.s = b"nonsense"
    elif choice == 1:
        node.attribute.append(helper.make_attribute("axis", rng.choice([-9, 9, 100])))
    elif choice == 2:
        node.attribute.append(helper.make_attribute("bogus_attr", 1))
    else:
        del node.attribute[:]
    return model.SerializeToString()


def unknown_domain(rng: random.Random, model: onnx.ModelProto) -> bytes:
    node = rng.choice(model.graph.node)
    node.domain = rng.choice(["com.example", "ai.unknown", "x" * 300])
    if rng.random() < 0.5:
        model.opset_import.append(helper.make_opsetid(node.domain, 1))
    return model.SerializeToString()


def future_opset(rng: random.Random, model: onnx.ModelProto) -> bytes:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = rng.choice([onnx.defs.onnx_opset_version() + 1, 99, 0, -3])
    if rng.random() < 0.3:
        model.ir_version = rng.choice([99, 0, -1])
    return model.SerializeToString()


def wrong_op_type(rng: random.Random, model: onnx.ModelProto) -> bytes:
    node = rng.choice(model.graph.node)
    node.op_type = rng.choice(["Conv", "MatMul", "Reshape", "Gather", "Softmax", "Concat",
                               "Transpose", "NoSuchOp", "LSTM", "If", "Loop", ""])
    return model.SerializeToString()


def drop_node(rng: random.Random, model: onnx.ModelProto) -> bytes:
    if len(model.graph.node) > 1:
        del model.graph.node[rng.randrange(len(model.graph.node))]
    return model.SerializeToString()


def hostile_values(rng: random.Random, model: onnx.ModelProto) -> bytes:
    """Initializers with NaN/Inf, raw_data of the wrong length, or huge declared dims."""
    if model.graph.initializer:
        init = rng.choice(model.graph.initializer)
        choice = rng.randrange(3)
        if choice == 0:
            array = numpy_helper.to_array(init).copy()
            if array.dtype.kind == "f" and array.size:
                array.reshape(-1)[0] = rng.choice([np.nan, np.inf])
            init.CopyFrom(numpy_helper.from_array(array, init.name))
        elif choice == 1 and init.raw_data:
            init.raw_data = init.raw_data[: max(len(init.raw_data) // 2, 1)]
        else:
            init.dims[:] = [2**20, 2**20]
    return model.SerializeToString()


MUTATORS: dict[str, Mutator] = {
    "truncated": truncated,
    "byte_flips": byte_flips,
    "wrong_dtype": wrong_dtype,
    "initializer_dtype": initializer_dtype,
    "cycle": cycle,
    "dangling_name": dangling_name,
    "duplicate_name": duplicate_name,
    "missing_initializer": missing_initializer,
    "bad_dims": bad_dims,
    "rank_mismatch": rank_mismatch,
    "bad_attribute": bad_attribute,
    "unknown_domain": unknown_domain,
    "future_opset": future_opset,
    "wrong_op_type": wrong_op_type,
    "drop_node": drop_node,
    "hostile_values": hostile_values,
}

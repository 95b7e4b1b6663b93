"""ONNX attributes -> plain Python / numpy values."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hcompile.errors import ModelError


def tensor_value(tensor: onnx.TensorProto, source: str) -> np.ndarray:
    """An initializer or attribute tensor as numpy; ModelError when it is malformed."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as err:  # KeyError for unknown types, ValueError for bad sizes...
        raise ModelError(
            f"tensor '{tensor.name}' cannot be read (data type {tensor.data_type}, dims "
            f"{list(tensor.dims)}): {type(err).__name__}: {err}",
            source=source, hint="re-export the model; the tensor's data is corrupt",
        ) from None


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """Attribute name -> int, float, str, list or np.ndarray (graphs are not kept)."""
    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        attrs[attr.name] = _plain(value)
    return attrs


def _plain(value: Any) -> Any:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def constant_value(node: onnx.NodeProto, name: str, source: str) -> np.ndarray:
    """The tensor a ``Constant`` node produces."""
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if attr.name == "value":
            return numpy_helper.to_array(value)
        if attr.name == "value_float":
            return np.array(value, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(value, dtype=np.float32)
        if attr.name == "value_int":
            return np.array(value, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(value, dtype=np.int64)
        if attr.name == "sparse_value":
            dense = numpy_helper.to_array(value.values)
            indices = numpy_helper.to_array(value.indices)
            out = np.zeros(tuple(value.dims), dtype=dense.dtype)
            out.reshape(-1)[indices.reshape(-1)] = dense.reshape(-1)
            return out
    raise ModelError("Constant node has no value attribute (strings are not supported)",
                     node=name, source=source)


def shape_slice(node: onnx.NodeProto, rank: int) -> tuple[int, int]:
    """``Shape``'s start/end attributes (opset 15) clamped to ``[0, rank]``."""
    attrs = node_attrs(node)
    start = int(attrs.get("start", 0))
    end = int(attrs.get("end", rank))
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, end

"""Expand an operator that ONNX defines by a function (RMSNormalization, Attention, the losses...)
into its function body, so an op hcompile has no lowering for still compiles when every op of
its body does.

The body is the one ONNX itself publishes (``OpSchema.get_function_with_opset_version`` or,
for bodies that depend on attributes and input types, the context-dependent builder), so the
expansion follows the spec by construction.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper

from hcompile.frontend.infer import dtype_to_onnx
from hcompile.ir import TensorType


def function_body(node: onnx.NodeProto, opset: int,
                  input_types: list[TensorType | None]) -> onnx.FunctionProto | None:
    """ONNX's function body for ``node`` at ``opset``, or None when the op has none."""
    try:
        schema: Any = onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError:
        return None
    try:
        if schema.has_function:
            body = schema.get_function_with_opset_version(opset)
            if body is not None:
                return body if isinstance(body, onnx.FunctionProto) else _parse(body)
        if schema.has_context_dependent_function:
            types = [helper.make_tensor_type_proto(dtype_to_onnx(t.dtype), t.shape)
                     if t is not None else onnx.TypeProto() for t in input_types]
            raw = schema.get_context_dependent_function_with_opset_version(
                opset, node.SerializeToString(), [t.SerializeToString() for t in types])
            return _parse(raw) if raw else None
    except Exception:  # the builder rejects this attribute/type combination
        return None
    return None


def _parse(raw: bytes) -> onnx.FunctionProto:
    proto = onnx.FunctionProto()
    proto.ParseFromString(raw)
    return proto


def bind_attributes(inner: onnx.NodeProto, node: onnx.NodeProto,
                    body: onnx.FunctionProto) -> onnx.NodeProto:
    """``inner`` with every attribute reference (``ref_attr_name``) replaced by the calling
    node's attribute, or the function's default, or dropped (the op's own default applies)."""
    if not any(a.ref_attr_name for a in inner.attribute):
        return inner
    given = {a.name: a for a in node.attribute}
    defaults = {a.name: a for a in body.attribute_proto}
    try:
        schema = onnx.defs.get_schema(node.op_type, max(_opsets(body).get("", 1), 1),
                                      node.domain or "")
        for key, attr in schema.attributes.items():
            if attr.default_value.type and key not in defaults:
                defaults[key] = attr.default_value
    except onnx.defs.SchemaError:
        pass
    bound = onnx.NodeProto()
    bound.CopyFrom(inner)
    del bound.attribute[:]
    for attr in inner.attribute:
        if not attr.ref_attr_name:
            bound.attribute.append(attr)
            continue
        source = given.get(attr.ref_attr_name) or defaults.get(attr.ref_attr_name)
        if source is not None:
            copy = onnx.AttributeProto()
            copy.CopyFrom(source)
            copy.name = attr.name
            bound.attribute.append(copy)
    return bound


def _opsets(body: onnx.FunctionProto) -> dict[str, int]:
    return {entry.domain or "": int(entry.version) for entry in body.opset_import}

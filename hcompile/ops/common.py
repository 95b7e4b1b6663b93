"""Helpers shared by the op lowerings: attribute and axis normalisation, constants, errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tvm import relax

from hcompile.errors import UnsupportedOpError

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


def unsupported(
    node: Node, what: str, value: Any = None, *, hint: str | None = None
) -> UnsupportedOpError:
    """The error for an attribute value (or input) hcompile cannot compile for ``node.op``."""
    text = (
        f"{node.op}: {what}" if value is None else f"{node.op}: {what}={value!r} is not supported"
    )
    return UnsupportedOpError(text, node=node.name, hint=hint)


def norm_axis(node: Node, axis: int, rank: int, name: str = "axis") -> int:
    """``axis`` in ``[-rank, rank)`` as a non-negative index; an UnsupportedOpError otherwise."""
    axis = int(axis)
    if not -rank <= axis < rank:
        raise UnsupportedOpError(
            f"{node.op}: {name}={axis} is out of range for rank {rank}", node=node.name
        )
    return axis + rank if axis < 0 else axis


def norm_axes(node: Node, axes: Iterable[int], rank: int, name: str = "axes") -> list[int]:
    """Normalised axes; repeated axes are an error, as in ONNX."""
    out = [norm_axis(node, a, rank, name) for a in axes]
    if len(set(out)) != len(out):
        raise UnsupportedOpError(f"{node.op}: {name}={list(axes)} repeats an axis", node=node.name)
    return out


def ints(value: np.ndarray | Sequence[int] | None) -> list[int] | None:
    """A constant input or attribute as a list of Python ints (None stays None)."""
    if value is None:
        return None
    return [int(v) for v in np.asarray(value).reshape(-1)]


def const_ints(ctx: LowerContext, node: Node, index: int) -> list[int] | None:
    """A static integer input (axes, shape, pads, repeats...) as a list; None when omitted."""
    return ints(ctx.const(node, index))


def const(value: np.ndarray) -> relax.Constant:
    """A Relax constant that keeps ``value``'s dtype.

    ``relax.const`` without an explicit dtype narrows int64 to int32 and float64 to float32.
    """
    value = np.asarray(value)
    return relax.const(value, str(value.dtype))


def scalar(value: Any, dtype: str) -> relax.Constant:
    """A rank-0 constant of ``dtype``."""
    return const(np.array(value, dtype=dtype))


def shape(ctx: LowerContext, node: Node, index: int = 0) -> tuple[int, ...]:
    return ctx.input_type(node, index).shape


def dtype(ctx: LowerContext, node: Node, index: int = 0) -> str:
    return ctx.input_type(node, index).dtype


def out_shape(node: Node, index: int = 0) -> tuple[int, ...]:
    return node.output_types[index].shape


def out_dtype(node: Node, index: int = 0) -> str:
    return node.output_types[index].dtype


def is_float(dtype_name: str) -> bool:
    return dtype_name.startswith(("float", "bfloat"))


def check_choice(node: Node, name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise UnsupportedOpError unless attribute ``name`` has one of the ``allowed`` values."""
    allowed = list(allowed)
    if value not in allowed:
        raise unsupported(node, name, value, hint=f"supported: {', '.join(map(repr, allowed))}")


def attr_str(node: Node, key: str, default: str) -> str:
    """A string attribute (ONNX stores them as bytes)."""
    value = node.attr(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


#: ONNX TensorProto element types -> numpy/ml_dtypes names (strings are not supported).
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
    17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2",
}  # fmt: skip


def onnx_dtype(node: Node, code: Any, name: str = "to") -> str:
    """The numpy name of ONNX element type ``code`` (attribute ``name``)."""
    if int(code) not in ONNX_DTYPES:
        raise unsupported(node, name, int(code), hint="supported: numeric and bool element types")
    return ONNX_DTYPES[int(code)]


def reshape(x: relax.Expr, dims: Sequence[int], dtype_name: str) -> relax.Expr:
    """``relax.op.reshape`` to a static shape; Relax reads a 0 in the target shape as "copy this
    dim", so a tensor with no elements is made afresh instead."""
    if 0 in dims:
        return relax.op.zeros(list(dims), dtype_name)
    return relax.op.reshape(x, list(dims))


def required(node: Node, key: str) -> Any:
    """Attribute ``key``, which the ONNX spec requires; an UnsupportedOpError when it is absent."""
    value = node.attr(key)
    if value is None:
        raise UnsupportedOpError(
            f"{node.op}: the required attribute {key!r} is missing", node=node.name
        )
    return value

"""QuantizeLinear / DequantizeLinear (opset 13: per-tensor or per-axis scale and zero point).

quantize: y = saturate(round_half_even(x / scale) + zero_point), uint8 unless the zero point
says otherwise; dequantize: y = (x - zero_point) * scale. Blocked quantization (opset 21
``block_size``) is not supported. Narrow quantized types (int4/uint4/int2/uint2, float8,
float4) go through hcompile.ops.narrow_types: float8 has no zero point and saturates by the
``saturate`` attribute, float4 rounds and saturates on encoding, as onnx.reference does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ml_dtypes
from tvm import relax

from hcompile.ir.types import is_narrow
from hcompile.ops import narrow_types
from hcompile.ops.common import (
    dtype,
    norm_axis,
    onnx_dtype,
    scalar,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_QUANTIZED = ("uint8", "int8", "uint16", "int16", "int32", "int4", "uint4", "int2", "uint2",
              "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
              "float4_e2m1fn")


@register("QuantizeLinear", since=13)
def lower_quantize(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    _check_block_size(node)
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    _check_wide(node, dt)
    scale = _per_axis(ctx, node, 1)
    target = _quantized_dtype(ctx, node)
    y = relax.op.divide(x, scale)
    if target in narrow_types.FLOAT_FORMATS and target != "float4_e2m1fn":
        # float8: no zero point (the spec requires it to be 0), saturate by attribute
        y = relax.op.astype(y, "float32") if dt != "float32" else y
        return [narrow_types.encode(ctx, y, target, saturate=bool(node.attr("saturate", 1)))]
    zero_point = _per_axis(ctx, node, 2)
    if target == "float4_e2m1fn":  # rounds to nearest even and saturates by itself
        if zero_point is not None:
            y = relax.op.add(y, relax.op.astype(zero_point, dt))
        y = relax.op.astype(y, "float32") if dt != "float32" else y
        return [narrow_types.encode(ctx, y, target)]
    y = relax.op.round(y)
    if zero_point is not None:
        y = relax.op.add(y, relax.op.astype(zero_point, dt))
    info = ml_dtypes.iinfo(target)
    y = relax.op.minimum(relax.op.maximum(y, scalar(info.min, dt)), scalar(info.max, dt))
    if is_narrow(target):  # int4/uint4/int2/uint2: the clamped value, as bits
        return [narrow_types.encode(ctx, relax.op.astype(y, "int32"), target)]
    return [relax.op.astype(y, target)]


@register("DequantizeLinear", since=13)
def lower_dequantize(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    _check_block_size(node)
    out = dtype(ctx, node, 1)  # the scale's type
    _check_wide(node, out)
    x, source = ctx.input(node, 0), dtype(ctx, node)
    if is_narrow(source):
        x = narrow_types.decode(ctx, x, source)
    x = relax.op.astype(x, out)
    zero_point = _per_axis(ctx, node, 2)
    if zero_point is not None:
        x = relax.op.subtract(x, relax.op.astype(zero_point, out))
    return [relax.op.multiply(x, _per_axis(ctx, node, 1))]


def _quantized_dtype(ctx: LowerContext, node: Node) -> str:
    if len(node.inputs) > 2 and node.inputs[2]:
        target = dtype(ctx, node, 2)
    elif node.attr("output_dtype"):
        target = onnx_dtype(node, node.attr("output_dtype"), "output_dtype")
    else:
        target = "uint8"
    if target not in _QUANTIZED:
        raise unsupported(node, "output type", target)
    return target


def _check_wide(node: Node, dt: str) -> None:
    """The float side of a (de)quantization must be a computing type (not bfloat16...)."""
    if is_narrow(dt):
        raise unsupported(node, "float type", dt, hint="float32 or float16 input and scale")


def _per_axis(ctx: LowerContext, node: Node, index: int) -> relax.Expr | None:
    """Scale or zero point, reshaped to broadcast along ``axis`` when it is a 1-D vector."""
    value = ctx.input(node, index)
    if value is None:
        return None
    if is_narrow(dtype(ctx, node, index)):  # a narrow zero point: its value, not its bits
        value = narrow_types.decode(ctx, value, dtype(ctx, node, index))
    dims = shape(ctx, node, index)
    if len(dims) == 0 or (len(dims) == 1 and dims[0] == 1):
        return value
    rank = len(shape(ctx, node, 0))
    axis = norm_axis(node, node.attr("axis", 1), rank)
    broadcast = [dims[0] if i == axis else 1 for i in range(rank)]
    return relax.op.reshape(value, broadcast)


def _check_block_size(node: Node) -> None:
    if int(node.attr("block_size", 0)):
        raise unsupported(node, "block_size", node.attr("block_size"))

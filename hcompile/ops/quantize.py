"""QuantizeLinear / DequantizeLinear (opset 13: per-tensor or per-axis scale and zero point).

quantize: y = saturate(round_half_even(x / scale) + zero_point), uint8 unless the zero point
says otherwise; dequantize: y = (x - zero_point) * scale. Blocked quantization (opset 21
``block_size``) is not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

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


@register("QuantizeLinear", since=13)
def lower_quantize(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    _check_block_size(node)
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    scale = _per_axis(ctx, node, 1)
    target = _quantized_dtype(ctx, node)
    y = relax.op.round(relax.op.divide(x, scale))
    zero_point = _per_axis(ctx, node, 2)
    if zero_point is not None:
        y = relax.op.add(y, relax.op.astype(zero_point, dt))
    info = np.iinfo(target)
    y = relax.op.minimum(relax.op.maximum(y, scalar(info.min, dt)), scalar(info.max, dt))
    return [relax.op.astype(y, target)]


@register("DequantizeLinear", since=13)
def lower_dequantize(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    _check_block_size(node)
    out = dtype(ctx, node, 1)  # the scale's type
    x = relax.op.astype(ctx.input(node, 0), out)
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
    if target not in ("uint8", "int8", "uint16", "int16", "int32"):
        raise unsupported(node, "output type", target)
    return target


def _per_axis(ctx: LowerContext, node: Node, index: int) -> relax.Expr | None:
    """Scale or zero point, reshaped to broadcast along ``axis`` when it is a 1-D vector."""
    value = ctx.input(node, index)
    if value is None:
        return None
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

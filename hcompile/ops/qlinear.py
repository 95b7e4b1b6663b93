"""Integer and quantised-linear ops: MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

All accumulate in int32 on zero-point-shifted operands, as the spec defines. The QLinear ops
then requantise: y = saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zero_point),
computed in float32 (ONNX Runtime's reference kernels do the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import dtype, shape
from hcompile.ops.conv import conv
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


def _shifted(ctx: LowerContext, node: Node, index: int, zp_index: int,
             zp_axis: int | None) -> relax.Expr:
    """Input ``index`` as int32 minus its zero point (scalar, or a vector along ``zp_axis``
    of the input, counted from the end)."""
    x = relax.op.astype(ctx.input(node, index), "int32")
    zero_point = ctx.input(node, zp_index) if zp_index < len(node.inputs) else None
    if zero_point is None:
        return x
    zp = relax.op.astype(zero_point, "int32")
    zp_dims = shape(ctx, node, zp_index)
    if zp_axis is not None and len(zp_dims) == 1 and zp_dims[0] != 1:
        rank = len(shape(ctx, node, index))
        axis = rank + zp_axis
        zp = relax.op.reshape(zp, [zp_dims[0] if i == axis else 1 for i in range(rank)])
    elif zp_dims:
        zp = relax.op.reshape(zp, [])
    return relax.op.subtract(x, zp)


def _requantize(ctx: LowerContext, node: Node, acc: relax.Expr, scale: relax.Expr,
                zp_index: int) -> relax.Expr:
    """int32 accumulator -> the output's 8-bit type, via float32."""
    out = node.output_types[0].dtype
    y = relax.op.round(relax.op.multiply(relax.op.astype(acc, "float32"), scale))
    zero_point = ctx.input(node, zp_index) if zp_index < len(node.inputs) else None
    if zero_point is not None:
        y = relax.op.add(y, relax.op.astype(zero_point, "float32"))
    info = np.iinfo(out)
    y = relax.op.clip(y, float(info.min), float(info.max))
    return relax.op.astype(y, out)


def _as_float(ctx: LowerContext, node: Node, index: int) -> relax.Expr:
    value = ctx.input(node, index)
    return value if dtype(ctx, node, index) == "float32" else relax.op.astype(value, "float32")


@register("MatMulInteger", since=10)
def lower_matmul_integer(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """a_zero_point may be per row of A (axis -2), b_zero_point per column of B (axis -1)."""
    a = _shifted(ctx, node, 0, 2, zp_axis=-2)
    b = _shifted(ctx, node, 1, 3, zp_axis=-1)
    return [relax.op.matmul(a, b, out_dtype="int32")]


@register("ConvInteger", since=10)
def lower_conv_integer(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """w_zero_point may be per output channel."""
    x = _shifted(ctx, node, 0, 2, zp_axis=None)
    w = _shifted(ctx, node, 1, 3, zp_axis=-len(shape(ctx, node, 1)))
    return [conv(ctx, node, x, w, x_index=0, w_index=1, out_dtype="int32")]


@register("QLinearMatMul", since=10)
def lower_qlinear_matmul(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point."""
    a = _shifted(ctx, node, 0, 2, zp_axis=-2)
    b = _shifted(ctx, node, 3, 5, zp_axis=-1)
    acc = relax.op.matmul(a, b, out_dtype="int32")
    a_scale = _vector(ctx, node, 1, len(shape(ctx, node, 0)), -2)
    b_scale = _as_float(ctx, node, 4)
    scale = relax.op.divide(relax.op.multiply(a_scale, b_scale), _as_float(ctx, node, 6))
    return [_requantize(ctx, node, acc, scale, 7)]


@register("QLinearConv", since=10)
def lower_qlinear_conv(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B.
    w_scale / w_zero_point may be per output channel; B is int32, added to the accumulator."""
    rank = len(shape(ctx, node, 0))
    x = _shifted(ctx, node, 0, 2, zp_axis=None)
    w = _shifted(ctx, node, 3, 5, zp_axis=-rank)
    acc = conv(ctx, node, x, w, x_index=0, w_index=3, out_dtype="int32")
    bias = ctx.input(node, 8) if len(node.inputs) > 8 else None
    if bias is not None:
        channels = shape(ctx, node, 8)[0]
        acc = relax.op.add(acc, relax.op.reshape(relax.op.astype(bias, "int32"),
                                                 [1, channels] + [1] * (rank - 2)))
    w_scale = _vector(ctx, node, 4, rank, -(rank - 1))
    scale = relax.op.divide(relax.op.multiply(_as_float(ctx, node, 1), w_scale),
                            _as_float(ctx, node, 6))
    return [_requantize(ctx, node, acc, scale, 7)]


def _vector(ctx: LowerContext, node: Node, index: int, rank: int, axis: int) -> relax.Expr:
    """A scale that is a scalar or a vector along ``axis`` (from the end) of a rank-``rank``
    result, shaped to broadcast."""
    value = _as_float(ctx, node, index)
    dims = shape(ctx, node, index)
    if len(dims) == 1 and dims[0] != 1:
        return relax.op.reshape(value, [dims[0] if i == rank + axis else 1 for i in range(rank)])
    return relax.op.reshape(value, []) if dims else value



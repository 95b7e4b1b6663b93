"""Ops whose result depends only on static shapes or constants: Shape, Size, ConstantOfShape,
Range, EyeLike. The importer usually folds them; these lowerings cover what it leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import const, const_ints, dtype, onnx_dtype, out_dtype, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("Shape", since=13)
def lower_shape(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """The input's static shape as int64, sliced by start/end (opset 15) like Python slices."""
    dims = shape(ctx, node)
    start, end = int(node.attr("start", 0)), node.attr("end")
    picked = dims[start : None if end is None else int(end)]
    return [const(np.array(picked, dtype="int64"))]


@register("Size", since=13)
def lower_size(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [const(np.array(math.prod(shape(ctx, node)), dtype="int64"))]


@register("ConstantOfShape", since=9, static_inputs=(0,))
def lower_constant_of_shape(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = const_ints(ctx, node, 0) or []
    value = node.attr("value")
    fill = (
        np.zeros((), "float32") if value is None else np.asarray(value).reshape(-1)[:1].reshape(())
    )
    return [relax.op.full(dims, const(fill), str(fill.dtype))]


@register("Range", since=11, static_inputs=(0, 1, 2))
def lower_range(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """output[i] = start + i * delta for i < max(ceil((limit - start) / delta), 0)."""
    start, limit, delta = (np.asarray(ctx.const(node, i)).reshape(()) for i in range(3))
    if delta == 0:
        raise unsupported(node, "delta", 0)
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    dt = dtype(ctx, node)
    values = start.astype(dt) + np.arange(count, dtype=dt) * delta.astype(dt)
    return [const(values.astype(dt))]


@register("EyeLike", since=9)
def lower_eye_like(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    if len(dims) != 2:
        raise unsupported(node, f"a rank-{len(dims)} input (EyeLike needs a matrix)")
    code = node.attr("dtype")
    dt = onnx_dtype(node, code, "dtype") if code is not None else out_dtype(node)
    return [relax.op.eye(dims[0], dims[1], int(node.attr("k", 0)), dt)]

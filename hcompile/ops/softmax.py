"""Softmax / LogSoftmax / Hardmax. Opset 13 normalises along one axis; before 13 it flattened to 2-D
(the importer upgrades older models to opset 13, so only the 13 semantics are implemented).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import const, dtype, norm_axis, shape
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register(["Softmax", "LogSoftmax"], since=13)
def lower_softmax(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """float16 is computed in float32 and rounded once (a float16 running sum loses digits;
    numpy and ONNX Runtime accumulate in float32 too)."""
    fn = relax.op.nn.softmax if node.op == "Softmax" else relax.op.nn.log_softmax
    axis = norm_axis(node, node.attr("axis", -1), len(shape(ctx, node)))
    x = ctx.input(node, 0)
    if dtype(ctx, node) == "float16":
        return [relax.op.astype(fn(relax.op.astype(x, "float32"), axis=axis), "float16")]
    return [fn(x, axis=axis)]


@register("Hardmax", since=13)
def lower_hardmax(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """1 at the first maximum along ``axis``, 0 elsewhere."""
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", -1), len(dims))
    index = relax.op.argmax(ctx.input(node, 0), axis=axis, keepdims=True)
    positions = np.arange(dims[axis], dtype="int64").reshape(
        [dims[axis] if i == axis else 1 for i in range(len(dims))]
    )
    hit = relax.op.equal(index, const(positions))
    return [relax.op.astype(hit, dtype(ctx, node))]

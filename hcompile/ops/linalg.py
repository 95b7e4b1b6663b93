"""Det (opset 11): determinant by Gaussian elimination with partial pivoting, unrolled over the
static matrix size (one step per column, each step on the shrinking trailing block).

Computed in float64 whatever the input type: the products of pivots lose precision fast in
float32, and ONNX Runtime's LU (Eigen, float32) is itself only accurate to a few ulps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import const, dtype, is_float, scalar, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_WIDE = "float64"


@register("Det", since=11)
def lower_det(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims, dt = shape(ctx, node), dtype(ctx, node)
    if len(dims) < 2 or dims[-1] != dims[-2] or dims[-1] == 0:
        raise unsupported(node, f"an input of shape {list(dims)} (square matrices expected)")
    if not is_float(dt):
        raise unsupported(node, f"{dt} input")
    size, batch = dims[-1], math.prod(dims[:-2])
    a = relax.op.astype(relax.op.reshape(ctx.input(node, 0), [batch, size, size]), _WIDE)
    det = relax.op.ones([batch], _WIDE)
    for m in range(size, 0, -1):
        a, factor = _eliminate(ctx, a, m)
        det = ctx.emit(relax.op.multiply(det, factor))
    return [relax.op.reshape(relax.op.astype(det, dt), list(dims[:-2]))]


def _eliminate(ctx: LowerContext, a: relax.Expr, m: int) -> tuple[relax.Expr, relax.Expr]:
    """One elimination step on the (batch, m, m) block ``a``: the (batch, m-1, m-1) block left
    and the factor this step contributes to the determinant (pivot, negated on a row swap)."""
    column = relax.op.abs(relax.op.strided_slice(a, axes=[2], begin=[0], end=[1]))  # (b, m, 1)
    pivot_row = relax.op.argmax(relax.op.squeeze(column, [2]), axis=1, keepdims=True)
    rows = const(np.arange(m, dtype="int64").reshape(1, m))
    pick = relax.op.astype(relax.op.equal(rows, pivot_row), _WIDE)  # (b, m) one-hot
    first = const(np.eye(1, m, dtype=_WIDE))  # (1, m): row 0
    # Swap row 0 and the pivot row (a no-op when the pivot is row 0).
    top = relax.op.matmul(relax.op.expand_dims(pick, 1), a)  # (b, 1, m) pivot row
    row0 = relax.op.strided_slice(a, axes=[1], begin=[0], end=[1])
    moved = relax.op.subtract(relax.op.expand_dims(first, 2), relax.op.expand_dims(pick, 2))
    a = ctx.emit(relax.op.add(a, relax.op.multiply(moved, relax.op.subtract(top, row0))))
    swapped = relax.op.not_equal(pivot_row, const(np.zeros((1, 1), "int64")))
    pivot = relax.op.squeeze(relax.op.strided_slice(a, axes=[1, 2], begin=[0, 0], end=[1, 1]),
                             [1, 2])  # (b,)
    factor = relax.op.where(relax.op.squeeze(swapped, [1]), relax.op.negative(pivot), pivot)
    if m == 1:
        return a, factor
    # A zero pivot makes the determinant 0 (factor); divide by 1 instead to stay finite.
    zero = relax.op.equal(pivot, scalar(0.0, _WIDE))
    safe = relax.op.where(zero, scalar(1.0, _WIDE), pivot)
    below = relax.op.strided_slice(a, axes=[1, 2], begin=[1, 0], end=[m, 1])  # (b, m-1, 1)
    ratios = relax.op.divide(below, relax.op.expand_dims(safe, [1, 2]))
    rest_top = relax.op.strided_slice(a, axes=[1, 2], begin=[0, 1], end=[1, m])  # (b, 1, m-1)
    rest = relax.op.strided_slice(a, axes=[1, 2], begin=[1, 1], end=[m, m])
    return ctx.emit(relax.op.subtract(rest, relax.op.multiply(ratios, rest_top))), factor

"""TopK, CumSum, CumProd and Trilu."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import const_ints, norm_axis, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("TopK", since=11, static_inputs=(1,))
def lower_topk(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Values and int64 indices of the k largest (or smallest) along ``axis``, sorted.

    With sorted=0 ONNX leaves the order unspecified; the sorted order is returned then too.
    """
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", -1), len(dims))
    k = (const_ints(ctx, node, 1) or [0])[0]
    if not 0 <= k <= dims[axis]:
        raise unsupported(node, "K", k, hint=f"must be in [0, {dims[axis]}]")
    largest = bool(node.attr("largest", 1))
    both = ctx.emit(relax.op.topk(ctx.input(node, 0), k, axis, "both", largest, "int64"))
    return [relax.TupleGetItem(both, 0), relax.TupleGetItem(both, 1)]


@register("CumSum", since=11, static_inputs=(1,))
def lower_cumsum(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_cumulative(ctx, node, relax.op.cumsum)]


@register("CumProd", since=26, static_inputs=(1,))
def lower_cumprod(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_cumulative(ctx, node, relax.op.cumprod)]


def _cumulative(ctx: LowerContext, node: Node, scan: Callable[..., relax.Expr]) -> relax.Expr:
    """CumSum / CumProd along the constant axis; exclusive and reverse as ONNX defines."""
    dims = shape(ctx, node)
    axis = norm_axis(node, (const_ints(ctx, node, 1) or [0])[0], len(dims))
    exclusive, reverse = bool(node.attr("exclusive", 0)), bool(node.attr("reverse", 0))
    x = ctx.input(node, 0)
    if reverse:
        x = relax.op.flip(x, axis)
    x = scan(x, axis=axis, exclusive=exclusive)
    if reverse:
        x = relax.op.flip(x, axis)
    return x


@register("Trilu", since=14, static_inputs=(1,))
def lower_trilu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Keep the upper (or lower) triangle of the last two axes, shifted by diagonal k."""
    k = (const_ints(ctx, node, 1) or [0])[0]
    x = ctx.input(node, 0)
    return [relax.op.triu(x, k) if int(node.attr("upper", 1)) else relax.op.tril(x, k)]

"""Comparisons, boolean logic and Where (broadcasting; comparison results are bool)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_COMPARE: dict[str, Callable[[relax.Expr, relax.Expr], relax.Expr]] = {
    "Equal": relax.op.equal,
    "Greater": relax.op.greater,
    "Less": relax.op.less,
    "GreaterOrEqual": relax.op.greater_equal,
    "LessOrEqual": relax.op.less_equal,
    "And": relax.op.logical_and,
    "Or": relax.op.logical_or,
    "Xor": relax.op.logical_xor,
}


@register(list(_COMPARE), since=7)
def lower_compare(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_COMPARE[node.op](ctx.input(node, 0), ctx.input(node, 1))]


@register("Not", since=1)
def lower_not(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [relax.op.logical_not(ctx.input(node, 0))]


@register("Where", since=9)
def lower_where(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    cond, x, y = (ctx.input(node, i) for i in range(3))
    return [relax.op.where(cond, x, y)]

"""Pooling over 1-3 spatial dims: MaxPool, AveragePool, LpPool and their Global forms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import dtype, ints, scalar, shape, unsupported
from hcompile.ops.registry import register
from hcompile.ops.window import Window, window

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_MAX = {1: relax.op.nn.max_pool1d, 2: relax.op.nn.max_pool2d, 3: relax.op.nn.max_pool3d}
_AVG = {1: relax.op.nn.avg_pool1d, 2: relax.op.nn.avg_pool2d, 3: relax.op.nn.avg_pool3d}


@register("MaxPool", since=12)
def lower_max_pool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise unsupported(node, "the Indices output", hint="only the pooled values are supported")
    win, rank = _window(ctx, node)
    y = _MAX[rank](
        ctx.input(node, 0),
        pool_size=win.kernel,
        strides=win.strides,
        padding=win.pads,
        dilation=win.dilations,
        ceil_mode=bool(node.attr("ceil_mode", 0)),
    )
    return [y]


@register("AveragePool", since=11)
def lower_avg_pool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    win, rank = _window(ctx, node)
    return [_avg_pool(ctx.input(node, 0), node, win, rank, bool(node.attr("count_include_pad", 0)))]


@register("LpPool", since=11)
def lower_lp_pool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """(sum over the window of |x|^p)^(1/p); pads count as zeros."""
    win, rank = _window(ctx, node)
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    p = float(node.attr("p", 2))
    powered = relax.op.power(relax.op.abs(x), scalar(p, dt))
    mean = _avg_pool(powered, node, win, rank, count_include_pad=True)
    window_size = 1
    for k in win.kernel:
        window_size *= k
    total = relax.op.multiply(mean, scalar(window_size, dt))
    return [relax.op.power(total, scalar(1.0 / p, dt))]


@register(["GlobalAveragePool", "GlobalMaxPool"], since=1)
def lower_global_pool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    axes = list(range(2, len(shape(ctx, node))))
    fn = relax.op.mean if node.op == "GlobalAveragePool" else relax.op.max
    return [fn(ctx.input(node, 0), axis=axes, keepdims=True)]


@register("GlobalLpPool", since=2)
def lower_global_lp_pool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    p = float(node.attr("p", 2))
    axes = list(range(2, len(shape(ctx, node))))
    total = relax.op.sum(relax.op.power(relax.op.abs(x), scalar(p, dt)), axis=axes, keepdims=True)
    return [relax.op.power(total, scalar(1.0 / p, dt))]


def _window(ctx: LowerContext, node: Node) -> tuple[Window, int]:
    x_shape = shape(ctx, node)
    rank = len(x_shape) - 2
    if rank not in _MAX:
        raise unsupported(node, f"a {len(x_shape)}-D input (1-3 spatial dims are supported)")
    kernel = ints(node.attr("kernel_shape"))
    if kernel is None:
        raise unsupported(node, "a missing kernel_shape attribute")
    return window(node, x_shape[2:], kernel), rank


def _avg_pool(
    x: relax.Expr, node: Node, win: Window, rank: int, count_include_pad: bool
) -> relax.Expr:
    return _AVG[rank](
        x,
        pool_size=win.kernel,
        strides=win.strides,
        padding=win.pads,
        dilation=win.dilations,
        ceil_mode=bool(node.attr("ceil_mode", 0)),
        count_include_pad=count_include_pad,
    )

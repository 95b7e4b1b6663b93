"""Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare) and ArgMax/ArgMin.

Axes are an attribute until opset 17 (ReduceSum: until 12) and an optional static input after.
With no axes every axis is reduced, unless noop_with_empty_axes=1: then nothing is reduced and
only the elementwise part applies (ReduceSumSquare gives x*x), as in the ONNX reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import const_ints, dtype, ints, norm_axes, norm_axis, scalar, shape
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

#: (x, input dims, sorted axes, keepdims, dtype) -> result
Reducer = Callable[[relax.Expr, tuple[int, ...], list[int], bool, str], relax.Expr]


def _sum(x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str) -> relax.Expr:
    return relax.op.sum(x, axis=axes, keepdims=keep)


def _l1(x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str) -> relax.Expr:
    return relax.op.sum(relax.op.abs(x), axis=axes, keepdims=keep)


def _sum_square(
    x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str
) -> relax.Expr:
    return relax.op.sum(relax.op.multiply(x, x), axis=axes, keepdims=keep)


def _l2(x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str) -> relax.Expr:
    squares = _sum_square(x, dims, axes, keep, dt)
    if dt.startswith(("int", "uint")):  # ONNX Runtime truncates sqrt back to the integer type
        return relax.op.astype(relax.op.sqrt(relax.op.astype(squares, "float64")), dt)
    return relax.op.sqrt(squares)


def _log_sum(
    x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str
) -> relax.Expr:
    return relax.op.log(relax.op.sum(x, axis=axes, keepdims=keep))


def _log_sum_exp(
    x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str
) -> relax.Expr:
    """Stable: max(x) - max(log_softmax(x)) over the reduced axes, moved last and merged.

    Equal to max + log(sum(exp(x - max))), but TVM's GPU schedules (dlight) fail on that fused
    max-exp-sum chain, while log_softmax has its own schedule.
    """
    if not axes:
        return x
    rank = len(dims)
    kept = [a for a in range(rank) if a not in axes]
    size = math.prod(dims[a] for a in axes)
    out = [1 if a in axes else dims[a] for a in range(rank)] if keep else [dims[a] for a in kept]
    if size == 0:  # log of an empty sum: -inf, as the ONNX reference gives
        return relax.op.broadcast_to(scalar(-math.inf, dt), out)
    moved = relax.op.permute_dims(x, kept + axes)
    merged = relax.op.reshape(moved, [*(dims[a] for a in kept), size])
    peak = relax.op.max(merged, axis=[-1])
    shifted_peak = relax.op.max(relax.op.nn.log_softmax(merged, axis=-1), axis=[-1])
    lse = relax.op.subtract(peak, shifted_peak)
    return relax.op.reshape(lse, out)


def _simple(fn: Callable[..., relax.Expr]) -> Reducer:
    def reduce_(
        x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str
    ) -> relax.Expr:
        return fn(x, axis=axes, keepdims=keep)

    return reduce_


def _extreme(fn: Callable[..., relax.Expr], infinity: float) -> Reducer:
    """Max (infinity=-inf) or min (+inf). TVM starts a float max at the lowest *finite* value,
    so a slice of only -inf gives -FLT_MAX; ONNX says -inf: put it back unless that value
    really occurs. Bool reduces as uint8."""

    def reduce_(
        x: relax.Expr, dims: tuple[int, ...], axes: list[int], keep: bool, dt: str
    ) -> relax.Expr:
        if dt == "bool":
            return relax.op.astype(fn(relax.op.astype(x, "uint8"), axis=axes, keepdims=keep),
                                   "bool")
        y = fn(x, axis=axes, keepdims=keep)
        if dt not in ("float16", "float32", "float64"):
            return y
        bound = scalar(float(np.finfo(dt).min if infinity < 0 else np.finfo(dt).max), dt)
        occurs = relax.op.max(relax.op.astype(relax.op.equal(x, bound), "uint8"), axis=axes,
                              keepdims=keep)
        fix = relax.op.logical_and(relax.op.equal(y, bound),
                                   relax.op.equal(occurs, scalar(0, "uint8")))
        return relax.op.where(fix, scalar(infinity, dt), y)

    return reduce_


_REDUCERS: dict[str, Reducer] = {
    "ReduceSum": _sum,
    "ReduceMean": _simple(relax.op.mean),
    "ReduceMax": _extreme(relax.op.max, -math.inf),
    "ReduceMin": _extreme(relax.op.min, math.inf),
    "ReduceProd": _simple(relax.op.prod),
    "ReduceL1": _l1,
    "ReduceL2": _l2,
    "ReduceLogSum": _log_sum,
    "ReduceLogSumExp": _log_sum_exp,
    "ReduceSumSquare": _sum_square,
}
_AXES_INPUT_SINCE = {op: 13 if op == "ReduceSum" else 18 for op in _REDUCERS}


@register([op for op in _REDUCERS if op != "ReduceSum"], since=13)
@register("ReduceSum", since=11)
def lower_reduce_axes_attr(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_reduce(ctx, node, ints(node.attr("axes")))]


@register([op for op in _REDUCERS if op != "ReduceSum"], since=18, static_inputs=(1,))
@register("ReduceSum", since=13, static_inputs=(1,))
def lower_reduce_axes_input(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_reduce(ctx, node, const_ints(ctx, node, 1))]


def _reduce(ctx: LowerContext, node: Node, axes: list[int] | None) -> relax.Expr:
    x, dt, dims = ctx.input(node, 0), dtype(ctx, node), shape(ctx, node)
    rank = len(dims)
    keep = bool(node.attr("keepdims", 1))
    if not axes:
        has_noop = node.opset >= _AXES_INPUT_SINCE[node.op]
        noop = has_noop and bool(node.attr("noop_with_empty_axes", 0))
        axes = [] if noop else list(range(rank))
    axes = norm_axes(node, axes, rank)
    if not axes:
        return _REDUCERS[node.op](x, dims, [], keep, dt) if node.op != "ReduceSum" else x
    if not keep and len(axes) == rank:
        # A rank-0 result: keep the dims, then drop them (dlight's GPU schedules fail on a
        # rank-0 reduction followed by elementwise work, e.g. ReduceMean's division).
        kept = ctx.emit(_REDUCERS[node.op](x, dims, sorted(axes), True, dt))
        return relax.op.reshape(kept, [])
    return _REDUCERS[node.op](x, dims, sorted(axes), keep, dt)


@register(["ArgMax", "ArgMin"], since=13)
def lower_arg_reduce(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """int64 index of the first (or, with select_last_index=1, the last) extreme along ``axis``."""
    x, dims = ctx.input(node, 0), shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", 0), len(dims))
    keep = bool(node.attr("keepdims", 1))
    fn = relax.op.argmax if node.op == "ArgMax" else relax.op.argmin
    if not int(node.attr("select_last_index", 0)):
        return [relax.op.astype(fn(x, axis=axis, keepdims=keep), "int64")]
    flipped = fn(relax.op.flip(x, axis), axis=axis, keepdims=keep)
    index = relax.op.subtract(scalar(dims[axis] - 1, "int64"), relax.op.astype(flipped, "int64"))
    return [index]

"""Ops that move rows to run-time positions: ReverseSequence and TensorScatter (KV-cache writes).

Both are written as gathers (each output element reads one input element at a computed
index) in TE, so the result needs no scatter and every read index is clamped into range:
out-of-range lengths or write positions (undefined in ONNX) can never read out of bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tvm import relax, te, tirx

from hcompile.ops.common import attr_str, check_choice, norm_axis, out_shape, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("ReverseSequence", since=10)
def lower_reverse_sequence(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """out[t, b] = x[len[b] - 1 - t, b] for t < len[b], else x[t, b] (any time / batch axes)."""
    dims = shape(ctx, node)
    if len(dims) < 2:
        raise unsupported(node, "an input of rank < 2")
    batch_axis = norm_axis(node, node.attr("batch_axis", 1), 2, "batch_axis")
    time_axis = norm_axis(node, node.attr("time_axis", 0), 2, "time_axis")
    if batch_axis == time_axis:
        raise unsupported(node, "batch_axis equal to time_axis")
    steps = dims[time_axis]

    def build(x: Any, lengths: Any) -> Any:
        def element(*i: Any) -> Any:
            t = i[time_axis]
            length = tirx.Cast(t.ty.dtype, lengths[i[batch_axis]])
            source = tirx.max(tirx.min(length - 1 - t, steps - 1), 0)
            moved = list(i)
            moved[time_axis] = tirx.Select(t < length, source, t)
            return x[tuple(moved)]

        return te.compute(dims, element, name="reverse_sequence")

    return [ctx.bb.emit_te(build, ctx.input(node, 0), ctx.input(node, 1),
                           primfunc_name_hint="reverse_sequence")]


@register("TensorScatter", since=24)
def lower_tensor_scatter(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """present[b, ..., w[b] + s, ...] = update[b, ..., s, ...] (modulo the cache length in
    circular mode); every other position keeps past_cache."""
    dims, update_dims = shape(ctx, node, 0), shape(ctx, node, 1)
    if len(dims) < 2 or len(update_dims) != len(dims):
        raise unsupported(node, f"cache {list(dims)} with update {list(update_dims)}")
    axis = norm_axis(node, node.attr("axis", -2), len(dims))
    if axis == 0:
        raise unsupported(node, "axis", 0, hint="axis 0 is the batch axis")
    mode = attr_str(node, "mode", "linear")
    check_choice(node, "mode", mode, ["linear", "circular"])
    capacity, count = dims[axis], update_dims[axis]
    positions = ctx.input(node, 2)
    if positions is None:  # no write_indices: every batch entry writes at position 0
        positions = ctx.emit(relax.op.zeros([dims[0]], "int64"))

    def build(past: Any, update: Any, where: Any) -> Any:
        def element(*i: Any) -> Any:
            offset = i[axis] - tirx.Cast(i[axis].ty.dtype, where[i[0]])
            if mode == "circular":
                offset = tirx.floormod(offset, capacity)
            hit = tirx.And(offset >= 0, offset < count)
            moved = list(i)
            moved[axis] = tirx.max(tirx.min(offset, count - 1), 0)
            return tirx.Select(hit, update[tuple(moved)], past[i])

        return te.compute(out_shape(node), element, name="tensor_scatter")

    return [ctx.bb.emit_te(build, ctx.input(node, 0), ctx.input(node, 1), positions,
                           primfunc_name_hint="tensor_scatter")]

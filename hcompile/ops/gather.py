"""Indexing with tensors: Gather, GatherElements, GatherND, ScatterND, ScatterElements, OneHot.

Indices may be negative (counting from the end of the indexed axis); they are normalised at
compile time when constant, otherwise with an elementwise select. Out-of-range indices are
undefined behaviour in ONNX and are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.errors import ModelError
from hcompile.ops.common import (
    attr_str,
    check_choice,
    const,
    const_ints,
    dtype,
    norm_axis,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("Gather", since=13)
def lower_gather(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", 0), len(dims))
    indices = _indices(ctx, node, 1, np.array(dims[axis]))
    # mode="clip": an out-of-range index (undefined in ONNX) must never read out of bounds.
    return [relax.op.take(ctx.input(node, 0), indices, axis=axis, mode="clip")]


@register("GatherElements", since=13)
def lower_gather_elements(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", 0), len(dims))
    indices = _indices(ctx, node, 1, np.array(dims[axis]))
    return [relax.op.gather_elements(ctx.input(node, 0), indices, axis=axis)]


@register("GatherND", since=13)
def lower_gather_nd(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    batch_dims = int(node.attr("batch_dims", 0))
    indices = _indices(ctx, node, 1, _nd_limits(ctx, node, batch_dims))
    return [relax.op.gather_nd(ctx.input(node, 0), indices, batch_dims)]


_SCATTER_REDUCTIONS = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


@register("ScatterND", since=13)
def lower_scatter_nd(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    reduction = _reduction(node)
    indices = _indices(ctx, node, 1, _nd_limits(ctx, node, 0))
    return [relax.op.scatter_nd(ctx.input(node, 0), indices, ctx.input(node, 2), reduction)]


@register("ScatterElements", since=13)
def lower_scatter_elements(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", 0), len(dims))
    indices = _indices(ctx, node, 1, np.array(dims[axis]))
    data, updates = ctx.input(node, 0), ctx.input(node, 2)
    return [relax.op.scatter_elements(data, indices, updates, axis, _reduction(node))]


@register("OneHot", since=11, static_inputs=(1,))
def lower_one_hot(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """values = [off, on]; indices in [-depth, depth) select ``on``, anything else gives all off."""
    depth = (const_ints(ctx, node, 1) or [0])[0]
    out_rank = len(shape(ctx, node)) + 1
    axis = norm_axis(node, node.attr("axis", -1), out_rank)
    indices = ctx.input(node, 0)
    if dtype(ctx, node) != "int64":
        indices = relax.op.astype(indices, "int64")
    negative = relax.op.less(indices, const(np.array(0, "int64")))
    indices = relax.op.where(
        negative, relax.op.add(indices, const(np.array(depth, "int64"))), indices
    )
    indices = relax.op.expand_dims(indices, axis)
    positions = np.arange(depth, dtype="int64").reshape(
        [depth if i == axis else 1 for i in range(out_rank)]
    )
    hit = relax.op.equal(indices, const(positions))
    values = ctx.input(node, 2)
    off = relax.op.strided_slice(values, [0], [0], [1])
    on = relax.op.strided_slice(values, [0], [1], [2])
    return [relax.op.where(hit, on, off)]


def _reduction(node: Node) -> str:
    reduction = attr_str(node, "reduction", "none")
    check_choice(node, "reduction", reduction, _SCATTER_REDUCTIONS)
    return _SCATTER_REDUCTIONS[reduction]


def _nd_limits(ctx: LowerContext, node: Node, batch_dims: int) -> np.ndarray:
    """Sizes of the data axes that the last indices axis addresses (Gather/ScatterND)."""
    data_dims, index_dims = shape(ctx, node, 0), shape(ctx, node, 1)
    if not index_dims:
        raise unsupported(node, "scalar indices")
    depth = index_dims[-1]
    if batch_dims + depth > len(data_dims):
        raise unsupported(node, f"indices of shape {list(index_dims)} for data {list(data_dims)}")
    return np.array(data_dims[batch_dims : batch_dims + depth])


def _indices(ctx: LowerContext, node: Node, index: int, limits: np.ndarray) -> relax.Expr:
    """Input ``index`` with negative entries wrapped by ``limits`` (broadcast on the last axis)."""
    name = node.inputs[index]
    value = ctx.graph.constants.get(name)
    if value is not None:
        value = np.asarray(value)
        if value.size and ((value < -limits).any() or (value >= limits).any()):
            raise ModelError(f"{node.op} has constant indices out of range (limits "
                             f"{limits.tolist()})", node=node.name)
        if (value >= 0).all():
            return ctx.input(node, index)
        return const(np.where(value < 0, value + limits, value).astype(value.dtype))
    indices = ctx.input(node, index)
    dt = dtype(ctx, node, index)
    negative = relax.op.less(indices, const(np.array(0, dt)))
    wrapped = relax.op.where(negative, relax.op.add(indices, const(limits.astype(dt))), indices)
    # Out-of-range run-time indices are undefined in ONNX: clamp them so that the generated
    # code can never read or write out of bounds (a crash, or worse, on hostile input).
    upper = const(np.maximum(limits - 1, 0).astype(dt))
    return relax.op.minimum(relax.op.maximum(wrapped, const(np.array(0, dt))), upper)

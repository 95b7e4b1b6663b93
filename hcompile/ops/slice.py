"""Slice (opset 13: starts/ends/axes/steps inputs, all static) with ONNX's clamping rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import const_ints, norm_axes, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("Slice", since=13, static_inputs=(1, 2, 3, 4))
def lower_slice(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """ONNX clamps starts/ends exactly like Python slices, so ``slice.indices`` normalises them.

    Positive steps map to a strided slice; a negative step takes the same elements as a positive
    strided slice from the last picked index, then flips that axis.
    """
    dims = shape(ctx, node)
    starts, ends = const_ints(ctx, node, 1) or [], const_ints(ctx, node, 2) or []
    axes = const_ints(ctx, node, 3)
    axes = norm_axes(node, axes if axes is not None else range(len(starts)), len(dims))
    steps = const_ints(ctx, node, 4) or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise unsupported(node, "starts/ends/axes/steps of different lengths")
    if 0 in steps:
        raise unsupported(node, "steps", steps, hint="a step must not be 0")
    x = ctx.input(node, 0)
    begins, stops, strides, flips = [], [], [], []
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        first, stop, step = slice(start, end, step).indices(dims[axis])
        count = len(range(first, stop, step))
        if step < 0:
            last = first + (count - 1) * step if count else 0
            first, stop, step = last, (first + 1 if count else 0), -step
            flips.append(axis)
        begins.append(first)
        stops.append(max(stop, first))
        strides.append(step)
    if any(
        b != 0 or e != dims[a] or s != 1
        for a, b, e, s in zip(axes, begins, stops, strides, strict=True)
    ):
        x = relax.op.strided_slice(x, axes, begins, stops, strides, assume_inbound=True)
    for axis in flips:
        x = relax.op.flip(x, axis)
    return [x]

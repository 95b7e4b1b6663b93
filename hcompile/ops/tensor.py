"""Ops that copy or convert whole tensors: Identity, Dropout (inference), Cast, CastLike,
Concat, Split, Tile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ir.types import is_narrow
from hcompile.ops import narrow_types
from hcompile.ops.common import (
    attr_str,
    const_ints,
    dtype,
    norm_axis,
    onnx_dtype,
    out_shape,
    required,
    scalar,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("Identity", since=1)
def lower_identity(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [ctx.input(node, 0)]


@register("Dropout", since=13, static_inputs=(2,))
def lower_dropout(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Inference: the input unchanged, and a mask of ones when asked for."""
    training = ctx.const(node, 2)
    if training is not None and bool(training.reshape(-1)[0]):
        raise unsupported(node, "training_mode", True, hint="only inference Dropout")
    outputs: list[relax.Expr | None] = [ctx.input(node, 0)]
    if len(node.outputs) > 1 and node.outputs[1]:
        outputs.append(relax.op.full(out_shape(node, 1), scalar(True, "bool"), "bool"))
    return outputs


@register("Cast", since=13)
def lower_cast(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_cast(ctx, node, onnx_dtype(node, required(node, "to")))]


@register("CastLike", since=15)
def lower_cast_like(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_cast(ctx, node, dtype(ctx, node, 1))]


def _cast(ctx: LowerContext, node: Node, target: str) -> relax.Expr:
    """Floats truncate toward zero into integers; anything non-zero becomes True."""
    x, source = ctx.input(node, 0), dtype(ctx, node)
    if target == source:
        return x
    if is_narrow(source) or is_narrow(target):
        # saturate (opset 19) only matters for float8 targets; round_mode (opset 24) for e8m0
        return narrow_types.cast(ctx, x, source, target,
                                 saturate=bool(node.attr("saturate", 1)),
                                 round_mode=attr_str(node, "round_mode", "up"))
    if target == "bool":
        return relax.op.not_equal(x, scalar(0, source))
    return relax.op.astype(x, target)


@register("Concat", since=13)
def lower_concat(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    rank = len(shape(ctx, node))
    axis = norm_axis(node, required(node, "axis"), rank)
    names = [name for name in node.inputs if name]
    # Relax rejects zero-sized parts; they add nothing, so drop them.
    parts = [ctx.value(name) for name in names if ctx.type_of(name).shape[axis] > 0]
    parts = parts or [ctx.value(names[0])]
    return [parts[0] if len(parts) == 1 else relax.op.concat(parts, axis=axis)]


@register("Split", since=13, static_inputs=(1,))
def lower_split(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Sizes from the ``split`` input, or equal parts (from opset 18 the last may be smaller)."""
    dims = shape(ctx, node)
    axis = norm_axis(node, node.attr("axis", 0), len(dims))
    sizes = const_ints(ctx, node, 1)
    if sizes is None:
        count = int(node.attr("num_outputs", len(node.outputs)))
        chunk = math.ceil(dims[axis] / count)
        sizes = [min(chunk, dims[axis] - i * chunk) for i in range(count)]
    if sum(sizes) != dims[axis] or len(sizes) != len(node.outputs) or min(sizes) < 0:
        raise unsupported(node, f"split sizes {sizes} for axis {axis} of shape {list(dims)}")
    nonzero = [size for size in sizes if size]
    if len(nonzero) <= 1:
        whole = [ctx.input(node, 0)]
    else:  # Relax's split wants strictly increasing indices: zero-size parts are made apart
        parts = ctx.emit(relax.op.split(ctx.input(node, 0), list(accumulate(nonzero[:-1])),
                                        axis=axis))
        whole = [relax.TupleGetItem(parts, i) for i in range(len(nonzero))]
    pieces = iter(whole)
    return [next(pieces) if size else relax.op.zeros(out_shape(node, i), dtype(ctx, node))
            for i, size in enumerate(sizes)]


@register("Tile", since=13, static_inputs=(1,))
def lower_tile(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    repeats = const_ints(ctx, node, 1) or []
    if len(repeats) != len(shape(ctx, node)) or min(repeats, default=1) < 0:
        raise unsupported(node, "repeats", repeats)
    return [relax.op.tile(ctx.input(node, 0), repeats)]

"""Layout changes that move no arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
Expand, DepthToSpace, SpaceToDepth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import (
    attr_str,
    check_choice,
    const_ints,
    dtype,
    ints,
    norm_axes,
    required,
    reshape,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("Reshape", since=13, static_inputs=(1,))
def lower_reshape(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """0 copies the input dim (unless allowzero=1, opset 14), -1 is inferred from the size."""
    dims = shape(ctx, node)
    target = const_ints(ctx, node, 1) or []
    allowzero = int(node.attr("allowzero", 0))
    out = [
        dims[i] if d == 0 and not allowzero and i < len(dims) else d for i, d in enumerate(target)
    ]
    if out.count(-1) > 1 or min(out, default=0) < -1:
        raise unsupported(node, "shape", target)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(dims) // known if known else 0
    if math.prod(out) != math.prod(dims):
        raise unsupported(node, f"shape {target} for an input of shape {list(dims)}")
    return [reshape(ctx.input(node, 0), out, dtype(ctx, node))]


@register("Flatten", since=13)
def lower_flatten(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    axis = int(node.attr("axis", 1))
    axis = axis + len(dims) if axis < 0 else axis
    if not 0 <= axis <= len(dims):
        raise unsupported(node, "axis", axis)
    out = [math.prod(dims[:axis]), math.prod(dims[axis:])]
    return [reshape(ctx.input(node, 0), out, dtype(ctx, node))]


@register("Squeeze", since=13, static_inputs=(1,))
def lower_squeeze(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Drop the given axes (each must be 1), or every axis of size 1 when axes are omitted."""
    dims = shape(ctx, node)
    axes = const_ints(ctx, node, 1)
    if axes is None:
        drop = [i for i, d in enumerate(dims) if d == 1]
    else:
        drop = norm_axes(node, axes, len(dims))
        if any(dims[a] != 1 for a in drop):
            raise unsupported(node, f"squeezing axes {axes} of shape {list(dims)}")
    out = [d for i, d in enumerate(dims) if i not in drop]
    return [reshape(ctx.input(node, 0), out, dtype(ctx, node))]


@register("Unsqueeze", since=13, static_inputs=(1,))
def lower_unsqueeze(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Insert size-1 axes; negative axes count from the end of the *output*."""
    dims = list(shape(ctx, node))
    axes = const_ints(ctx, node, 1) or []
    rank = len(dims) + len(axes)
    inserted = set(norm_axes(node, axes, rank))
    source = iter(dims)
    out = [1 if i in inserted else next(source) for i in range(rank)]
    return [reshape(ctx.input(node, 0), out, dtype(ctx, node))]


@register("Transpose", since=13)
def lower_transpose(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    rank = len(shape(ctx, node))
    perm = ints(node.attr("perm")) or list(range(rank))[::-1]
    if sorted(norm_axes(node, perm, rank, "perm")) != list(range(rank)):
        raise unsupported(node, "perm", perm)
    return [relax.op.permute_dims(ctx.input(node, 0), norm_axes(node, perm, rank, "perm"))]


@register("Expand", since=13, static_inputs=(1,))
def lower_expand(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Bidirectional broadcast of the input with ``shape``."""
    target = const_ints(ctx, node, 1) or []
    try:
        out = np.broadcast_shapes(shape(ctx, node), tuple(target))
    except ValueError:
        raise unsupported(
            node, f"shape {target} does not broadcast with {shape(ctx, node)}"
        ) from None
    x = ctx.input(node, 0)
    return [x if tuple(out) == shape(ctx, node) else relax.op.broadcast_to(x, list(out))]


@register("DepthToSpace", since=13)
def lower_depth_to_space(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    n, c, h, w = _nchw(ctx, node)
    b = int(required(node, "blocksize"))
    mode = attr_str(node, "mode", "DCR")
    check_choice(node, "mode", mode, ["DCR", "CRD"])
    if c % (b * b):
        raise unsupported(node, "blocksize", b, hint=f"must divide the {c} channels as b*b")
    x = ctx.input(node, 0)
    if mode == "DCR":
        x = relax.op.reshape(x, [n, b, b, c // (b * b), h, w])
        x = relax.op.permute_dims(x, [0, 3, 4, 1, 5, 2])
    else:
        x = relax.op.reshape(x, [n, c // (b * b), b, b, h, w])
        x = relax.op.permute_dims(x, [0, 1, 4, 2, 5, 3])
    return [relax.op.reshape(x, [n, c // (b * b), h * b, w * b])]


@register("SpaceToDepth", since=13)
def lower_space_to_depth(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    n, c, h, w = _nchw(ctx, node)
    b = int(required(node, "blocksize"))
    if h % b or w % b:
        raise unsupported(node, "blocksize", b, hint=f"must divide the spatial size {h}x{w}")
    x = relax.op.reshape(ctx.input(node, 0), [n, c, h // b, b, w // b, b])
    x = relax.op.permute_dims(x, [0, 3, 5, 1, 2, 4])
    return [relax.op.reshape(x, [n, c * b * b, h // b, w // b])]


def _nchw(ctx: LowerContext, node: Node) -> tuple[int, int, int, int]:
    dims = shape(ctx, node)
    if len(dims) != 4:
        raise unsupported(node, f"a rank-{len(dims)} input (NCHW is required)")
    n, c, h, w = dims
    return n, c, h, w

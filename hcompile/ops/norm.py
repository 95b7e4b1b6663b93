"""Normalisations: BatchNormalization (inference), LayerNormalization, InstanceNormalization,
GroupNormalization, LRN, LpNormalization, MeanVarianceNormalization.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import (
    dtype,
    ints,
    norm_axes,
    norm_axis,
    required,
    scalar,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("BatchNormalization", since=9)
def lower_batch_norm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Inference form: y = (x - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1)."""
    if int(node.attr("training_mode", 0)) or any(node.outputs[1:]):
        raise unsupported(node, "training_mode", 1, hint="only inference BatchNormalization")
    x, scale_, bias, mean, var = (ctx.input(node, i) for i in range(5))
    dt, rank = dtype(ctx, node), len(shape(ctx, node))
    eps = float(node.attr("epsilon", 1e-5))
    inv_std = relax.op.rsqrt(relax.op.add(var, scalar(eps, dt)))
    factor = ctx.emit(relax.op.multiply(scale_, inv_std))
    offset = ctx.emit(relax.op.subtract(bias, relax.op.multiply(mean, factor)))
    # (1, C, 1...): the rank of x, so the CPU's blocked layout can carry the scale and shift.
    channel = [1, shape(ctx, node, 1)[0]] + [1] * max(rank - 2, 0)
    y = relax.op.add(
        relax.op.multiply(x, relax.op.reshape(factor, channel)),
        relax.op.reshape(offset, channel),
    )
    return [y]


_HALF = ("float16", "bfloat16")


@register("LayerNormalization", since=17)
def lower_layer_norm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Normalise over axes [axis, rank); optional outputs Mean and InvStdDev (reduced dims kept)."""
    x, scale_, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    dims, dt = shape(ctx, node), dtype(ctx, node)
    axis = norm_axis(node, node.attr("axis", -1), len(dims))
    axes = list(range(axis, len(dims)))
    eps = float(node.attr("epsilon", 1e-5))
    # stash_type=1: half-precision inputs are normalised in float32 (ONNX Runtime does too).
    stash = "float32" if int(node.attr("stash_type", 1)) == 1 and dt in _HALF else dt
    simple = stash == dt and not any(node.outputs[1:])
    if simple and shape(ctx, node, 1) == dims[axis:] and _bias_matches(ctx, node, dims[axis:]):
        beta = bias if bias is not None else relax.op.zeros(dims[axis:], dt)
        return [relax.op.nn.layer_norm(x, scale_, beta, axes, eps, center=bias is not None)]
    xs = relax.op.astype(x, stash) if stash != dt else x
    mean = relax.op.mean(xs, axis=axes, keepdims=True)
    centered = relax.op.subtract(xs, mean)
    var = relax.op.mean(relax.op.multiply(centered, centered), axis=axes, keepdims=True)
    inv_std = relax.op.rsqrt(relax.op.add(var, scalar(eps, stash)))
    normed = relax.op.multiply(centered, inv_std)
    if stash != dt:
        normed = relax.op.astype(normed, dt)
    y = relax.op.multiply(normed, scale_)
    if bias is not None:
        y = relax.op.add(y, bias)
    return [y, mean, inv_std]


def _bias_matches(ctx: LowerContext, node: Node, normalized: tuple[int, ...]) -> bool:
    return len(node.inputs) < 3 or not node.inputs[2] or shape(ctx, node, 2) == normalized


@register("InstanceNormalization", since=6)
def lower_instance_norm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, scale_, bias = (ctx.input(node, i) for i in range(3))
    rank = len(shape(ctx, node))
    eps = float(node.attr("epsilon", 1e-5))
    return [relax.op.nn.instance_norm(x, scale_, bias, 1, list(range(2, rank)), eps)]


@register("GroupNormalization", since=18)
def lower_group_norm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Opset 18 takes scale/bias per group, opset 21 per channel."""
    x, scale_, bias = (ctx.input(node, i) for i in range(3))
    dims = shape(ctx, node)
    groups = int(required(node, "num_groups"))
    if groups < 1 or dims[1] % groups:
        raise unsupported(node, "num_groups", groups, hint=f"must divide the {dims[1]} channels")
    if shape(ctx, node, 1) != (dims[1],):
        repeats = dims[1] // groups
        scale_ = relax.op.repeat(scale_, repeats, axis=0)
        bias = relax.op.repeat(bias, repeats, axis=0)
    eps = float(node.attr("epsilon", 1e-5))
    axes = list(range(2, len(dims)))
    return [relax.op.nn.group_norm(x, scale_, bias, groups, 1, axes, eps)]


@register("LRN", since=13)
def lower_lrn(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """y = x / (bias + alpha / size * sum of x^2 over a channel window)^beta."""
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    dims = shape(ctx, node)
    size = int(node.attr("size", 0))
    if size < 1:
        raise unsupported(node, "size", size, hint="the required size attribute must be >= 1")
    alpha, beta = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    widths = [0, 0, before, after] + [0, 0] * (len(dims) - 2)
    squares = relax.op.nn.pad(relax.op.multiply(x, x), widths)
    channels = dims[1]
    parts = [relax.op.strided_slice(squares, [1], [i], [i + channels]) for i in range(size)]
    total = reduce(relax.op.add, parts)
    scaled = relax.op.add(scalar(bias, dt), relax.op.multiply(total, scalar(alpha / size, dt)))
    return [relax.op.divide(x, relax.op.power(scaled, scalar(beta, dt)))]


@register("LpNormalization", since=1)
def lower_lp_norm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x = ctx.input(node, 0)
    axis = norm_axis(node, node.attr("axis", -1), len(shape(ctx, node)))
    p = int(node.attr("p", 2))
    if p == 1:
        norm = relax.op.sum(relax.op.abs(x), axis=[axis], keepdims=True)
    elif p == 2:
        norm = relax.op.sqrt(relax.op.sum(relax.op.multiply(x, x), axis=[axis], keepdims=True))
    else:
        raise unsupported(node, "p", p, hint="ONNX allows p = 1 or 2")
    # A zero vector normalises to zero (the ONNX reference), not 0/0 = NaN.
    zero = scalar(0, dtype(ctx, node))
    return [relax.op.where(relax.op.equal(norm, zero), zero, relax.op.divide(x, norm))]


@register("MeanVarianceNormalization", since=13)
def lower_mvn(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over ``axes`` (default N, H, W)."""
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    axes = norm_axes(node, ints(node.attr("axes")) or [0, 2, 3], len(shape(ctx, node)))
    mean = relax.op.mean(x, axis=axes, keepdims=True)
    mean_sq = relax.op.mean(relax.op.multiply(x, x), axis=axes, keepdims=True)
    std = relax.op.sqrt(relax.op.subtract(mean_sq, relax.op.multiply(mean, mean)))
    return [relax.op.divide(relax.op.subtract(x, mean), relax.op.add(std, scalar(1e-9, dt)))]

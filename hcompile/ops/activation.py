"""Activation functions: Relu, Clip, LeakyRelu, PRelu, Elu, Selu, Celu, HardSigmoid, HardSwish,
Softplus, Softsign, Mish, ThresholdedRelu, Shrink and Gelu (opset 20). Attribute defaults follow
the ONNX spec; alpha/beta/gamma are rounded to the input dtype as ONNX Runtime does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import attr_str, check_choice, dtype, scalar
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


@register("Relu", since=6)
def lower_relu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [relax.op.nn.relu(ctx.input(node, 0))]


@register("Clip", since=11)
def lower_clip(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """min/max are optional scalar inputs (constants or run-time); max wins when min > max."""
    x, low, high = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    if low is not None:
        x = relax.op.maximum(x, low)
    if high is not None:
        x = relax.op.minimum(x, high)
    return [x]


@register("LeakyRelu", since=6)
def lower_leaky_relu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [relax.op.nn.leakyrelu(ctx.input(node, 0), float(node.attr("alpha", 0.01)))]


@register("PRelu", since=9)
def lower_prelu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """slope broadcasts to X (unidirectionally): x < 0 ? slope * x : x."""
    x, slope = ctx.input(node, 0), ctx.input(node, 1)
    negative = relax.op.less(x, scalar(0, dtype(ctx, node)))
    return [relax.op.where(negative, relax.op.multiply(x, slope), x)]


@register("Elu", since=6)
def lower_elu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    alpha = float(node.attr("alpha", 1.0))
    return [_where_negative(x, dt, relax.op.multiply(scalar(alpha, dt), _expm1(x, dt)))]


@register("Selu", since=6)
def lower_selu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    alpha = float(node.attr("alpha", _SELU_ALPHA))
    gamma = float(node.attr("gamma", _SELU_GAMMA))
    negative = relax.op.multiply(scalar(alpha, dt), _expm1(x, dt))
    return [relax.op.multiply(scalar(gamma, dt), _where_negative(x, dt, negative))]


@register("Celu", since=12)
def lower_celu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    alpha = scalar(float(node.attr("alpha", 1.0)), dt)
    negative = relax.op.multiply(alpha, _expm1(relax.op.divide(x, alpha), dt))
    return [_where_negative(x, dt, negative)]


@register("ThresholdedRelu", since=10)
def lower_thresholded_relu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    above = relax.op.greater(x, scalar(float(node.attr("alpha", 1.0)), dt))
    return [relax.op.where(above, x, scalar(0, dt))]


@register("HardSigmoid", since=6)
def lower_hard_sigmoid(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return [_hard_sigmoid(x, dt, alpha, beta)]


@register("HardSwish", since=14)
def lower_hard_swish(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    return [relax.op.multiply(x, _hard_sigmoid(x, dt, 1.0 / 6.0, 0.5))]


@register("Softplus", since=1)
def lower_softplus(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_softplus(ctx.input(node, 0), dtype(ctx, node))]


@register("Softsign", since=1)
def lower_softsign(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    return [relax.op.divide(x, relax.op.add(scalar(1, dt), relax.op.abs(x)))]


@register("Mish", since=18)
def lower_mish(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    return [relax.op.multiply(x, relax.op.tanh(_softplus(x, dt)))]


@register("Shrink", since=9)
def lower_shrink(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """x < -lambd ? x + bias : (x > lambd ? x - bias : 0)."""
    x, dt = ctx.input(node, 0), dtype(ctx, node)
    lambd, bias = float(node.attr("lambd", 0.5)), float(node.attr("bias", 0.0))
    low = relax.op.less(x, scalar(-lambd, dt))
    high = relax.op.greater(x, scalar(lambd, dt))
    zero = scalar(0, dt)
    upper = relax.op.where(high, relax.op.subtract(x, scalar(bias, dt)), zero)
    return [relax.op.where(low, relax.op.add(x, scalar(bias, dt)), upper)]


@register("Gelu", since=20)
def lower_gelu(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    approximate = attr_str(node, "approximate", "none")
    check_choice(node, "approximate", approximate, ["none", "tanh"])
    x = ctx.input(node, 0)
    return [relax.op.nn.gelu(x) if approximate == "none" else relax.op.nn.gelu_tanh(x)]


def _where_negative(x: relax.Expr, dt: str, negative: relax.Expr) -> relax.Expr:
    return relax.op.where(relax.op.less(x, scalar(0, dt)), negative, x)


def _expm1(x: relax.Expr, dt: str) -> relax.Expr:
    return relax.op.subtract(relax.op.exp(x), scalar(1, dt))


def _hard_sigmoid(x: relax.Expr, dt: str, alpha: float, beta: float) -> relax.Expr:
    linear = relax.op.add(relax.op.multiply(x, scalar(alpha, dt)), scalar(beta, dt))
    return relax.op.minimum(relax.op.maximum(linear, scalar(0, dt)), scalar(1, dt))


def _softplus(x: relax.Expr, dt: str) -> relax.Expr:
    """log(1 + exp(x)) computed stably: max(x, 0) + log(1 + exp(-|x|))."""
    tail = relax.op.log(
        relax.op.add(scalar(1, dt), relax.op.exp(relax.op.negative(relax.op.abs(x))))
    )
    return relax.op.add(relax.op.maximum(x, scalar(0, dt)), tail)

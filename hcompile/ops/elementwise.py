"""Elementwise arithmetic with numpy-style broadcasting (ONNX semantics since opset 7/13).

Binary: Add Sub Mul Div Pow Mod and the bitwise ops. Unary math: Abs Neg Exp Log Sqrt Reciprocal
Floor Ceil Round Sign Erf, trigonometry, IsNaN/IsInf. Variadic: Max Min Sum Mean.
Integer Div truncates toward zero (C, as ONNX Runtime does); Round rounds half to even.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import attr_str, check_choice, dtype, is_float, scalar, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_BINARY: dict[str, Callable[[relax.Expr, relax.Expr], relax.Expr]] = {
    "Add": relax.op.add,
    "Sub": relax.op.subtract,
    "Mul": relax.op.multiply,
    "Div": relax.op.divide,  # truncating for integers, like C and ONNX Runtime
}

_BITWISE: dict[str, Callable[[relax.Expr, relax.Expr], relax.Expr]] = {
    "BitwiseAnd": relax.op.bitwise_and,
    "BitwiseOr": relax.op.bitwise_or,
    "BitwiseXor": relax.op.bitwise_xor,
}

_UNARY: dict[str, Callable[[relax.Expr], relax.Expr]] = {
    "Abs": relax.op.abs,
    "Neg": relax.op.negative,
    "Exp": relax.op.exp,
    "Log": relax.op.log,
    "Sqrt": relax.op.sqrt,
    "Floor": relax.op.floor,
    "Ceil": relax.op.ceil,
    "Round": relax.op.round,  # half to even, as ONNX requires
    "Sign": relax.op.sign,
    "Erf": relax.op.erf,
    "Sigmoid": relax.op.sigmoid,
    "Tanh": relax.op.tanh,
    "Sin": relax.op.sin,
    "Cos": relax.op.cos,
    "Tan": relax.op.tan,
    "Asin": relax.op.asin,
    "Acos": relax.op.acos,
    "Atan": relax.op.atan,
    "Sinh": relax.op.sinh,
    "Cosh": relax.op.cosh,
    "Asinh": relax.op.asinh,
    "Acosh": relax.op.acosh,
    "Atanh": relax.op.atanh,
    "IsNaN": relax.op.isnan,
}


@register(list(_BINARY), since=7)
def lower_binary(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_BINARY[node.op](ctx.input(node, 0), ctx.input(node, 1))]


@register(list(_BITWISE), since=18)
def lower_bitwise(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_BITWISE[node.op](ctx.input(node, 0), ctx.input(node, 1))]


@register("BitwiseNot", since=18)
def lower_bitwise_not(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [relax.op.bitwise_not(ctx.input(node, 0))]


@register(list(_UNARY), since=6)
def lower_unary(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_UNARY[node.op](ctx.input(node, 0))]


@register("Reciprocal", since=6)
def lower_reciprocal(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [relax.op.divide(scalar(1, dtype(ctx, node)), ctx.input(node, 0))]


@register("Mod", since=10)
def lower_mod(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """fmod=1: C fmod (sign of the dividend); fmod=0: Python % (sign of the divisor)."""
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    fmod = int(node.attr("fmod", 0))
    if fmod not in (0, 1):
        raise unsupported(node, "fmod", fmod)
    if fmod == 0 and is_float(dtype(ctx, node)):
        # numpy's float %: C fmod, moved by one divisor when the signs differ (inf/nan as numpy)
        rem = ctx.emit(relax.op.mod(a, b))
        zero = scalar(0, dtype(ctx, node))
        differ = relax.op.logical_xor(relax.op.less(rem, zero), relax.op.less(b, zero))
        move = relax.op.logical_and(relax.op.not_equal(rem, zero), differ)
        return [relax.op.where(move, relax.op.add(rem, b), rem)]
    return [relax.op.mod(a, b) if fmod else relax.op.floor_mod(a, b)]


@register("BitShift", since=11)
def lower_bit_shift(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    direction = attr_str(node, "direction", "")
    check_choice(node, "direction", direction, ["LEFT", "RIGHT"])
    fn = relax.op.left_shift if direction == "LEFT" else relax.op.right_shift
    return [fn(ctx.input(node, 0), ctx.input(node, 1))]


@register("Pow", since=7)
def lower_pow(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Base and exponent may differ in dtype (since opset 12); the result has the base's dtype."""
    base, exponent = ctx.input(node, 0), ctx.input(node, 1)
    base_dtype, exp_dtype = dtype(ctx, node, 0), dtype(ctx, node, 1)
    known = _constant_scalar(ctx, node, 1)
    if known == 1.0:
        return [base]
    if known == 2.0:
        return [relax.op.multiply(base, base)]
    if known == 0.5 and is_float(base_dtype):
        return [relax.op.sqrt(base)]
    if is_float(base_dtype):
        if exp_dtype != base_dtype:
            exponent = relax.op.astype(exponent, base_dtype)
        return [relax.op.power(base, exponent)]
    # Relax's power is float-only: compute integer powers in float64 (exact below 2**53).
    wide = relax.op.power(relax.op.astype(base, "float64"), relax.op.astype(exponent, "float64"))
    return [relax.op.astype(wide, base_dtype)]


def _constant_scalar(ctx: LowerContext, node: Node, index: int) -> float | None:
    name = node.inputs[index]
    value = ctx.graph.constants.get(name)
    if value is None or np.asarray(value).size != 1:
        return None
    if ctx.input_type(node, 0).shape != node.output_types[0].shape:
        return None  # the exponent broadcasts the base up: keep the general form
    return float(np.asarray(value).reshape(()))


@register("IsInf", since=10)
def lower_isinf(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x = ctx.input(node, 0)
    positive, negative = int(node.attr("detect_positive", 1)), int(node.attr("detect_negative", 1))
    inf = relax.op.isinf(x)
    zero = scalar(0, dtype(ctx, node))
    if positive and negative:
        return [inf]
    if positive:
        return [relax.op.logical_and(inf, relax.op.greater(x, zero))]
    if negative:
        return [relax.op.logical_and(inf, relax.op.less(x, zero))]
    return [relax.op.zeros(node.output_types[0].shape, "bool")]


@register(["Max", "Min", "Sum", "Mean"], since=13)
def lower_variadic(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Fold the inputs pairwise with broadcasting; Mean divides the sum by the input count."""
    args = [ctx.input(node, i) for i in range(len(node.inputs))]
    fn = {"Max": relax.op.maximum, "Min": relax.op.minimum}.get(node.op, relax.op.add)
    result = reduce(fn, args)
    if node.op == "Mean" and len(args) > 1:
        result = relax.op.divide(result, scalar(len(args), dtype(ctx, node)))
    return [result]

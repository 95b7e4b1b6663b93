"""MatMul (numpy matmul semantics, batched and broadcast), Gemm and Einsum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import attr_str, dtype, required, scalar
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("MatMul", since=1)
def lower_matmul(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """float16 accumulates in float32 (as numpy and ONNX Runtime do), then rounds once."""
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    if dtype(ctx, node) == "float16":
        return [relax.op.astype(relax.op.matmul(a, b, out_dtype="float32"), "float16")]
    return [relax.op.matmul(a, b)]


@register("Gemm", since=11)
def lower_gemm(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Y = alpha * A' @ B' + beta * C, with A' / B' transposed by transA / transB; C optional."""
    a, b, c = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    dt = dtype(ctx, node)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if int(node.attr("transA", 0)):
        a = relax.op.permute_dims(a, [1, 0])
    if int(node.attr("transB", 0)):
        b = relax.op.permute_dims(b, [1, 0])
    y = relax.op.matmul(a, b)
    if alpha != 1.0:
        y = relax.op.multiply(y, scalar(alpha, dt))
    if c is not None and beta != 0.0:
        y = relax.op.add(y, c if beta == 1.0 else relax.op.multiply(c, scalar(beta, dt)))
    return [y]


@register("Einsum", since=12)
def lower_einsum(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    required(node, "equation")
    equation = attr_str(node, "equation", "").replace(" ", "")
    operands = [ctx.input(node, i) for i in range(len(node.inputs))]
    return [relax.op.einsum(operands, equation)]

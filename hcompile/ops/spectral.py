"""DFT as constant matrices: every variant (forward/inverse, onesided, dft_length padding or
truncation) is linear in the real and imaginary parts of the input, so hcompile builds the
matrices at compile time by applying numpy's own FFT to basis vectors, then multiplies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import const, const_ints, dtype, norm_axis, out_shape, shape
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("DFT", since=17, static_inputs=(1,))
def lower_dft_17(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_dft(ctx, node, int(node.attr("axis", 1)))]


@register("DFT", since=20, static_inputs=(1, 2))
def lower_dft_20(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    axis = const_ints(ctx, node, 2) if len(node.inputs) > 2 and node.inputs[2] else None
    return [_dft(ctx, node, axis[0] if axis else -2)]


def _dft(ctx: LowerContext, node: Node, axis: int) -> relax.Expr:
    dims, dt = shape(ctx, node), dtype(ctx, node)
    rank = len(dims)
    axis = norm_axis(node, axis, rank)
    length = dims[axis]
    given = const_ints(ctx, node, 1) if len(node.inputs) > 1 and node.inputs[1] else None
    n = given[0] if given else None
    transform = _transform(bool(node.attr("inverse", 0)), bool(node.attr("onesided", 0)), n,
                           length)
    real_in = dims[-1] == 1
    basis = np.eye(length)
    cols_re = np.stack([transform(basis[i].astype(complex)) for i in range(length)])
    cols_im = np.stack([transform(1j * basis[i]) for i in range(length)])
    x = ctx.input(node, 0)
    order = [d for d in range(rank - 1) if d != axis] + [axis]
    back = list(np.argsort(order))

    # Sums of many terms that cancel: accumulate in float64 (numpy's FFT is exact to ~1 ulp).
    wide = "float64"

    def part(index: int) -> relax.Expr:
        piece = relax.op.strided_slice(x, axes=[rank - 1], begin=[index], end=[index + 1])
        return relax.op.astype(relax.op.permute_dims(relax.op.squeeze(piece, [rank - 1]), order),
                               wide)

    def apply(matrix: np.ndarray, operand: relax.Expr) -> relax.Expr:
        return relax.op.matmul(operand, const(matrix.astype(wide)))

    re_part = part(0)
    out_re = apply(cols_re.real, re_part)
    out_im = apply(cols_re.imag, re_part)
    if not real_in:
        im_part = part(1)
        out_re = relax.op.add(out_re, apply(cols_im.real, im_part))
        out_im = relax.op.add(out_im, apply(cols_im.imag, im_part))
    pieces = [out_re] if out_shape(node)[-1] == 1 else [out_re, out_im]
    stacked = [relax.op.expand_dims(relax.op.astype(relax.op.permute_dims(p, back), dt),
                                    [rank - 1]) for p in pieces]
    return stacked[0] if len(stacked) == 1 else relax.op.concat(stacked, axis=rank - 1)


def _transform(inverse: bool, onesided: bool, n: int | None,
               length: int) -> Callable[[np.ndarray], np.ndarray]:
    """The complex vector -> complex vector map ONNX's DFT applies along the signal axis."""
    if inverse and onesided:
        size = n or 2 * (length - 1)
        return lambda v: np.fft.irfft(v, size).astype(complex)
    size = n or length
    if inverse:
        return lambda v: np.fft.ifft(v, size)
    if onesided:
        return lambda v: np.fft.fft(v, size)[: size // 2 + 1]
    return lambda v: np.fft.fft(v, size)

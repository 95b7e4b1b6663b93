"""Inverses of windowed ops: MaxUnpool (undo MaxPool with its indices) and Col2Im (undo im2col,
summing overlapping blocks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tvm import relax, te, tirx

from hcompile.ops.common import const_ints, dtype, ints, out_shape, scalar, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("MaxUnpool", since=9, static_inputs=(2,))
@register("MaxUnpool", since=11, static_inputs=(2,))
def lower_max_unpool(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Y.flat[I.flat] = X.flat on a zero tensor of the shape MaxPool came from: I indexes
    the whole tensor, batch and channel included (MaxPool's Indices convention). A larger
    ``output_shape`` pads that result with zeros at the end of each axis, as ONNX's reference
    does (ONNX Runtime instead reads the indices in the output_shape layout)."""
    dims, out_dims = shape(ctx, node), out_shape(node)
    if shape(ctx, node, 1) != dims:
        raise unsupported(node, "indices whose shape differs from the input's")
    pooled = _unpooled_shape(node, dims)
    if any(o < p for o, p in zip(out_dims, pooled, strict=True)):
        raise unsupported(node, f"output_shape {list(out_dims)} smaller than {pooled}")
    total = math.prod(pooled)
    dt = dtype(ctx, node)
    indices = relax.op.reshape(ctx.input(node, 1), [-1])
    if dtype(ctx, node, 1) != "int64":
        indices = relax.op.astype(indices, "int64")
    # Indices outside the output are undefined in ONNX: clamp them rather than write anywhere.
    indices = relax.op.clip(indices, 0, max(total - 1, 0))
    flat = relax.op.broadcast_to(scalar(0, dt), [total])
    values = relax.op.reshape(ctx.input(node, 0), [-1])
    y = relax.op.reshape(relax.op.scatter_elements(flat, indices, values, axis=0), pooled)
    if list(out_dims) == pooled:
        return [y]
    widths = [w for o, p in zip(out_dims, pooled, strict=True) for w in (0, o - p)]
    return [relax.op.nn.pad(y, widths)]


def _unpooled_shape(node: Node, dims: Sequence[int]) -> list[int]:
    rank = len(dims) - 2
    kernel = ints(node.attr("kernel_shape")) or []
    if len(kernel) != rank:
        raise unsupported(node, "kernel_shape", kernel)
    strides = ints(node.attr("strides")) or [1] * rank
    pads = ints(node.attr("pads")) or [0] * (2 * rank)
    return [dims[0], dims[1], *((dims[d + 2] - 1) * strides[d] - pads[d] - pads[d + rank]
                                 + kernel[d] for d in range(rank))]


@register("Col2Im", since=18, static_inputs=(1, 2))
def lower_col2im(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """out[n, c, p] = sum over block offsets k of in[n, c*K + k, l] where block l covers p at
    offset k. Written as a gather over the K offsets, so no scatter is needed."""
    image = const_ints(ctx, node, 1) or []
    block = const_ints(ctx, node, 2) or []
    rank = len(image)
    if rank == 0 or len(block) != rank:
        raise unsupported(node, f"image_shape {image} with block_shape {block}")
    dilations = ints(node.attr("dilations")) or [1] * rank
    strides = ints(node.attr("strides")) or [1] * rank
    pads = ints(node.attr("pads")) or [0] * (2 * rank)
    blocks = [
        (image[d] + pads[d] + pads[d + rank] - dilations[d] * (block[d] - 1) - 1) // strides[d] + 1
        for d in range(rank)
    ]
    n, ck, length = shape(ctx, node)
    if length != math.prod(blocks) or ck % math.prod(block):
        raise unsupported(node, f"an input of shape {[n, ck, length]} for blocks {blocks}")
    geometry = _Col2ImGeometry(block, blocks, dilations, strides, pads[:rank])

    def build(cols: Any) -> Any:
        return te.compute(out_shape(node), lambda *i: geometry.element(cols, i), name="col2im")

    return [ctx.bb.emit_te(build, ctx.input(node, 0), primfunc_name_hint="col2im")]


class _Col2ImGeometry:
    def __init__(self, block: list[int], blocks: list[int], dilations: list[int],
                 strides: list[int], begins: list[int]):
        self.block, self.blocks = block, blocks
        self.dilations, self.strides, self.begins = dilations, strides, begins

    def element(self, cols: Any, index: Sequence[Any]) -> Any:
        n, c, where = index[0], index[1], list(index[2:])
        total = None
        for offset in range(math.prod(self.block)):
            ks = _unravel(offset, self.block)
            ok, position = None, None
            for d, k in enumerate(ks):
                # The block l_d starts at l_d * stride - pad and reaches p at offset k.
                start = where[d] + self.begins[d] - k * self.dilations[d]
                l_d = tirx.floordiv(start, self.strides[d])
                fits = tirx.And(tirx.And(start >= 0, tirx.floormod(start, self.strides[d]) == 0),
                                l_d < self.blocks[d])
                ok = fits if ok is None else tirx.And(ok, fits)
                l_d = tirx.max(tirx.min(l_d, self.blocks[d] - 1), 0)
                position = l_d if position is None else position * self.blocks[d] + l_d
            channel = c * math.prod(self.block) + offset
            term = tirx.Select(ok, cols[n, channel, position], tirx.const(0, cols.dtype))
            total = term if total is None else total + term
        return total


def _unravel(flat: int, dims: Sequence[int]) -> list[int]:
    out = []
    for size in reversed(dims):
        out.append(flat % size)
        flat //= size
    return out[::-1]

"""Conv and ConvTranspose over 1, 2 or 3 spatial dims (NC... layout), with groups and bias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tvm import relax

from hcompile.ops.common import attr_str, ints, out_shape, shape, unsupported
from hcompile.ops.registry import register
from hcompile.ops.window import window

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_CONV = {1: relax.op.nn.conv1d, 2: relax.op.nn.conv2d, 3: relax.op.nn.conv3d}
_CONV_T = {
    1: relax.op.nn.conv1d_transpose,
    2: relax.op.nn.conv2d_transpose,
    3: relax.op.nn.conv3d_transpose,
}


@register("Conv", since=11)
def lower_conv(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x, w, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    y = conv(ctx, node, x, w, x_index=0, w_index=1)
    return [_add_bias(y, bias, out_shape(node)[1], len(shape(ctx, node)) - 2)]


def conv(ctx: LowerContext, node: Node, x: relax.Expr, w: relax.Expr, *, x_index: int,
         w_index: int, out_dtype: str = "") -> relax.Expr:
    """Conv of ``x`` by ``w`` with ``node``'s window attributes (Conv, ConvInteger, QLinearConv);
    ``x_index`` / ``w_index`` say which node inputs give the shapes."""
    x_shape, w_shape = shape(ctx, node, x_index), shape(ctx, node, w_index)
    rank = len(x_shape) - 2
    if rank not in _CONV:
        raise unsupported(node, f"a {len(x_shape)}-D input (1-3 spatial dims are supported)")
    kernel = ints(node.attr("kernel_shape")) or list(w_shape[2:])
    win = window(node, x_shape[2:], kernel)
    return _CONV[rank](
        x,
        w,
        strides=win.strides,
        padding=win.pads,
        dilation=win.dilations,
        groups=int(node.attr("group", 1)),
        out_dtype=out_dtype or None,
    )


@register("ConvTranspose", since=11)
def lower_conv_transpose(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Transposed conv, with the ONNX padding rules mapped onto Relax's.

    The full (unpadded) result has length ``stride * (in - 1) + effective_kernel`` per axis;
    ONNX's output is that shifted left by the begin pad and cut to the output size, or extended
    with zeros (output_padding, an output_shape beyond the full size), which Relax's
    padding / output_padding express whenever the extension is shorter than the stride, as
    ONNX Runtime requires.
    """
    x, w, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    x_shape, w_shape = shape(ctx, node, 0), shape(ctx, node, 1)
    rank = len(x_shape) - 2
    if rank not in _CONV_T:
        raise unsupported(node, f"a {len(x_shape)}-D input (1-3 spatial dims are supported)")
    kernel = ints(node.attr("kernel_shape")) or list(w_shape[2:])
    win = window(_without_auto_pad(node), x_shape[2:], kernel)
    begins = _transpose_begin_pads(node, x_shape[2:], win.strides, win.effective_kernel, win.pads)
    full_sizes = [
        s * (n - 1) + k
        for n, s, k in zip(x_shape[2:], win.strides, win.effective_kernel, strict=True)
    ]
    sizes = out_shape(node)[2:]
    native = _native_padding(begins, full_sizes, sizes, win.strides)
    if native is None:
        raise unsupported(node, f"an output size {list(sizes)} beyond what the strides allow")
    pads, output_padding = native
    y = _CONV_T[rank](
        x,
        w,
        strides=win.strides,
        padding=pads,
        output_padding=output_padding,
        dilation=win.dilations,
        groups=int(node.attr("group", 1)),
    )
    return [_add_bias(y, bias, out_shape(node)[1], rank)]


def _native_padding(
    begins: list[int], full_sizes: list[int], sizes: tuple[int, ...], strides: list[int]
) -> tuple[list[int], list[int]] | None:
    """(padding, output_padding) for Relax's conv_transpose, or None when it cannot say it."""
    ends, extra = [], []
    for begin, full, size, stride in zip(begins, full_sizes, sizes, strides, strict=True):
        end = full - begin - size
        if begin < 0 or -end >= stride:
            return None
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    return begins + ends, extra


def _without_auto_pad(node: Node) -> Node:
    """A copy of ``node`` whose auto_pad the forward-window parser ignores (handled here)."""
    attrs = {k: v for k, v in node.attrs.items() if k != "auto_pad"}
    return replace(node, attrs=attrs)


def _transpose_begin_pads(
    node: Node,
    spatial: tuple[int, ...],
    strides: list[int],
    effective_kernel: list[int],
    pads: list[int],
) -> list[int]:
    """Begin pad per axis: ``pads``, or split from the total for output_shape / auto_pad."""
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    output_shape = ints(node.attr("output_shape"))
    if output_shape is None and auto_pad in ("NOTSET", "VALID"):
        return pads[: len(spatial)] if auto_pad == "NOTSET" else [0] * len(spatial)
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise unsupported(node, "auto_pad", auto_pad)
    output_padding = ints(node.attr("output_padding")) or [0] * len(spatial)
    if output_shape is None:
        output_shape = [n * s for n, s in zip(spatial, strides, strict=True)]
    output_shape = output_shape[-len(spatial) :]
    begins = []
    for n, s, k, op, out in zip(
        spatial, strides, effective_kernel, output_padding, output_shape, strict=True
    ):
        total = max(0, s * (n - 1) + op + k - out)  # ONNX Runtime never pads negatively
        # ONNX Runtime puts the larger half at the end for SAME_UPPER (and for NOTSET).
        begins.append(total - total // 2 if auto_pad == "SAME_LOWER" else total // 2)
    return begins


def _add_bias(y: relax.Expr, bias: relax.Expr | None, channels: int, rank: int) -> relax.Expr:
    if bias is None:
        return y
    # Rank of y (a leading 1): layout conversion (the CPU's blocked convs) can then carry the
    # add over to the blocked layout instead of converting y back for it.
    return relax.op.add(y, relax.op.reshape(bias, [1, channels] + [1] * rank))

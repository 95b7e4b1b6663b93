"""DeformConv (opset 19, 2-D): a convolution whose kernel taps are moved by run-time offsets.

Lowered as deformable im2col + matmul: one TE stage samples every (channel, tap, output pixel)
bilinearly at its offset position (zero outside the input, GridSample with align_corners=1 in
ONNX's reference) and multiplies by the mask; a grouped matmul with the weights follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tvm import relax, te, tirx

from hcompile.ops.common import dtype, ints, out_shape, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("DeformConv", since=19)
def lower_deform_conv(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    x_dims, w_dims = shape(ctx, node, 0), shape(ctx, node, 1)
    if len(x_dims) != 4:
        raise unsupported(node, f"a {len(x_dims)}-D input (2-D DeformConv only)")
    n, channels = x_dims[:2]
    out_channels = w_dims[0]
    kernel = ints(node.attr("kernel_shape")) or list(w_dims[2:])
    group = int(node.attr("group", 1))
    offset_group = int(node.attr("offset_group", 1))
    if channels % group or out_channels % group or channels % offset_group:
        raise unsupported(node, f"group={group}, offset_group={offset_group} for "
                                f"{channels} -> {out_channels} channels")
    out_hw = list(out_shape(node)[2:])
    geometry = _Geometry(list(x_dims[2:]), kernel, ints(node.attr("strides")) or [1, 1],
                         ints(node.attr("dilations")) or [1, 1],
                         ints(node.attr("pads")) or [0, 0, 0, 0], channels // offset_group)
    args = [ctx.input(node, 0), ctx.input(node, 2)]
    mask = ctx.input(node, 4)
    if mask is not None:
        args.append(mask)
    cols_shape = (n, channels, kernel[0], kernel[1], *out_hw)
    cols = ctx.bb.emit_te(lambda *t: te.compute(cols_shape, lambda *i: geometry.sample(t, i),
                                                name="deform_im2col"),
                          *args, primfunc_name_hint="deform_im2col")
    taps = kernel[0] * kernel[1]
    per_group = channels // group
    cols = relax.op.reshape(cols, [n, group, per_group * taps, out_hw[0] * out_hw[1]])
    weights = relax.op.reshape(ctx.input(node, 1),
                               [1, group, out_channels // group, per_group * taps])
    if dtype(ctx, node, 1) != dtype(ctx, node, 0):
        raise unsupported(node, "weights of another type than the input")
    y = relax.op.reshape(relax.op.matmul(weights, cols), [n, out_channels, *out_hw])
    bias = ctx.input(node, 3)
    if bias is not None:
        y = relax.op.add(y, relax.op.reshape(bias, [1, out_channels, 1, 1]))
    return [y]


class _Geometry:
    def __init__(self, size: list[int], kernel: list[int], strides: list[int],
                 dilations: list[int], pads: list[int], per_offset_group: int):
        self.size, self.kernel, self.strides = size, kernel, strides
        self.dilations, self.pads, self.per_offset_group = dilations, pads, per_offset_group

    def sample(self, tensors: Sequence[Any], index: Sequence[Any]) -> Any:
        """x[b, c] sampled at output pixel (i, j)'s tap (kh, kw), times the mask."""
        x, offset = tensors[0], tensors[1]
        b, c, kh, kw, i, j = index
        g = c // self.per_offset_group
        # offset channels: (offset_group, kH, kW, 2 = (dy, dx)); mask: (offset_group, kH, kW)
        tap = (g * self.kernel[0] + kh) * self.kernel[1] + kw
        wide = "float64" if x.dtype == "float64" else "float32"
        y = (tirx.Cast(wide, i * self.strides[0] - self.pads[0] + kh * self.dilations[0])
             + tirx.Cast(wide, offset[b, tap * 2, i, j]))
        xx = (tirx.Cast(wide, j * self.strides[1] - self.pads[1] + kw * self.dilations[1])
              + tirx.Cast(wide, offset[b, tap * 2 + 1, i, j]))
        value = self._bilinear(x, b, c, y, xx, wide)
        if len(tensors) > 2:
            value = value * tirx.Cast(wide, tensors[2][b, tap, i, j])
        return tirx.Cast(x.dtype, value)

    def _bilinear(self, x: Any, b: Any, c: Any, y: Any, xx: Any, wide: str) -> Any:
        """Bilinear interpolation with zeros outside the input (each corner checked)."""
        y0, x0 = tirx.floor(y), tirx.floor(xx)
        ty, tx = y - y0, xx - x0
        iy, ix = tirx.Cast("int64", y0), tirx.Cast("int64", x0)
        total = None
        for dy, wy in ((0, 1.0 - ty), (1, ty)):
            for dx, wx in ((0, 1.0 - tx), (1, tx)):
                row, col = iy + dy, ix + dx
                inside = tirx.And(tirx.And(row >= 0, row < self.size[0]),
                                  tirx.And(col >= 0, col < self.size[1]))
                safe = (tirx.max(tirx.min(row, self.size[0] - 1), 0),
                        tirx.max(tirx.min(col, self.size[1] - 1), 0))
                value = tirx.Select(inside, tirx.Cast(wide, x[(b, c, *safe)]),
                                    tirx.const(0.0, wide))
                term = value * wy * wx
                total = term if total is None else total + term
        return total

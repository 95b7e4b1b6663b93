"""RoiAlign (opsets 10 and 16): average or max of bilinear samples on a regular grid inside each
output bin of each region of interest, following ONNX's reference (ONNX Runtime's kernel).

The regions are run-time data, so the sample positions are computed in TE: one stage for the
row and column sample coordinates of every region, then a reduction over each bin's samples.
The adaptive grid (sampling_ratio=0: ceil(roi size / bins) samples per bin) makes the loop
extents depend on the region values and is not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tvm import relax, te, tirx

from hcompile.ops.common import attr_str, check_choice, out_shape, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("RoiAlign", since=10)
def lower_roi_align_10(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    return [_roi_align(ctx, node, half_pixel=False)]


@register("RoiAlign", since=16)
def lower_roi_align_16(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    mode = attr_str(node, "coordinate_transformation_mode", "half_pixel")
    check_choice(node, "coordinate_transformation_mode", mode,
                 ["half_pixel", "output_half_pixel"])
    return [_roi_align(ctx, node, half_pixel=mode == "half_pixel")]


def _roi_align(ctx: LowerContext, node: Node, *, half_pixel: bool) -> relax.Expr:
    mode = attr_str(node, "mode", "avg")
    check_choice(node, "mode", mode, ["avg", "max"])
    ratio = int(node.attr("sampling_ratio", 0))
    if ratio <= 0:
        raise unsupported(node, "sampling_ratio", ratio,
                          hint="the adaptive sample grid (0) depends on the region values; "
                               "give sampling_ratio > 0")
    dims = shape(ctx, node)
    if len(dims) != 4:
        raise unsupported(node, f"a {len(dims)}-D input (N, C, H, W expected)")
    out = out_shape(node)
    grid = _Grid(dims, out[2], out[3], ratio, float(node.attr("spatial_scale", 1.0)), half_pixel)
    x, rois, batch = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)

    def build(data: Any, boxes: Any, which: Any) -> Any:
        rows = te.compute((out[0], out[2], ratio), lambda r, p, s: grid.position(boxes, r, p, s, 1),
                          name="roi_rows")
        cols = te.compute((out[0], out[3], ratio), lambda r, p, s: grid.position(boxes, r, p, s, 0),
                          name="roi_cols")
        sy = te.reduce_axis((0, ratio), name="sy")
        sx = te.reduce_axis((0, ratio), name="sx")

        def sample(r: Any, c: Any, ph: Any, pw: Any) -> Any:
            return grid.sample(data, which, r, c, rows[r, ph, sy], cols[r, pw, sx], mode)

        if mode == "max":
            return te.compute(out, lambda *i: te.max(sample(*i), axis=[sy, sx]), name="roi_align")
        summed = te.compute(out, lambda *i: te.sum(sample(*i), axis=[sy, sx]), name="roi_sum")
        return te.compute(out, lambda *i: summed[i] / float(ratio * ratio), name="roi_align")

    return ctx.bb.emit_te(build, x, rois, batch, primfunc_name_hint="roi_align")


class _Grid:
    def __init__(self, dims: Sequence[int], bins_h: int, bins_w: int, ratio: int, scale: float,
                 half_pixel: bool):
        self.height, self.width = dims[2], dims[3]
        self.batch = dims[0]
        self.bins = (bins_w, bins_h)  # indexed by the box coordinate: 0 = x, 1 = y
        self.ratio, self.scale, self.half_pixel = ratio, scale, half_pixel

    def position(self, boxes: Any, r: Any, p: Any, s: Any, axis: int) -> Any:
        """Sample coordinate s of bin p of region r along x (axis 0) or y (axis 1)."""
        dt = boxes.dtype
        offset = 0.5 if self.half_pixel else 0.0
        start = boxes[r, axis] * self.scale - offset
        extent = boxes[r, axis + 2] * self.scale - offset - start
        if not self.half_pixel:  # the legacy mode makes every region at least 1 pixel wide
            extent = tirx.max(extent, tirx.const(1.0, dt))
        size = extent / float(self.bins[axis])
        return (start + tirx.Cast(dt, p) * size
                + (tirx.Cast(dt, s) + 0.5) * (size / float(self.ratio)))

    def sample(self, data: Any, which: Any, r: Any, c: Any, y: Any, x: Any, mode: str) -> Any:
        """Bilinear value at (y, x); 0 beyond one pixel outside the input. In max mode, the
        largest of the four weighted corners (the reference's definition)."""
        outside = tirx.Or(tirx.Or(y < -1.0, y > float(self.height)),
                          tirx.Or(x < -1.0, x > float(self.width)))
        n = tirx.max(tirx.min(tirx.Cast("int64", which[r]), self.batch - 1), 0)
        y_low, y_high, ly = _axis(y, self.height, data.dtype)
        x_low, x_high, lx = _axis(x, self.width, data.dtype)
        corners = [(y_low, x_low, (1.0 - ly) * (1.0 - lx)), (y_low, x_high, (1.0 - ly) * lx),
                   (y_high, x_low, ly * (1.0 - lx)), (y_high, x_high, ly * lx)]
        terms = [w * data[n, c, row, col] for row, col, w in corners]
        combined = terms[0]
        for term in terms[1:]:
            combined = tirx.max(combined, term) if mode == "max" else combined + term
        return tirx.Select(outside, tirx.const(0.0, data.dtype), combined)


def _axis(v: Any, size: int, dt: str) -> tuple[Any, Any, Any]:
    """(low index, high index, fraction) along one axis, clamped as the reference does."""
    v = tirx.max(tirx.Cast(dt, v), tirx.const(0.0, dt))
    low = tirx.min(tirx.Cast("int64", v), size - 1)
    at_end = tirx.Cast("int64", v) >= size - 1
    high = tirx.Select(at_end, low, low + 1)
    frac = tirx.Select(at_end, tirx.const(0.0, dt), v - tirx.Cast(dt, low))
    return low, high, frac

"""GridSample (opsets 16 and 20): nearest / linear / cubic sampling of N-D data at run-time grid
points, with zeros / border / reflection padding, following ONNX's reference evaluator.

The sample positions come from a run-time tensor, so the lowering is one TE compute whose
loads use computed indices. Every tap index is clamped into the input before it is read (a
NaN or huge grid value must never read out of bounds); zeros padding masks the value instead.
Coordinates are computed in float32 (float64 for float64 data), as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tvm import relax, te, tirx

from hcompile.ops.common import attr_str, check_choice, dtype, is_float, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

#: opset 16 names -> opset 20 names
_MODE_ALIASES = {"bilinear": "linear", "bicubic": "cubic"}
_CUBIC_ALPHA = -0.75


@register("GridSample", since=16)
def lower_grid_sample_16(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    mode = attr_str(node, "mode", "bilinear")
    check_choice(node, "mode", mode, ["bilinear", "nearest", "bicubic"])
    if len(shape(ctx, node)) != 4:
        raise unsupported(node, "a non-4-D input at opset 16 (N-D needs opset 20)")
    return [_grid_sample(ctx, node, _MODE_ALIASES.get(mode, mode))]


@register("GridSample", since=20)
def lower_grid_sample_20(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    mode = attr_str(node, "mode", "linear")
    check_choice(node, "mode", mode, ["linear", "nearest", "cubic"])
    return [_grid_sample(ctx, node, mode)]


def _grid_sample(ctx: LowerContext, node: Node, mode: str) -> relax.Expr:
    padding = attr_str(node, "padding_mode", "zeros")
    check_choice(node, "padding_mode", padding, ["zeros", "border", "reflection"])
    align = bool(node.attr("align_corners", 0))
    dims, grid_dims = shape(ctx, node, 0), shape(ctx, node, 1)
    spatial = dims[2:]
    if len(grid_dims) != len(dims) or grid_dims[-1] != len(spatial) or grid_dims[0] != dims[0]:
        raise unsupported(node, f"grid of shape {list(grid_dims)} for input {list(dims)}")
    if not (is_float(dtype(ctx, node, 0)) and is_float(dtype(ctx, node, 1))):
        raise unsupported(node, "non-float input or grid")
    if mode == "cubic" and len(spatial) > 3:
        raise unsupported(node, "cubic mode beyond 3 spatial dims")
    wide = "float64" if "float64" in (dtype(ctx, node, 0), dtype(ctx, node, 1)) else "float32"
    sampler = _Sampler(spatial, mode, padding, align, wide)
    out_shape = (dims[0], dims[1], *grid_dims[1:-1])
    return ctx.bb.emit_te(sampler.compute(out_shape), ctx.input(node, 0), ctx.input(node, 1),
                          primfunc_name_hint="grid_sample")


class _Sampler:
    """Builds the staged TE computation; ``wide`` is the dtype of coordinates and weights."""

    def __init__(self, spatial: Sequence[int], mode: str, padding: str, align: bool, wide: str):
        self.spatial, self.mode, self.padding, self.align, self.wide = (
            list(spatial), mode, padding, align, wide)
        # Valid coordinate range per axis: pixel centres (align_corners) or pixel edges.
        self.lo = [0.0 if align else -0.5 for _ in spatial]
        self.hi = [d - 1.0 if align else d - 0.5 for d in spatial]

    @property
    def taps(self) -> int:
        return {"nearest": 1, "linear": 2, "cubic": 4}[self.mode]

    def compute(self, out_shape: tuple[int, ...]) -> Callable[[Any, Any], Any]:
        def build(data: Any, grid: Any) -> Any:
            # Staged (coordinates, then tap indices and weights, then the weighted sum): one
            # inlined expression would repeat the coordinate math in each of the up to 4**D
            # taps, and TIR's simplifier takes minutes on the result.
            rank = len(self.spatial)
            coords = te.compute((*grid.shape[:-1], rank),
                                lambda *i: self.coordinate(grid, i), name="grid_coords")
            tap_shape = (*grid.shape[:-1], rank, self.taps)
            index = te.compute(tap_shape, lambda *i: self.tap_index(coords, i), name="grid_index")
            weight = None
            if self.mode != "nearest":
                weight = te.compute(tap_shape, lambda *i: self.tap_weight(coords, i),
                                    name="grid_weight")
            # A reduction over the taps: CPU schedules keep the inputs of a reduction
            # materialised (not inlined), which is what keeps the code small.
            combo = te.reduce_axis((0, self.taps ** rank), name="tap")
            total = te.compute(out_shape, lambda *i: te.sum(
                self.term(data, index, weight, i, combo), axis=combo), name="grid_sample")
            if total.dtype == data.dtype:
                return total
            return te.compute(out_shape, lambda *i: tirx.Cast(data.dtype, total[i]),
                              name="grid_sample_cast")

        return build

    def coordinate(self, grid: Any, index: Sequence[Any]) -> Any:
        """Coordinate along spatial axis index[-1] (the grid lists x, y, z: reversed)."""
        *where, axis = index
        rank = len(self.spatial)
        picked = tirx.Cast(self.wide, grid[(*where, rank - 1 - axis)])
        return _per_axis(axis, [self._source(picked, d) for d in range(rank)])

    def tap_index(self, coords: Any, index: Sequence[Any]) -> Any:
        """Input index of tap index[-1] along axis index[-2], padding applied; -1 marks a tap
        outside the input under zeros padding."""
        *where, axis, tap = index
        x = coords[(*where, axis)]
        first = tirx.Cast("int64", x if self.mode == "nearest" else tirx.floor(x))
        i = first + tirx.Cast("int64", tap) - (1 if self.mode == "cubic" else 0)
        return _per_axis(axis, [self._fix_index(i, d) for d in range(len(self.spatial))])

    def tap_weight(self, coords: Any, index: Sequence[Any]) -> Any:
        *where, axis, tap = index
        x = coords[(*where, axis)]
        t = x - tirx.floor(x)
        weights = [1.0 - t, t] if self.mode == "linear" else _cubic_weights(t)
        return _per_axis(tap, weights)

    def term(self, data: Any, index: Any, weight: Any, at: Sequence[Any], combo: Any) -> Any:
        """The weighted input value of tap combination ``combo`` (one tap per axis)."""
        n, c, where = at[0], at[1], list(at[2:])
        rank = len(self.spatial)
        taps = [tirx.floormod(tirx.floordiv(combo, self.taps ** (rank - 1 - d)), self.taps)
                for d in range(rank)]
        picks = [index[(n, *where, d, t)] for d, t in enumerate(taps)]
        value = tirx.Cast(self.wide, data[(n, c, *(tirx.max(i, 0) for i in picks))])
        if self.padding == "zeros":
            inside = picks[0] >= 0
            for i in picks[1:]:
                inside = tirx.And(inside, i >= 0)
            value = tirx.Select(inside, value, tirx.const(0.0, self.wide))
        if weight is not None:
            for d, t in enumerate(taps):
                value = value * weight[(n, *where, d, t)]
        return value

    def _source(self, g: Any, axis: int) -> Any:
        """Denormalised coordinate along ``axis``, rounded (nearest) and brought into range."""
        size = float(self.spatial[axis])
        x = (g + 1.0) / 2.0 * (size - 1.0) if self.align else ((g + 1.0) * size - 1.0) / 2.0
        x = tirx.Cast(self.wide, x)
        if self.mode == "nearest":
            x = tirx.nearbyint(x)  # round half to even, as the reference (np.rint)
        lo, hi = self.lo[axis], self.hi[axis]
        outside = tirx.Or(x < lo, x > hi)
        if self.padding == "border":
            return tirx.Select(outside, tirx.max(tirx.min(x, size - 1.0), 0.0), x)
        if self.padding == "reflection":
            return _reflect(x, lo, hi)
        return x

    def _fix_index(self, i: Any, axis: int) -> Any:
        """Tap index ``i`` on ``axis`` under the padding rule, always within [-1, size)."""
        size = self.spatial[axis]
        if self.padding == "reflection":
            i = _reflect_index(i, size, self.align)
        elif self.padding == "zeros":
            return tirx.Select(tirx.And(i >= 0, i < size), i, tirx.const(-1, "int64"))
        return tirx.max(tirx.min(i, size - 1), 0)


def _per_axis(selector: Any, values: Sequence[Any]) -> Any:
    """values[selector] for a loop variable ``selector`` (a Select chain)."""
    chosen = values[-1]
    for k in range(len(values) - 2, -1, -1):
        chosen = tirx.Select(selector == k, values[k], chosen)
    return chosen

def _reflect(x: Any, lo: float, hi: float) -> Any:
    """Fold ``x`` back into [lo, hi] by mirroring at the borders, repeatedly: the reference's
    loop in closed form (period 2 * span), with ``x`` written few times (TIR has no CSE
    before its simplifier runs, which is slow on large expressions)."""
    span = hi - lo
    if span <= 0:  # a size-1 axis with align_corners: every coordinate maps to 0
        return tirx.const(lo, x.ty.dtype)
    shifted = x - lo
    t = shifted - tirx.floor(shifted / (2 * span)) * (2 * span)
    return tirx.Select(tirx.Or(x < lo, x > hi), lo + tirx.Select(t <= span, t, 2 * span - t), x)


def _reflect_index(i: Any, size: int, align: bool) -> Any:
    """The integer tap index ``i`` reflected into [0, size): period 2 * size around the pixel
    edges, 2 * (size - 1) around the pixel centres (align_corners)."""
    period = 2 * (size - 1) if align else 2 * size
    if period == 0:
        return tirx.const(0, i.ty.dtype)
    m = tirx.floormod(i, period)
    return tirx.Select(m < size, m, period - m - (0 if align else 1))


def _cubic_weights(t: Any) -> list[Any]:
    """Keys cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 from floor(x)."""
    a = _CUBIC_ALPHA

    def near(d: Any) -> Any:
        return ((a + 2) * d - (a + 3)) * d * d + 1.0

    def far(d: Any) -> Any:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]

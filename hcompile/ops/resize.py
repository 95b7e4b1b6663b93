"""Resize (opsets 11-19): nearest / linear / cubic over any axes, every coordinate mode.

Resizing is separable, and every shape is static, so each resized axis becomes a few gathers
with compile-time indices ("taps") and per-position weights: 1 tap for nearest, 2 for linear,
4 for cubic. Source coordinates are computed in float32, as ONNX Runtime does, so nearest
rounding ties land on the same pixels. Indices outside the input are clamped (edge padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import (
    attr_str,
    check_choice,
    const,
    ints,
    is_float,
    norm_axes,
    out_shape,
    scalar,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
)
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
F32 = np.float32


@register("Resize", since=11, static_inputs=(1, 2, 3))
def lower_resize(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims, out_dims = shape(ctx, node), out_shape(node)
    mode = attr_str(node, "mode", "nearest")
    check_choice(node, "mode", mode, ["nearest", "linear", "cubic"])
    coord_mode = attr_str(node, "coordinate_transformation_mode", "half_pixel")
    check_choice(node, "coordinate_transformation_mode", coord_mode, _COORDINATE_MODES)
    if mode != "nearest" and not is_float(ctx.input_type(node, 0).dtype):
        raise unsupported(node, f"mode={mode!r} on {ctx.input_type(node, 0).dtype} data")
    axes = _axes(node, len(dims))
    scales = _scales(ctx, node, dims, out_dims, axes)
    if int(node.attr("antialias", 0)) and any(scales[a] < 1 for a in axes) and mode != "nearest":
        raise unsupported(node, "antialias", 1, hint="antialiased downsampling is not supported")
    roi = _roi(ctx, node, len(dims), axes)
    x, dt = ctx.input(node, 0), ctx.input_type(node, 0).dtype
    outside = []
    for axis in axes:
        coords = _source_coords(coord_mode, dims[axis], out_dims[axis], scales[axis], roi[axis])
        indices, weights = _taps(node, mode, coords, dims[axis])
        x = _apply_taps(ctx, x, axis, len(dims), indices, weights, dt)
        if coord_mode == "tf_crop_and_resize":
            outside.append(_broadcast_along(_outside(coords, dims[axis]), axis, len(dims)))
    if outside and any(mask.any() for mask in outside):
        mask = np.logical_or.reduce(np.broadcast_arrays(*outside))
        fill = scalar(float(node.attr("extrapolation_value", 0.0)), dt)
        x = relax.op.where(const(mask), fill, x)
    return [x]


def _axes(node: Node, rank: int) -> list[int]:
    axes = ints(node.attr("axes")) if node.opset >= 18 else None
    return list(range(rank)) if axes is None else norm_axes(node, axes, rank)


def _scales(
    ctx: LowerContext, node: Node, dims: tuple[int, ...], out_dims: tuple[int, ...], axes: list[int]
) -> dict[int, float]:
    """The scale per resized axis: the ``scales`` input, or output / input size from ``sizes``."""
    given = ctx.const(node, 2)
    if given is not None and given.size:
        values = [float(v) for v in np.asarray(given, F32).reshape(-1)]
        if len(values) == len(dims) and len(axes) != len(dims):
            values = [values[a] for a in axes]
        if len(values) != len(axes) or min(values) <= 0:
            raise unsupported(node, "scales", values)
        return dict(zip(axes, values, strict=True))
    sizes = ctx.const(node, 3)
    if sizes is None:
        raise unsupported(node, "neither scales nor sizes given")
    ratios = {a: float(F32(out_dims[a]) / F32(dims[a])) for a in axes}
    policy = attr_str(node, "keep_aspect_ratio_policy", "stretch")
    check_choice(node, "keep_aspect_ratio_policy", policy, ["stretch", "not_larger", "not_smaller"])
    if policy == "stretch" or node.opset < 18:
        return ratios
    requested = [float(F32(s) / F32(dims[a])) for a, s in zip(axes, ints(sizes) or [], strict=True)]
    common = min(requested) if policy == "not_larger" else max(requested)
    return dict.fromkeys(axes, common)


def _roi(
    ctx: LowerContext, node: Node, rank: int, axes: list[int]
) -> dict[int, tuple[float, float]]:
    """(start, end) per axis for tf_crop_and_resize; (0, 1) where not given."""
    value = ctx.const(node, 1)
    roi = {a: (0.0, 1.0) for a in range(rank)}
    if value is None or not value.size:
        return roi
    flat = [float(v) for v in np.asarray(value, F32).reshape(-1)]
    listed = axes if len(flat) == 2 * len(axes) else list(range(rank))
    if len(flat) != 2 * len(listed):
        raise unsupported(node, "roi", flat)
    for i, axis in enumerate(listed):
        roi[axis] = (flat[i], flat[i + len(listed)])
    return roi


def _source_coords(
    mode: str, size: int, out: int, scale: float, roi: tuple[float, float]
) -> np.ndarray:
    """Input coordinate (float32) of every output position along one axis."""
    y = np.arange(out, dtype=F32)
    s, n = F32(scale), F32(size)
    if mode == "half_pixel":
        return (y + F32(0.5)) / s - F32(0.5)
    if mode == "half_pixel_symmetric":
        adjustment = F32(out) / (s * n)
        offset = n / F32(2) * (F32(1) - adjustment)
        return offset + (y + F32(0.5)) / s - F32(0.5)
    if mode == "pytorch_half_pixel":
        return (y + F32(0.5)) / s - F32(0.5) if out > 1 else np.zeros(out, F32)
    if mode == "align_corners":
        return y * (n - 1) / F32(out - 1) if out > 1 else np.zeros(out, F32)
    if mode == "asymmetric":
        return y / s
    start, end = F32(roi[0]), F32(roi[1])
    if out == 1:
        return np.full(out, (end - start) * (n - 1) / F32(2) + start * (n - 1), F32)
    return start * (n - 1) + y * (end - start) * (n - 1) / F32(out - 1)


def _taps(node: Node, mode: str, coords: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (out, taps), clamped into the input, and their weights (out, taps)."""
    if mode == "nearest":
        index = _round(node, coords)
        return np.clip(index, 0, size - 1)[:, None], np.ones((len(coords), 1), F32)
    base = np.floor(coords)
    t = (coords - base).astype(F32)
    if mode == "linear":
        first = base.astype(np.int64)
        indices = np.stack([first, first + 1], axis=1)
        weights = np.stack([1 - t, t], axis=1)
    else:
        indices = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
        weights = _cubic_weights(t, float(node.attr("cubic_coeff_a", -0.75)))
        if int(node.attr("exclude_outside", 0)):
            weights = np.where((indices < 0) | (indices >= size), 0, weights)
            weights = weights / weights.sum(axis=1, keepdims=True)
    return np.clip(indices, 0, size - 1), weights.astype(F32)


def _round(node: Node, coords: np.ndarray) -> np.ndarray:
    rule = attr_str(node, "nearest_mode", "round_prefer_floor")
    check_choice(node, "nearest_mode", rule, _NEAREST_MODES)
    if rule == "round_prefer_floor":
        rounded = np.ceil(coords - F32(0.5))
    elif rule == "round_prefer_ceil":
        rounded = np.floor(coords + F32(0.5))
    else:
        rounded = np.floor(coords) if rule == "floor" else np.ceil(coords)
    return rounded.astype(np.int64)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x)."""
    distances = np.stack([t + 1, t, 1 - t, 2 - t], axis=1).astype(np.float64)
    near = ((a + 2) * distances - (a + 3)) * distances * distances + 1
    far = ((a * distances - 5 * a) * distances + 8 * a) * distances - 4 * a
    return np.where(distances <= 1, near, far)


def _apply_taps(
    ctx: LowerContext,
    x: relax.Expr,
    axis: int,
    rank: int,
    indices: np.ndarray,
    weights: np.ndarray,
    dt: str,
) -> relax.Expr:
    """sum over taps t of x[..., indices[:, t], ...] * weights[:, t] along ``axis``."""
    total = None
    for tap in range(indices.shape[1]):
        picked = relax.op.take(x, const(indices[:, tap]), axis=axis)
        if not np.all(weights[:, tap] == 1):
            factor = _broadcast_along(weights[:, tap].astype(dt), axis, rank)
            picked = relax.op.multiply(picked, const(factor))
        total = picked if total is None else relax.op.add(total, picked)
    return ctx.emit(total)


def _broadcast_along(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    return values.reshape([len(values) if i == axis else 1 for i in range(rank)])


def _outside(coords: np.ndarray, size: int) -> np.ndarray:
    return (coords < 0) | (coords > size - 1)

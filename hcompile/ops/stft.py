"""STFT and MelWeightMatrix (opset 17).

STFT: frames cut with compile-time gather indices, windowed, then a DFT as
constant cosine / sine matrices (as in spectral.py), accumulated in float64."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import (
    const,
    const_ints,
    dtype,
    out_dtype,
    out_shape,
    shape,
    unsupported,
)
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_WIDE = "float64"


@register("STFT", since=17, static_inputs=(1, 3))
def lower_stft(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims, dt = shape(ctx, node), dtype(ctx, node)
    if len(dims) != 3 or dims[2] not in (1, 2):
        raise unsupported(node, f"a signal of shape {list(dims)} ([batch, length, 1 or 2])")
    step = (const_ints(ctx, node, 1) or [0])[0]
    window = ctx.input(node, 2)
    given = const_ints(ctx, node, 3) if len(node.inputs) > 3 and node.inputs[3] else None
    if given:
        length = given[0]
    elif window is not None:
        length = shape(ctx, node, 2)[0]
    else:
        raise unsupported(node, "neither window nor frame_length given")
    if step <= 0 or length <= 0 or length > dims[1]:
        raise unsupported(node, f"frame_step={step} with frame_length={length}")
    frames, bins = out_shape(node)[1], out_shape(node)[2]
    starts = np.arange(frames, dtype="int64")[:, None] * step
    positions = (starts + np.arange(length, dtype="int64")[None, :]).reshape(-1)
    x = relax.op.take(ctx.input(node, 0), const(positions), axis=1)
    x = relax.op.astype(relax.op.reshape(x, [dims[0], frames, length, dims[2]]), _WIDE)
    if window is not None:
        x = relax.op.multiply(x, relax.op.reshape(relax.op.astype(window, _WIDE),
                                                  [1, 1, length, 1]))
    angle = 2 * np.pi * np.outer(np.arange(length), np.arange(bins)) / length
    cos, sin = const(np.cos(angle)), const(np.sin(angle))

    def part(index: int) -> relax.Expr:
        return relax.op.squeeze(relax.op.strided_slice(x, axes=[3], begin=[index],
                                                       end=[index + 1]), [3])

    re = part(0)
    out_re = relax.op.matmul(re, cos)
    out_im = relax.op.negative(relax.op.matmul(re, sin))
    if dims[2] == 2:  # (re + i im)(cos - i sin)
        im = part(1)
        out_re = relax.op.add(out_re, relax.op.matmul(im, sin))
        out_im = relax.op.add(out_im, relax.op.matmul(im, cos))
    stacked = relax.op.stack([out_re, out_im], axis=3)
    return [relax.op.astype(stacked, dt)]


@register("MelWeightMatrix", since=17, static_inputs=(0, 1, 2, 3, 4))
def lower_mel_weight_matrix(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    """Every input is a compile-time scalar: the matrix is a constant, built as ONNX's
    reference builds it (triangular filters between mel-spaced FFT bins)."""
    values = [np.asarray(ctx.const(node, i)).reshape(-1)[0] for i in range(5)]
    bins, length, rate = (int(v) for v in values[:3])
    low, high = float(values[3]), float(values[4])
    if bins <= 0 or length <= 0 or rate <= 0:
        raise unsupported(node, f"num_mel_bins={bins}, dft_length={length}, sample_rate={rate}")
    matrix = _mel_matrix(bins, length, rate, low, high)
    return [const(matrix.astype(out_dtype(node)))]


def _mel_matrix(bins: int, length: int, rate: int, low: float, high: float) -> np.ndarray:
    def to_mel(hz: float) -> float:
        return float(2595 * np.log1p(hz / 700) / np.log(10))

    edges = np.arange(bins + 2)
    step = (to_mel(high) - to_mel(low)) / edges.shape[0]
    hz = 700 * np.expm1((edges * step + to_mel(low)) / 2595 * np.log(10))
    points = (((length + 1) * hz) // rate).astype(int)
    out = np.zeros((length // 2 + 1, bins))
    for i in range(bins):
        left, centre, right = points[i], points[i + 1], points[i + 2]
        if centre == left:
            out[centre, i] = 1
        else:
            for j in range(left, centre + 1):
                out[j, i] = (j - left) / (centre - left)
        for j in range(centre, right):
            out[j, i] = (right - j) / (right - centre)
    return out

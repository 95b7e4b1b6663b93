"""hcompile::LSTMRecurrence: one LSTM direction's whole time loop as one hand-written CPU kernel.

``decompose_rnn`` emits it, after the hoisted input projection, when the CPU is the only
target (``passes/rnn_fused.py`` says which LSTMs qualify). Unrolled, the zoo's 2-layer LSTM
was 126 kernels of ~0.5-2 µs (a recurrent matvec, then the gates, per step, each a VM call);
as one kernel per layer the state never leaves the core between steps.

Inputs ``xp [T, N, 4H]`` (the input projection with both biases, gates i|o|f|c as in ONNX),
``rt [H, 4H]`` (Rᵀ), ``h0``/``c0 [N, H]`` and ``p [3H]`` (peepholes i|o|f); the last three are
optional (zeros). Outputs ``Y [T, N, H]``, ``Y_h`` and ``Y_c [N, H]``. Attributes ``reverse``,
``clip`` and ``input_forget`` follow ONNX LSTM.

The kernel: batch rows are independent through time, so blocks of rows run in parallel and
no step needs a barrier. Each block keeps ``R`` rows' states in per-thread buffers; a step is
``R`` row-vector x Rᵀ products with ``R x U`` vector accumulators in registers (each Rᵀ load
serves ``R`` rows: Rᵀ is 64 KiB for H=64, bigger than L1, so one row at a time was
L2-bound), then the gates, vectorised over the hidden units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tvm import relax, tirx
from tvm.script import tirx as T

from hcompile.ops.common import unsupported
from hcompile.ops.registry import register
from hcompile.runtime.tvm_cpu import physical_cores

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

#: float32 lanes of one vector register the kernel is written for (64 bytes: AVX-512; LLVM
#: splits it in two on AVX2 hosts, which costs nothing measurable at these sizes)
LANES = 16
#: rows sharing each load of Rᵀ, and vector accumulators per row (R x U registers)
MAX_ROWS, UNROLL = 4, 2

# Eigen's rational tanh (the one TVM's fast_tanh uses), clamped to +-9 where it is +-1 in
# float32: a few ulps, and vectorisable, where LLVM calls libm once per lane.
_TANH_NUM = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
             5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
             -2.76076847742355e-16)
_TANH_DEN = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
             1.19825839466702e-06)


def _f32(value: float) -> Any:
    return tirx.const(value, "float32")


def _poly(coefficients: Sequence[float], x2: Any) -> Any:
    result = _f32(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * x2 + _f32(c)
    return result


def tanh(x: Any) -> Any:
    """Vectorisable float32 tanh; NaN stays NaN (the clamp would make it a number)."""
    xc = tirx.max(tirx.min(x, _f32(9.0)), _f32(-9.0))
    x2 = xc * xc
    return tirx.Select(tirx.isnan(x), x, xc * _poly(_TANH_NUM, x2) / _poly(_TANH_DEN, x2))


def sigmoid(x: Any) -> Any:
    """``0.5 * tanh(x / 2) + 0.5``: sigmoid with tanh's accuracy and no exp."""
    return _f32(0.5) * tanh(_f32(0.5) * x) + _f32(0.5)


def _block_rows(batch: int, threads: int) -> int:
    """Rows per block: the largest divisor of ``batch`` up to MAX_ROWS that leaves at least
    ``threads`` blocks when the batch has that many rows (every core busy at batch 4)."""
    for rows in range(min(MAX_ROWS, batch), 0, -1):
        if batch % rows == 0 and (batch // rows >= threads or batch < threads):
            return rows
    return 1


def lstm_kernel(steps: int, batch: int, hidden: int, *, reverse: bool, clip: float | None,
                input_forget: bool) -> tirx.PrimFunc:
    """The scheduled PrimFunc of one direction (float32)."""
    gates = 4 * hidden
    lanes = math.gcd(hidden, LANES)  # vectors must tile H (and so 4H) exactly
    unroll = UNROLL if (gates // lanes) % UNROLL == 0 else 1
    rows = _block_rows(batch, physical_cores())
    blocks, hv, gb = batch // rows, hidden // lanes, gates // (lanes * unroll)

    def time_index(s: Any) -> Any:
        return steps - 1 - s if reverse else s

    def pre(value: Any) -> Any:  # ONNX clips every gate pre-activation
        return value if clip is None else tirx.max(tirx.min(value, _f32(clip)), _f32(-clip))

    @T.prim_func(private=True)
    def kernel(xp: T.Buffer((steps, batch, gates), "float32"),
               rt: T.Buffer((hidden, gates), "float32"),
               h0: T.Buffer((batch, hidden), "float32"),
               c0: T.Buffer((batch, hidden), "float32"),
               p: T.Buffer((3 * hidden,), "float32"),
               y: T.Buffer((steps, batch, hidden), "float32"),
               yh: T.Buffer((batch, hidden), "float32"),
               yc: T.Buffer((batch, hidden), "float32")) -> None:
        T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
        for blk in T.parallel(blocks):
            acc = T.alloc_buffer((rows, gates), "float32")
            h = T.alloc_buffer((rows, hidden), "float32")
            c = T.alloc_buffer((rows, hidden), "float32")
            for r, j in T.grid(rows, hidden):
                h[r, j] = h0[blk * rows + r, j]
                c[r, j] = c0[blk * rows + r, j]
            for s in range(steps):
                for g in range(gb):
                    # "local" with constant indices once unrolled: LLVM keeps it in registers
                    reg = T.alloc_buffer((rows, unroll, lanes), "float32", scope="local")
                    for r in T.unroll(rows):
                        for u in T.unroll(unroll):
                            for v in T.vectorized(lanes):
                                reg[r, u, v] = xp[time_index(s), blk * rows + r,
                                                  (g * unroll + u) * lanes + v]
                    for k in range(hidden):
                        for r in T.unroll(rows):
                            for u in T.unroll(unroll):
                                for v in T.vectorized(lanes):
                                    reg[r, u, v] = reg[r, u, v] + h[r, k] * rt[
                                        k, (g * unroll + u) * lanes + v]
                    for r in T.unroll(rows):
                        for u in T.unroll(unroll):
                            for v in T.vectorized(lanes):
                                acc[r, (g * unroll + u) * lanes + v] = reg[r, u, v]
                # The gates, in place in acc (i, then f), then c and h. No let-bound values
                # here: TVM 0.27 vectorises a LetStmt in a vectorised loop wrongly (every lane
                # got lane 0's value).
                for r, jo in T.grid(rows, hv):
                    for v in T.vectorized(lanes):
                        acc[r, jo * lanes + v] = sigmoid(pre(
                            acc[r, jo * lanes + v] + p[jo * lanes + v] * c[r, jo * lanes + v]))
                        acc[r, 2 * hidden + jo * lanes + v] = _forget(
                            acc[r, jo * lanes + v],
                            pre(acc[r, 2 * hidden + jo * lanes + v]
                                + p[2 * hidden + jo * lanes + v] * c[r, jo * lanes + v]),
                            input_forget)
                        c[r, jo * lanes + v] = (
                            acc[r, 2 * hidden + jo * lanes + v] * c[r, jo * lanes + v]
                            + acc[r, jo * lanes + v]
                            * tanh(pre(acc[r, 3 * hidden + jo * lanes + v])))
                        h[r, jo * lanes + v] = sigmoid(pre(
                            acc[r, hidden + jo * lanes + v]
                            + p[hidden + jo * lanes + v] * c[r, jo * lanes + v])) * tanh(
                                c[r, jo * lanes + v])
                        y[time_index(s), blk * rows + r, jo * lanes + v] = h[r, jo * lanes + v]
            for r, j in T.grid(rows, hidden):
                yh[blk * rows + r, j] = h[r, j]
                yc[blk * rows + r, j] = c[r, j]

    return kernel


def _forget(i_gate: Any, f_pre: Any, input_forget: bool) -> Any:
    """The forget gate: ``1 - i`` with coupled gates (ONNX ``input_forget``, as ORT)."""
    return _f32(1.0) - i_gate if input_forget else sigmoid(f_pre)


@register("LSTMRecurrence", domain="hcompile")
def lower_lstm_recurrence(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    y_type = node.output_types[0]
    steps, batch, hidden = y_type.shape
    if y_type.dtype != "float32":
        raise unsupported(node, f"element type {y_type.dtype} (the kernel is float32)")
    clip = node.attr("clip")
    kernel = lstm_kernel(steps, batch, hidden, reverse=bool(node.attr("reverse", 0)),
                         clip=None if clip is None else float(clip),
                         input_forget=bool(node.attr("input_forget", 0)))
    zeros = {2: (batch, hidden), 3: (batch, hidden), 4: (3 * hidden,)}
    args = [ctx.input(node, k) for k in range(2)]
    for k, shape in zeros.items():
        given = ctx.input(node, k)
        args.append(given if given is not None else relax.const(np.zeros(shape, np.float32)))
    gvar = ctx.bb.add_func(kernel, "lstm_recurrence")
    out_types = [relax.TensorType(list(t.shape), "float32") for t in node.output_types]
    result = ctx.bb.emit(relax.call_tir(gvar, args, out_types))
    return [relax.TupleGetItem(result, k) for k in range(len(out_types))]

"""Schedule of a reduction along its input's contiguous innermost axis: layernorm's and
RMSNorm's moments, softmax's max and sum, a mean over the last axis.

The generic reduction rule vectorises along the output's innermost axis. For these blocks
that axis strides through the input by a whole row, so every vector is a gather (layernorm
over (16, 16, 256): 81 µs for 65k elements). Here the reduction axis itself is vectorised:
it is split into ``lanes``-wide chunks and ``rfactor``-ed, so a partial-result vector per
row accumulates contiguous vector loads, and a short second block sums each row's
``lanes`` partial results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tvm import s_tir, tirx


class _Iter(Protocol):
    kind: str
    var: tirx.Var
    extent: int
    loop: s_tir.schedule.LoopRV


def is_row_reduction(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                     iters: Sequence[_Iter], lanes: int) -> bool:
    """One reduction axis, the innermost loop and a whole number of vectors long, that alone
    indexes the innermost dim of an input the block reads (so vectorising a spatial axis
    would gather)."""
    reduce = [it for it in iters if it.kind == "R"]
    if len(reduce) != 1 or iters[-1].kind != "R" or reduce[0].extent % lanes:
        return False
    (axis,) = reduce
    for region in sch.get(block).reads:
        if not region.region:
            continue
        last = region.region[-1]
        if isinstance(last.min, tirx.Var) and last.min.same_as(axis.var) and \
                isinstance(last.extent, tirx.IntImm) and int(last.extent) == 1:
            return True
    return False


def schedule_row_reduction(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                           iters: Sequence[_Iter], lanes: int, parallel: bool) -> None:
    """Vector partial results along the reduction axis (``rfactor``), then a scalar sum of
    each row's ``lanes`` partial results; rows on all cores when ``parallel``."""
    (axis,) = [it for it in iters if it.kind == "R"]
    rows = len(iters) - 1
    _, lane = sch.split(axis.loop, [None, lanes])
    ndim = len(sch.get(block).writes[0].region)
    partial = sch.rfactor(lane, factor_axis=ndim)  # partial[..., lane]: contiguous lanes
    partial_loops = sch.get_loops(partial)
    sch.vectorize(partial_loops[-1])
    if parallel and rows:  # before decompose_reduction: fuse refuses blocks without init
        for loops in (partial_loops[:rows], sch.get_loops(block)[:rows]):
            sch.parallel(sch.fuse(*loops) if rows > 1 else loops[0])
    sch.decompose_reduction(partial, sch.get_loops(partial)[-2])
    sch.decompose_reduction(block, sch.get_loops(block)[-1])

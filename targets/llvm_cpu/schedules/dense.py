"""Schedule of dense / matmul functions (MatMul, Gemm, batched attention matmuls), with their
elementwise epilogue (bias, activation, residual add).

Applies to a PrimFunc whose only reduction is ``C[b.., i, j] += A[b.., i, k] * B[b.., k, j]``
(either operand may be broadcast over the batch axes), reading function params directly,
followed by a chain of elementwise blocks. Micro-kernel: ``rows x (vectors * lanes)``
accumulators stay in registers (a local cache of C) while ``k`` runs; each ``k`` step loads
``vectors`` vectors of B's row ``k`` and broadcasts ``rows`` scalars of A. The epilogue is
computed from the accumulators right after the tile (in the same parallel iteration, so
GELU and friends run on all cores, vectorised, while the tile is in cache). Tile sizes come
from :class:`CPUFeatures`; with one row (batch 1, GEMV) the tile is wider, so enough
independent FMA chains are in flight. Parallel over (batch, row tiles, column tiles) only
when the work pays for waking the thread pool.

B stays in its ``[K, N]`` layout: the weights reach the code as run-time params, and a tile
reads ``vectors`` contiguous vectors per ``k`` (one or two cache lines), which the hardware
prefetcher streams. A function that does not match returns None (the generic rule applies).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

from hcompile.targets.llvm_cpu.schedules.features import (
    MATVEC_MAC_COST,
    PARALLEL_MIN_WORK,
    CPUFeatures,
)
from hcompile.targets.llvm_cpu.schedules.tiles import divisor, fuse_epilogue, vectorize_below

log = logging.getLogger("hcompile")

#: Accumulator vectors per row with several rows (8 rows x 2 vectors = 16 accumulators was
#: the best of the tiles measured on 16x256x1024, 16x64x256 and 16x1024x256), and with one
#: row (GEMV: a wide row keeps several independent FMA chains in flight).
_VECTORS_MANY_ROWS = 2
_VECTORS_ONE_ROW = 4
#: Accumulators per tile, at most (rows x vectors per row).
_MAX_ACCUMULATORS = 16


@dataclass(frozen=True, slots=True)
class _Axes:
    """The matmul block's loops: batch axes, rows (i, may be None), columns (j), k."""

    batch: list[s_tir.schedule.LoopRV]
    i: s_tir.schedule.LoopRV | None
    j: s_tir.schedule.LoopRV
    k: s_tir.schedule.LoopRV
    extents: dict[str, int]
    #: B is the same for every batch index (weights): the batch axes are more rows.
    shared_b: bool = False


def schedule_dense(func: tirx.PrimFunc, features: CPUFeatures) -> s_tir.Schedule | None:
    """``func``'s schedule as a dense/matmul function, or None when it is not one."""
    sch = s_tir.Schedule(func)
    try:
        found = _matmul_block(sch)
        if found is None:
            return None
        block, axes = found
        _schedule(sch, block, axes, features)
    except Exception as err:  # ScheduleError, TVM internal errors: the generic rule applies
        log.debug("dense schedule skipped: %s", err)
        return None
    return sch


def _matmul_block(
    sch: s_tir.Schedule,
) -> tuple[s_tir.schedule.SBlockRV, _Axes] | None:
    """The matmul block (epilogue chain inlined down to one block), or None."""
    blocks = list(sch.get_child_blocks(sch.get_sblock("root")))
    reductions = [b for b in blocks if any(iv.iter_type == tirx.IterVar.CommReduce
                                           for iv in sch.get(b).iter_vars)]
    if len(reductions) != 1 or sch.get_producers(reductions[0]):
        return None
    block = reductions[0]
    position = next(n for n, b in enumerate(blocks) if b.same_as(block))
    if position != 0:
        return None  # producers (pads, transposes) before the matmul: not this schedule
    for tail in blocks[1:-1]:  # the epilogue chain: keep only the block writing the output
        sch.compute_inline(tail)
    axes = _axes(sch, block)
    return (block, axes) if axes is not None else None


def _axes(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> _Axes | None:
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    if len(loops) != len(stmt.iter_vars) or len(stmt.reads) not in (2, 3):
        return None
    kinds = [iv.iter_type for iv in stmt.iter_vars]
    if kinds.count(tirx.IterVar.CommReduce) != 1 or kinds[-1] != tirx.IterVar.CommReduce:
        return None
    out = [r.min for r in stmt.writes[0].region]
    spatial = [iv.var for iv in stmt.iter_vars[:-1]]
    if len(out) != len(spatial) or not all(o.same_as(v) for o, v in zip(out, spatial,
                                                                         strict=True)):
        return None  # output not indexed by the spatial iterators in order
    k_var, j_var = stmt.iter_vars[-1].var, spatial[-1]
    operands = [r for r in stmt.reads if not r.source.same_as(stmt.writes[0].source)]
    if len(operands) != 2 or not _is_matmul(operands, k_var, j_var):
        return None
    extents = {"j": _extent(stmt.iter_vars[-2]), "k": _extent(stmt.iter_vars[-1]),
               "i": _extent(stmt.iter_vars[-3]) if len(spatial) >= 2 else 1}
    extents["batch"] = math.prod(_extent(iv) for iv in stmt.iter_vars[:-3])
    i = loops[-3] if len(spatial) >= 2 else None
    batch_vars = [iv.var for iv in stmt.iter_vars[:-3]]
    b_operand = operands[0] if _uses_var(operands[0], j_var) else operands[1]
    shared_b = not any(_uses_var(b_operand, v) for v in batch_vars)
    return _Axes(list(loops[:-3]) if len(spatial) >= 2 else [], i, loops[-2], loops[-1],
                 extents, shared_b)


def _uses_var(region: tvm.ir.Range, var: tirx.Var) -> bool:
    return any(v.same_as(var) for r in region.region
               for v in tirx.analysis.undefined_vars(r.min, []))


def _extent(iv: tirx.IterVar) -> int:
    if not isinstance(iv.dom.extent, tirx.IntImm):
        raise ValueError("dynamic extent")
    return int(iv.dom.extent)


def _is_matmul(operands: list[tvm.ir.Range], k: tirx.Var, j: tirx.Var) -> bool:
    """One operand reads ``[.., k]`` without ``j`` (A), the other ``[.., k, j]`` (B)."""
    def last(region: tvm.ir.Range, n: int) -> tirx.Expr:
        return region.region[-n].min if len(region.region) >= n else None

    def is_var(expr: tirx.Expr | None, var: tirx.Var) -> bool:
        return isinstance(expr, tirx.Var) and expr.same_as(var)

    a, b = operands
    if not is_var(last(a, 1), k):
        a, b = b, a
    return (is_var(last(a, 1), k) and is_var(last(b, 1), j) and is_var(last(b, 2), k)
            and not any(is_var(r.min, j) for r in a.region))


def tile_sizes(rows: int, cols: int, features: CPUFeatures,
               bits: int = 32) -> tuple[int, int]:
    """``(row tile, column tile)`` of the register micro-kernel, divisors of ``rows`` and
    ``cols``. Columns: whole vectors when ``cols`` allows, else (several rows) vectors of
    one partial width, which ``_schedule`` unrolls: LLVM keeps ``<10 x float>`` vectors in
    registers but shuffles and spills odd widths over one vector (16x784x100, one core:
    one 10-wide vector x 16 rows 18 µs, a 25-wide one 135 µs, two 10-wide x 8 rows 15 µs)."""
    lanes = features.lanes(bits)
    if rows == 1:
        return 1, divisor(cols, lanes * _VECTORS_ONE_ROW, prefer=lanes)
    if cols % lanes == 0:
        col_tile = divisor(cols, lanes * _VECTORS_MANY_ROWS, prefer=lanes)
        per_row = math.ceil(col_tile / lanes)
    else:  # vectors of the widest partial width, unrolled (see _schedule)
        width = divisor(cols, lanes)
        per_row = divisor(cols // width, _VECTORS_MANY_ROWS)
        col_tile = width * per_row
    budget = (features.vector_registers - per_row - 2) // per_row  # B vectors, a broadcast
    return divisor(rows, max(1, min(budget, _MAX_ACCUMULATORS // per_row))), col_tile


def _schedule(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV, axes: _Axes,
              features: CPUFeatures) -> None:
    ext = dict(axes.extents)
    extents = [int(sch.get(loop).extent) for loop in [*axes.batch, axes.i]] \
        if axes.i is not None else []
    if axes.shared_b and axes.batch and sum(e > 1 for e in extents) == 1:
        # B shared over the batch (weights): batch and rows are one row axis, so a tile
        # takes rows of several batch entries and B is streamed once per row tile, not once
        # per batch entry ((16, 1, 256) @ (256, 768), attention's projections at batch 1:
        # ~100 -> 24 µs). Only where one of these axes is not 1: the fused index is then that
        # axis, and a tile's region stays a box (the epilogue is computed per tile).
        axes = dataclasses.replace(axes, batch=[], i=sch.fuse(*axes.batch, axes.i))
        ext["i"], ext["batch"] = ext["i"] * ext["batch"], 1
    bits = int(tvm.DataType(str(sch.get(block).writes[0].source.dtype)).bits)
    row_tile, col_tile = tile_sizes(ext["i"], ext["j"], features, bits)
    lanes = features.lanes(bits)
    width = col_tile if col_tile <= lanes or col_tile % lanes == 0 else divisor(col_tile, lanes)
    if width < col_tile:  # partial vectors: several of them, unrolled (an odd width over
        jo, jv, ji = sch.split(axes.j, [None, col_tile // width, width])  # one vector spills)
        columns = [jv, ji]
    else:
        jo, ji = sch.split(axes.j, [None, col_tile])
        columns = [ji]
    if axes.i is not None:
        io, ii = sch.split(axes.i, [None, row_tile])
        outer, inner = [*axes.batch, io, jo], [ii, *columns]
    else:
        outer, inner = [jo], columns
    sch.reorder(*outer, axes.k, *inner)
    # Accumulate in a local tile (registers), written out (through the epilogue) per tile.
    cache = sch.cache_write(block, 0, "local")
    tail = fuse_epilogue(sch, cache)
    sch.reverse_compute_at(tail, outer[-1])
    work = ext["batch"] * ext["i"] * ext["j"] * ext["k"]
    if ext["batch"] * ext["i"] == 1:
        work *= MATVEC_MAC_COST
    if work >= PARALLEL_MIN_WORK and features.cores > 1 and len(outer) > 1:
        outer = [sch.fuse(*outer)]  # the epilogue moves along: it is under outer[-1]
    if work >= PARALLEL_MIN_WORK and features.cores > 1:
        sch.parallel(outer[-1])
    vectorize_below(sch, tail, outer[-1], features)
    for loop in inner[:-1]:
        sch.unroll(loop)
    sch.vectorize(inner[-1])
    k = sch.get_loops(block)[len(outer)]  # the k loop, below the (possibly fused) outer ones
    init = sch.decompose_reduction(block, k)
    vectorize_below(sch, init, outer[-1], features)

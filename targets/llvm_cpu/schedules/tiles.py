"""Schedule steps the CPU rules share (dense, blocked conv, generic): the register tile's
write-out block, its vectorised inner loops, and tile-size divisors."""

from __future__ import annotations

import tvm
from tvm import s_tir

from hcompile.targets.llvm_cpu.schedules.features import CPUFeatures


def divisor(extent: int, limit: int, prefer: int = 1) -> int:
    """Largest divisor of ``extent`` up to ``limit``, preferring multiples of ``prefer``."""
    divisors = [d for d in range(1, max(1, min(extent, limit)) + 1) if extent % d == 0]
    whole = [d for d in divisors if d % prefer == 0]
    return max(whole) if whole else max(divisors)


def fuse_epilogue(sch: s_tir.Schedule,
                  copy: s_tir.schedule.SBlockRV) -> s_tir.schedule.SBlockRV:
    """The block writing the tile out: the single consumer of ``copy`` (the epilogue, reading
    the accumulators directly) when ``copy`` inlines into it, else ``copy``."""
    consumers = sch.get_consumers(copy)
    if len(consumers) != 1:
        return copy
    try:
        sch.compute_inline(copy)
    except Exception:  # the epilogue is not elementwise: keep the copy
        return copy
    return consumers[0]


def vectorize_below(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                    outer: s_tir.schedule.LoopRV, features: CPUFeatures) -> None:
    """Vectorize the innermost loop of ``block`` under ``outer`` (split into whole-register
    vectors when it is longer than one and not a multiple); unroll the others (they index
    the register tile, which must stay in registers)."""
    loops = sch.get_loops(block)
    anchor = sch.get(outer)
    index = next(n for n, loop in enumerate(loops) if sch.get(loop).same_as(anchor))
    inner = loops[index + 1:]
    if not inner:
        return
    lanes = features.lanes(int(tvm.DataType(str(sch.get(block).writes[0].source.dtype)).bits))
    extent = int(sch.get(inner[-1]).extent)
    if extent > lanes and extent % lanes:  # partial vectors, as the tile's
        inner[-1:] = sch.split(inner[-1], [None, divisor(extent, lanes)])
    sch.vectorize(inner[-1])
    for loop in inner[:-1]:
        sch.unroll(loop)

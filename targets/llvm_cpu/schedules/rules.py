"""Schedule rules for the CPU: one pass over every TIR function, no tuning.

Per function:
1. Inline elementwise producers into their consumers (fused elementwise chains become one
   loop nest), except those that feed a reduction (pads stay materialised, so the hot loop of
   a convolution has no bounds checks).
2. Reductions (matmul, batch matmul, conv2d, depthwise conv, pooling, mean, softmax's max and
   sum, layernorm's moments): the output's innermost axis is the vector axis, a second spatial
   axis is the register tile; loop order ``[spatial tiles (parallel)] [reduction] [register
   tile (unrolled)] [vector lanes]``, so the accumulator tile stays in registers while the
   reduction runs. Tile sizes come from :class:`CPUFeatures` (lanes, registers, cores).
3. Everything else (elementwise, broadcasts, transposes, pads, epilogues): loops fused,
   parallel outer part, vectorised inner part.

A function the rule cannot schedule is left as TVM legalized it (correct, just slow).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

from hcompile.targets.llvm_cpu.schedules.conv import schedule_blocked_convs
from hcompile.targets.llvm_cpu.schedules.dense import schedule_dense
from hcompile.targets.llvm_cpu.schedules.features import PARALLEL_MIN_WORK, CPUFeatures
from hcompile.targets.llvm_cpu.schedules.row_reduction import (
    is_row_reduction,
    schedule_row_reduction,
)
from hcompile.targets.llvm_cpu.schedules.tiles import divisor, fuse_epilogue

log = logging.getLogger("hcompile")

#: Calls LLVM can vectorize (checked on TVM 0.27: ``sinh``/``cosh`` and others have no vector
#: lowering and fail in codegen). Loops calling anything else stay scalar.
VECTOR_SAFE_CALLS = frozenset(
    (
        "exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "floor",
        "ceil", "trunc", "round", "nearbyint", "tanh", "sigmoid", "erf", "sin", "cos", "tan",
        "asin", "acos", "atan", "asinh", "acosh", "atanh", "isnan", "isinf", "isfinite",
        "if_then_else", "likely", "fabs",
        # bit casts (fast_exp's exponent trick) and index arithmetic TVMScript prints as calls
        "reinterpret", "Add", "Sub", "Mul", "FloorDiv", "FloorMod",
    )
)
#: What TVMScript prints as ``T.name(...)`` besides calls: casts, constants, min/max.
_SCRIPT_BUILTINS = frozenset((
    "Buffer", "max", "min", "Cast", "Select", "bool", "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
))
_SCRIPT_CALL = re.compile(r"\bT\.(\w+)\(")



@dataclass(slots=True)
class _Iter:
    kind: str  # "S" spatial, "R" reduction, "O" other
    var: tirx.Var
    extent: int
    loop: s_tir.schedule.LoopRV


def schedule_prim_func(func: tirx.PrimFunc, features: CPUFeatures) -> tirx.PrimFunc | None:
    """``func`` scheduled for the CPU, or None when the rule does not apply."""
    sch = rule_schedule(func, features)
    return None if sch is None else sch.mod["main"]


def rule_schedule(func: tirx.PrimFunc, features: CPUFeatures) -> s_tir.Schedule | None:
    """The schedule the rules give ``func`` (its trace replays them: ``hcompile tune`` stores
    it as a measured candidate), or None when no rule applies."""
    dense = schedule_dense(func, features)  # matmul + epilogue functions: dense.py
    if dense is not None:
        return dense
    error: Exception | None = None
    # First with register-tile accumulators (and the epilogue fused); if a schedule primitive
    # refuses that for some block, again without (accumulating in the output buffer).
    for tile_in_registers in (True, False):
        sch = s_tir.Schedule(func)
        try:
            _inline_elementwise(sch)
            blocked = schedule_blocked_convs(sch, features)
            for block in _blocks(sch):
                if sch.get(block).name_hint in blocked:
                    continue
                iters = _iters(sch, block)
                if iters is None:
                    continue
                if any(it.kind == "R" for it in iters):
                    _schedule_reduction(sch, block, iters, features, tile_in_registers)
                else:
                    _schedule_spatial(sch, block, iters, features)
        except Exception as err:  # ScheduleError and TVM internal errors: leave unscheduled
            error = err
            continue
        return sch
    name = func.attrs.get("global_symbol", "?") if func.attrs else "?"
    log.debug("CPU schedule rule skipped %s: %s", name, error)
    return None


def _blocks(sch: s_tir.Schedule) -> list[s_tir.schedule.SBlockRV]:
    root = sch.get_sblock("root")
    return list(sch.get_child_blocks(root))


def _iters(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> list[_Iter] | None:
    """The block's iterators paired with their loops; None unless the binding is one loop per
    iterator (what TVM's legalization produces)."""
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    if len(loops) != len(stmt.iter_vars):
        return None
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    result = []
    for loop, iv in zip(loops, stmt.iter_vars, strict=True):
        extent = iv.dom.extent
        if not isinstance(extent, tirx.IntImm):
            return None
        loop_stmt = sch.get(loop)
        if not isinstance(loop_stmt.extent, tirx.IntImm) or int(loop_stmt.extent) != int(extent):
            return None
        result.append(_Iter(kinds.get(iv.iter_type, "O"), iv.var, int(extent), loop))
    if any(it.kind == "O" for it in result):
        return None
    return result


def _inline_elementwise(sch: s_tir.Schedule) -> None:
    blocks = _blocks(sch)
    reductions = {sch.get(b).name_hint for b in blocks
                  if any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(b).iter_vars)}
    for block in blocks:
        name = sch.get(block).name_hint
        if name in reductions:
            continue
        consumers = sch.get_consumers(block)
        if not consumers:
            continue  # writes a function output
        if any(sch.get(c).name_hint in reductions for c in consumers):
            continue  # keep pads and other reduction inputs materialised
        # Not inlinable (e.g. it reads its own output): keep the block.
        with contextlib.suppress(Exception):
            sch.compute_inline(block)


def _output_axes(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> list[tirx.Var]:
    """Iterator vars indexing the written buffer, innermost index first."""
    stmt = sch.get(block)
    result = []
    for rng in reversed(stmt.writes[0].region):
        if isinstance(rng.min, tirx.Var):
            result.append(rng.min)
    return result


def _vectorizable(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> bool:
    """False when the block's body calls something LLVM cannot vectorize (read from the
    printed TIR: TVM 0.27's Python API has no TIR expression visitor)."""
    text = sch.get(block).body.script()
    return all(name in VECTOR_SAFE_CALLS or name in _SCRIPT_BUILTINS
               for name in _SCRIPT_CALL.findall(text))


def _dtype_bits(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> int:
    region = sch.get(block).writes[0]
    dtype = getattr(region.source, "dtype", None) or getattr(region.ty, "dtype", "float32")
    return int(tvm.DataType(str(dtype)).bits)


def _vector_factor(extent: int, lanes: int, max_vectors: int) -> int:
    """Largest divisor of ``extent`` up to ``lanes * max_vectors``, preferring whole vectors."""
    limit = lanes * max_vectors
    divisors = [d for d in range(1, min(extent, limit) + 1) if extent % d == 0]
    whole = [d for d in divisors if d % lanes == 0]
    return max(whole) if whole else max(divisors)


def _vector_width(factor: int, lanes: int) -> int:
    """The vector width for ``factor`` elements: ``factor`` itself when it is at most one
    vector or whole vectors, else its largest divisor up to one vector (LLVM splits an odd
    width over one vector, e.g. ``<28 x float>`` with 16 lanes, into shuffles and spills)."""
    if factor <= lanes or factor % lanes == 0:
        return factor
    return divisor(factor, lanes)


def _schedule_reduction(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                        iters: Sequence[_Iter], features: CPUFeatures,
                        tile_in_registers: bool = True) -> None:
    spatial = [it for it in iters if it.kind == "S"]
    reduce = [it for it in iters if it.kind == "R"]
    lanes = features.lanes(_dtype_bits(sch, block))
    if is_row_reduction(sch, block, iters, lanes) and _vectorizable(sch, block):
        parallel = features.cores > 1 and math.prod(it.extent for it in iters) >= PARALLEL_MIN_WORK
        schedule_row_reduction(sch, block, iters, lanes, parallel)
        return
    axes = _output_axes(sch, block)

    def find(var: tirx.Var) -> _Iter | None:
        return next((it for it in spatial if it.var.same_as(var) and it.extent > 1), None)

    vec = find(axes[0]) if axes else None
    reg = _register_axis(sch, block, spatial, vec, [v for v in axes[1:]])

    outer: list[s_tir.schedule.LoopRV] = []
    inner: list[s_tir.schedule.LoopRV] = []
    vec_inner = reg_inner = None
    vec_factor = reg_factor = 1
    if vec is not None and not _vectorizable(sch, block):
        vec = None
    if vec is not None:
        vec_factor = _vector_factor(vec.extent, lanes, 4 if reg is None else 2)
    if reg is not None:
        budget = max(1, (features.vector_registers - 4) // max(1, math.ceil(vec_factor / lanes)))
        reg_factor = divisor(reg.extent, min(budget, 8))
    vec_unrolled = None
    for it in spatial:
        if it is vec and vec_factor > 1:
            width = _vector_width(vec_factor, lanes)
            if width < vec_factor:  # several vectors of a partial width, unrolled
                o, vec_unrolled, i = sch.split(it.loop, [None, vec_factor // width, width])
            else:
                o, i = sch.split(it.loop, [None, vec_factor])
            outer.append(o)
            vec_inner = i
        elif it is reg and reg_factor > 1:
            o, i = sch.split(it.loop, [None, reg_factor])
            outer.append(o)
            reg_inner = i
        else:
            outer.append(it.loop)
    if reg_inner is not None:
        inner.append(reg_inner)
    if vec_unrolled is not None:
        inner.append(vec_unrolled)
    if vec_inner is not None:
        inner.append(vec_inner)
    sch.reorder(*outer, *(it.loop for it in reduce), *inner)
    tail, tail_loops = None, []
    if tile_in_registers and outer and inner:
        # Accumulate the tile in a local buffer (registers: LLVM does not keep accumulators
        # that live in the output buffer in registers across the reduction loops), written
        # out through the elementwise epilogue, if any, right after the tile.
        tail = _fuse_epilogue(sch, sch.cache_write(block, 0, "local"))
        sch.reverse_compute_at(tail, outer[-1])
        tail_loops = sch.get_loops(tail)[len(outer):]
    work = math.prod(it.extent for it in iters)
    _parallelize(sch, outer, work, features)
    if reg_inner is not None and reg_factor > 1:
        sch.unroll(reg_inner)
    if vec_unrolled is not None:
        sch.unroll(vec_unrolled)
    if vec_inner is not None:
        sch.vectorize(vec_inner)
    if tail is not None:
        _vectorize_tile(sch, tail, tail_loops, vec_inner is not None, lanes,
                        math.prod(int(sch.get(loop).extent) for loop in inner))
    # Last: primitives above refuse a reduction block that has lost its init.
    sch.decompose_reduction(block, reduce[0].loop)


def _fuse_epilogue(sch: s_tir.Schedule,
                   copy: s_tir.schedule.SBlockRV) -> s_tir.schedule.SBlockRV:
    """The block writing the tile out: the single elementwise consumer of ``copy`` (the
    epilogue, reading the accumulators directly) when there is one, else ``copy``."""
    consumers = sch.get_consumers(copy)
    if len(consumers) == 1 and any(iv.iter_type != tirx.IterVar.DataPar
                                   for iv in sch.get(consumers[0]).iter_vars):
        return copy  # a reduction reads the tile: it keeps its own loops
    return fuse_epilogue(sch, copy)


def _vectorize_tile(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                    loops: Sequence[s_tir.schedule.LoopRV], vectorize: bool,
                    lanes: int, tile: int) -> None:
    """``loops`` (those of ``block`` below the tile's outer loops) index the register tile:
    the innermost vectorized (when the tile's is; as the tile, in vectors of at most one
    register or whole registers), the others unrolled."""
    inner = list(loops)
    if not inner or math.prod(int(sch.get(loop).extent) for loop in inner) > tile:
        return  # the epilogue covers more than the tile (a broadcast): leave its loops be
    if vectorize and _vectorizable(sch, block):
        extent = int(sch.get(inner[-1]).extent)
        width = _vector_width(extent, lanes)
        if width < extent:
            inner[-1:] = sch.split(inner[-1], [None, width])
        sch.vectorize(inner[-1])
        inner = inner[:-1]
    for loop in inner:
        sch.unroll(loop)


def _uses(expr: tirx.Expr, var: tirx.Var) -> bool:
    return any(v.same_as(var) for v in tirx.analysis.undefined_vars(expr, []))


def _register_axis(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                   spatial: Sequence[_Iter], vec: _Iter | None,
                   axes: Sequence[tirx.Var]) -> _Iter | None:
    """The spatial axis to tile in registers: one the streamed operand (the input read along
    the vector axis) does not depend on, so each vector load feeds a whole column of
    accumulators (matmul: the rows of A; conv: output channels). Else the next output axis."""
    candidates = [it for v in axes for it in spatial
                  if it.var.same_as(v) and it.extent > 1 and it is not vec]
    if vec is not None:
        for region in sch.get(block).reads:
            if not region.region or not _uses(region.region[-1].min, vec.var):
                continue
            for it in candidates:
                if not any(_uses(idx.min, it.var) for idx in region.region):
                    return it
    return candidates[0] if candidates else None


def _parallelize(sch: s_tir.Schedule, loops: list[s_tir.schedule.LoopRV], work: int,
                 features: CPUFeatures) -> s_tir.schedule.LoopRV | None:
    """Fuse the leading ``loops`` and run them on all cores when the nest is big enough."""
    if features.cores < 2 or work < PARALLEL_MIN_WORK or not loops:
        return None
    extents = [int(sch.get(loop).extent) for loop in loops]
    # Fuse leading loops until there is enough parallel work for every core (x4 for balance).
    count = 0
    total = 1
    while count < len(loops) and total < features.cores * 4:
        total *= extents[count]
        count += 1
    if total < 2:
        return None
    fused = sch.fuse(*loops[:count]) if count > 1 else loops[0]
    sch.parallel(fused)
    return fused


def _schedule_spatial(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                      iters: Sequence[_Iter], features: CPUFeatures) -> None:
    loops = [it.loop for it in iters]
    total = math.prod(it.extent for it in iters)
    if total <= 1:
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    lanes = features.lanes(_dtype_bits(sch, block))
    factor = _vector_factor(total, lanes, 4)
    if factor < 4 or not _vectorizable(sch, block):
        if total >= PARALLEL_MIN_WORK and features.cores > 1:
            sch.parallel(fused)
        return
    outer, inner = sch.split(fused, [None, factor])
    if total >= PARALLEL_MIN_WORK and features.cores > 1:
        sch.parallel(outer)
    sch.vectorize(inner)

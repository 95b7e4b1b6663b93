"""Schedule of the blocked conv (``NCHW{b}c`` data, ``OIHW{b}i{b}o`` weights, from
:mod:`hcompile.targets.llvm_cpu.layout`).

Micro-kernel: a tile of ``tile`` output pixels of one row times one or two output-channel
blocks (one vector register each) is accumulated in registers while the reduction
(input-channel chunks, kernel rows and columns, input channels of the chunk) runs; each step
loads a weight vector per block and does ``tile`` FMAs per block with broadcast input
scalars. The tile fills the vector register file (:class:`CPUFeatures`), leaving registers
for the weight vectors and the broadcast (:func:`conv_tile`). The
elementwise epilogue (bias, relu, residual add, the conversion back to NCHW) is computed from
the accumulators right after the tile is done. Parallel over (batch, channel chunk, row).
"""

from __future__ import annotations

import math

import tvm
from tvm import s_tir

from hcompile.targets.llvm_cpu.schedules.features import (
    CONV_PARALLEL_MIN_WORK,
    DEPTHWISE_MAC_COST,
    CPUFeatures,
)
from hcompile.targets.llvm_cpu.schedules.tiles import fuse_epilogue, vectorize_below

#: Name of the compute block of the blocked conv (set by the layout pass's TE compute).
BLOCKED_CONV_BLOCK = "conv2d_nchwc"
BLOCKED_DEPTHWISE_BLOCK = "depthwise_nchwc"



def schedule_blocked_convs(sch: s_tir.Schedule, features: CPUFeatures) -> set[str]:
    """Schedule every blocked conv in ``sch``; the names of the blocks it scheduled (the
    conv, its init and the fused epilogue), which the generic rule must leave alone."""
    done: set[str] = set()
    root = sch.get_sblock("root")
    for block in list(sch.get_child_blocks(root)):
        name = sch.get(block).name_hint
        if name.startswith((BLOCKED_CONV_BLOCK, BLOCKED_DEPTHWISE_BLOCK)):
            done |= _schedule_conv(sch, block, features)
        elif name.startswith("pool_"):  # TOPI's pools, blocked ones by the layout pass
            # Read through the border test: a padded copy (3.3 MB for resnet18's pool at
            # batch 1) cost more than the pool, 81 -> 33 us there; the generic rule then
            # schedules the pool alone.
            _inline_pads(sch, block)
    return done


#: Accumulators of a two-block tile, at most: with 32 registers, 2 x 14 accumulators (plus 2
#: weight vectors and the broadcast) ran 1.8x slower than one block (resnet18's 56-wide 3x3
#: convs), as LLVM spilled; 2 x 8 matched it.
TWO_BLOCK_ACCUMULATORS = 16


def conv_tile(width: int, out_blocks: int, in_block: int, features: CPUFeatures,
              depthwise: bool = False) -> tuple[int, int]:
    """``(pixels, output-channel blocks)`` of the register tile.

    One block: each FMA needs a load (the broadcast input scalar) and a step adds the weight
    vector's, a load-bound kernel once a row is short (7 pixels: 8 loads for 7 FMAs). Two
    blocks reuse each broadcast for two FMAs: resnet18's 7x7 3x3 convs 0.53 -> 0.45 ms, and
    mobilenetv2's 1x1 convs at batch 1 1.59 -> 1.40 ms in all. Only with 32 vector registers
    (measured there), an even number of blocks, and input-channel blocks of 4 or more (a
    network's RGB input conv, with 1-2 channel blocks, got 20% slower); depthwise convs have
    no broadcast to share."""
    if (depthwise or features.vector_registers < 32 or out_blocks % 2 or in_block < 4):
        return register_tile(width, 1, features), 1
    budget = TWO_BLOCK_ACCUMULATORS // 2
    if width <= budget:
        return width, 2
    best = max(d for d in range(1, budget + 1) if width % d == 0)
    return (best if best * 2 > budget else budget), 2


def register_tile(width: int, vectors_per_pixel: int, features: CPUFeatures) -> int:
    """Output pixels per register tile: as many accumulators as the register file holds
    (minus the weight vector and the broadcast), preferring a divisor of ``width``."""
    budget = max(1, (features.vector_registers - 2) // max(1, vectors_per_pixel))
    if width <= budget:
        return width
    divisor = max(d for d in range(1, budget + 1) if width % d == 0)
    # A poor divisor (e.g. a prime width) costs more than the tail check of a full tile.
    return divisor if divisor * 2 > budget else budget


def _schedule_conv(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                   features: CPUFeatures) -> set[str]:
    loops = sch.get_loops(block)
    if len(loops) not in (7, 9):  # depthwise: no input-channel loops
        raise ValueError("blocked conv with an unexpected loop nest")
    b, oc, y, x, o, *reduce = loops
    extents = [int(sch.get(loop).extent) for loop in loops]
    region = sch.get(block).writes[0]
    bits = tvm.DataType(str(getattr(region.source, "dtype", "float32"))).bits
    lanes = features.lanes(bits)
    depthwise = len(loops) == 7
    if extents[4] > lanes:  # a block wider than a register: one block per tile
        tile, blocks = register_tile(extents[3], math.ceil(extents[4] / lanes), features), 1
    else:
        tile, blocks = conv_tile(extents[3], extents[1], extents[-1], features, depthwise)
    xo, xi = sch.split(x, [None, tile])
    if blocks > 1:
        oc, block_pair = sch.split(oc, [None, blocks])
        sch.reorder(b, oc, y, xo, *reduce, block_pair, xi, o)
        sch.unroll(block_pair)
    else:
        sch.reorder(b, oc, y, xo, *reduce, xi, o)

    names = {sch.get(block).name_hint}
    if depthwise or extents[-1] < 4:
        # Depthwise: memory-bound, a padded copy would double its traffic. Input blocks of
        # 1-2 channels (a network's RGB input): the copy could not use vectors.
        _inline_pads(sch, block)
    else:
        names |= _schedule_pads(sch, block, features)
    copy = sch.cache_write(block, 0, "local")
    tail = fuse_epilogue(sch, copy)
    sch.reverse_compute_at(tail, xo)
    names.add(sch.get(tail).name_hint)
    work = math.prod(extents) * (DEPTHWISE_MAC_COST if depthwise else 1)
    if work >= CONV_PARALLEL_MIN_WORK and features.cores > 1:
        sch.parallel(sch.fuse(b, oc, y))
    vectorize_below(sch, tail, xo, features)
    sch.unroll(xi)
    sch.vectorize(o)
    init = sch.decompose_reduction(block, reduce[0])
    names.add(sch.get(init).name_hint)
    vectorize_below(sch, init, xo, features)
    return names


def _schedule_pads(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV,
                   features: CPUFeatures) -> set[str]:
    """The padded copy of the blocked input: vectors along the channel block only, so the
    border test is one scalar per vector (the generic rule's longer vectors straddle pixels
    and the border, and LLVM scalarises them)."""
    names = set()
    for producer in sch.get_producers(block):
        loops = sch.get_loops(producer)
        if sch.get(producer).name_hint not in ("data_pad", "pad_temp") or len(loops) != 5:
            continue
        extents = [int(sch.get(loop).extent) for loop in loops]
        rows = sch.fuse(*loops[:3])
        if math.prod(extents) >= CONV_PARALLEL_MIN_WORK // 4 and features.cores > 1:
            sch.parallel(rows)
        sch.vectorize(loops[4])
        names.add(sch.get(producer).name_hint)
    return names


def _inline_pads(sch: s_tir.Schedule, block: s_tir.schedule.SBlockRV) -> None:
    """Read the input through the padding test instead of from a padded copy."""
    for producer in sch.get_producers(block):
        if sch.get(producer).name_hint in ("data_pad", "pad_temp"):
            sch.compute_inline(producer)

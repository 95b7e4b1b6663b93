"""Blocked (NCHWc) conv kernels against im2col + GEMM, both through our CPU schedules.

    .venv/bin/python benchmarks/conv_lowering.py [--only stem 56x56]

The measurement behind lowering every float32 conv to the blocked layout
(:mod:`targets.llvm_cpu.layout`): for the zoo's conv shapes, the blocked conv's kernel against
the two kernels of the alternative, an im2col copy (TE, scheduled by our generic rule) and a
matmul of it with the weights (our dense schedule, relu fused into both). A 1x1 conv needs no
im2col: it is the matmul of the weights with the NCHW input seen as (C, H*W). Kernels are
timed alone (TVM's time_evaluator, best of 5 repeats); what happens only at the edges of a
chain is left out (layout conversions, slicing off padded channels, the 1x1 case's reshape),
since inside a network consecutive convs exchange blocked tensors.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (name, batch, in channels, height, width, out channels, kernel, stride, pad)
CONVS = (
    ("resnet18 stem 7x7/2", 1, 3, 224, 224, 64, 7, 2, 3),
    ("resnet18 56x56 3x3", 1, 64, 56, 56, 64, 3, 1, 1),
    ("resnet18 14x14 3x3", 1, 256, 14, 14, 256, 3, 1, 1),
    ("resnet18 7x7 3x3", 1, 512, 7, 7, 512, 3, 1, 1),
    ("mobilenetv2 1x1 144->24", 1, 144, 56, 56, 24, 1, 1, 0),
    ("mobilenetv2 1x1 32->16", 1, 32, 112, 112, 16, 1, 1, 0),
    ("resnet18 56x56 3x3 b16", 16, 64, 56, 56, 64, 3, 1, 1),
    ("resnet18 7x7 3x3 b16", 16, 512, 7, 7, 512, 3, 1, 1),
)


def im2col(x: Any, kernel: int, stride: int, pad: int) -> Any:
    """(N*OH*OW, C*k*k) patches of NCHW ``x``, zeros outside it."""
    from tvm import te, topi

    n, c, h, w = (int(d) for d in x.shape)
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    padded = topi.nn.pad(x, [0, 0, pad, pad], [0, 0, pad, pad]) if pad else x

    def patch(p: Any, k: Any) -> Any:
        image, pixel = p // (oh * ow), p % (oh * ow)
        channel, tap = k // (kernel * kernel), k % (kernel * kernel)
        return padded[image, channel, pixel // ow * stride + tap // kernel,
                      pixel % ow * stride + tap % kernel]

    return te.compute((n * oh * ow, c * kernel * kernel), patch, name="im2col")


def relax_module(lowering: str, n: int, c: int, h: int, w: int, k: int, kernel: int,
                 stride: int, pad: int) -> Any:
    """``main(x, weight)``: conv + relu as a Relax conv2d (``blocked``) or as im2col + matmul."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([n, c, h, w], "float32"))
    if lowering == "blocked":
        shape = [k, c, kernel, kernel]
    else:
        shape = [k, c] if kernel == 1 else [c * kernel * kernel, k]
    weight = relax.Var("weight", relax.TensorType(shape, "float32"))
    with bb.function("main", [x, weight], attrs={"num_input": 1}):
        with bb.dataflow():
            if lowering == "blocked":
                y = bb.emit(relax.op.nn.conv2d(x, weight, strides=stride, padding=pad))
            elif kernel == 1:
                y = bb.emit(relax.op.matmul(weight, relax.op.reshape(x, [n, c, h * w])))
            else:
                y = bb.emit(relax.op.matmul(bb.emit_te(im2col, x, kernel, stride, pad), weight))
            out = bb.emit_output(bb.emit(relax.op.nn.relu(y)))
        bb.emit_func_output(out)
    return bb.get()


def scheduled(module: Any, target: Any) -> Any:
    """``module`` after the CPU pipeline's layouts, fusion and schedule rules."""
    import tvm

    from hcompile.targets.llvm_cpu.schedules import CPUFeatures, ScheduleCPU, pre_schedule_passes

    with target:
        features = CPUFeatures.of(target)
        passes = pre_schedule_passes(target, features, layouts=True, blocked_convs=True)
        return tvm.transform.Sequential([*passes, ScheduleCPU(features)])(module)


def kernel_times(module: Any, target: Any) -> dict[str, float]:
    """Milliseconds of each conv, matmul and im2col kernel ``main`` calls."""
    import tvm
    from tvm import tirx

    called = set(re.findall(r"call_tir\((?:cls\.)?(\w+),", module["main"].script()))
    times = {}
    for gvar, func in module.functions_items():
        name = gvar.name_hint
        if not isinstance(func, tirx.PrimFunc) or name not in called or not any(
                part in name for part in ("conv", "matmul", "im2col")):
            continue  # the layout changes, channel slices and reshapes at a chain's edges
        lib = tvm.compile(func.with_attr("global_symbol", name), target)
        args = [tvm.runtime.tensor(np.random.default_rng(0).random(
            [int(d) for d in buffer.shape]).astype(buffer.dtype))
            for buffer in func.params]  # TVM 0.27: a PrimFunc's params are its buffers
        timer = lib.mod.time_evaluator(name, tvm.cpu(), number=10, repeat=5, min_repeat_ms=50)
        times[name] = min(timer(*args).results) * 1e3
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="convs whose name contains one of these")
    args = parser.parse_args()
    from hcompile.targets.llvm_cpu import LLVMCPUTarget

    target = LLVMCPUTarget().tvm_target()
    print(f"target {target}; kernels timed alone, best of 5 repeats")
    print(f"{'conv':26s} {'blocked ms':>10s} {'im2col ms':>10s} {'gemm ms':>8s} {'ratio':>6s}")
    for name, *shape in CONVS:
        if args.only and not any(part in name for part in args.only):
            continue
        blocked = kernel_times(scheduled(relax_module("blocked", *shape), target), target)
        other = kernel_times(scheduled(relax_module("im2col", *shape), target), target)
        copy = sum(ms for kernel, ms in other.items() if "im2col" in kernel)
        gemm = sum(other.values()) - copy
        ratio = (copy + gemm) / sum(blocked.values())
        print(f"{name:26s} {sum(blocked.values()):10.3f} {copy:10.3f} {gemm:8.3f} "
              f"{ratio:6.2f}", flush=True)
    print("ratio: (im2col + gemm) / blocked; above 1 the blocked conv is faster")


if __name__ == "__main__":
    main()

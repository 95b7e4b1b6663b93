"""What the schedule rules need to know about the CPU, read from the TVM target (no constants
tuned to one machine): vector width, register count, core count."""

from __future__ import annotations

from dataclasses import dataclass

import tvm

#: Loop nests with fewer multiply-adds (elements, for loops without a reduction) than this run
#: on one core: about 40-60 µs of work on one core. A parallel loop is split statically and
#: ends in a barrier: waking the pool costs several µs on an idle machine, and when the OS
#: has preempted a worker (busy neighbours, another thread pool such as ONNX Runtime's
#: spinning in the same process) the barrier waits out a time slice: milliseconds (lstm at
#: batch 16: 0.27 ms, 3.7 ms in some runs, from its one 320x64x256 parallel matmul).
#: Measured on 2 shared cores against 2**18 (the pool's spinning off, see
#: hcompile.runtime.tvm_cpu): mlp batch 16 28 -> 24 µs, lenet5 batch 16 114 -> 96 µs; the
#: large nests of resnet18, mobilenetv2 and the transformer at batch 16 stay parallel.
PARALLEL_MIN_WORK = 1 << 23
#: The same for blocked convs (and their padded inputs): a conv's multiply-add costs more
#: time than a matmul's (loads of strided windows, memory-bound depthwise and 1x1 convs),
#: so smaller nests pay for the wake-up. On 2 cores, 2 threads: mobilenetv2 at batch 1 gains
#: ~20% over 2**23 at 2**20..2**22; lenet5 at batch 16 takes 0.11 ms at 2**20 and 2**21
#: (its 1.4M and 2.4M convs split), 0.09 ms at 2**22.
CONV_PARALLEL_MIN_WORK = 1 << 22
#: What one depthwise multiply-add costs against a dense conv's, for the threshold above: a
#: depthwise conv reuses no input across output channels, so every multiply-add loads a
#: vector (through the padding test). Measured single-threaded on mobilenetv2's layers:
#: 39 G multiply-adds/s against 80 for its 1x1 convs. At 1 (the dense convs' threshold) its
#: two largest depthwise convs (3.6M and 4.1M multiply-adds, 0.10 ms each) ran on one core;
#: counted twice they split, and mobilenetv2 at batch 1 takes 2.07 ms instead of 2.30 ms
#: (batch 16 unchanged: its convs were parallel already).
DEPTHWISE_MAC_COST = 2
#: The same for a one-row matmul (a classifier head at batch 1): each multiply-add streams
#: a weight from memory, used once, so one core's bandwidth bounds it. mobilenetv2 at batch
#: 1 (its 1280x1000 head, 5 MB of weights, cold in the model): 2.09 -> 1.97 ms at 8 or 16.
MATVEC_MAC_COST = 8


@dataclass(frozen=True, slots=True)
class CPUFeatures:
    """vector_bits: SIMD register width; vector_registers: how many of them; cores: threads the
    parallel loops may use."""

    vector_bits: int = 128
    vector_registers: int = 16
    cores: int = 1

    def lanes(self, dtype_bits: int = 32) -> int:
        """Elements of ``dtype_bits`` in one vector register."""
        return max(1, self.vector_bits // dtype_bits)

    @classmethod
    def of(cls, target: tvm.target.Target) -> CPUFeatures:
        from tvm.target import codegen

        def has(feature: str) -> bool:
            try:
                return bool(codegen.target_has_features(feature, target))
            except Exception:  # not an x86 target, or LLVM does not know the feature
                return False

        # llvm_get_vector_width describes the host, not ``target``: ask for the features.
        if has("avx512f"):
            bits, registers = 512, 32
        elif has("avx"):
            bits, registers = 256, 16
        elif has("sve") or has("neon") or has("sse2"):
            bits, registers = 128, 32 if has("neon") else 16
        else:
            bits, registers = 128, 16
        cores = int(target.attrs.get("num-cores", 1) or 1) if hasattr(target, "attrs") else 1
        return cls(vector_bits=bits, vector_registers=registers, cores=max(cores, 1))

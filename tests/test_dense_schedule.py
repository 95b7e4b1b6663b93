"""The dense/matmul CPU schedule (targets/llvm_cpu/schedules/dense.py): where it applies,
what it does to TIR and machine code, and results against ONNX Runtime for awkward sizes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import te

from hcompile.targets.llvm_cpu import LLVMCPUTarget
from hcompile.targets.llvm_cpu.schedules import CPUFeatures, schedule_prim_func
from hcompile.targets.llvm_cpu.schedules.dense import schedule_dense, tile_sizes
from tests.ops.harness import Const, check_node, rand

AVX512 = CPUFeatures(vector_bits=512, vector_registers=32, cores=2)
AVX2 = CPUFeatures(vector_bits=256, vector_registers=16, cores=2)


def _dense(batch: tuple[int, ...], m: int, k: int, n: int,
           epilogue: bool = True) -> tvm.tirx.PrimFunc:
    """``relu(A @ B + bias)`` (or the bare matmul), B shared over the batch axes."""
    a = te.placeholder((*batch, m, k), name="A")
    b = te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((*batch, m, n), lambda *i: te.sum(a[(*i[:-1], r)] * b[r, i[-1]], axis=r),
                   name="C")
    if not epilogue:
        return te.create_prim_func([a, b, c])
    bias = te.placeholder((n,), name="bias")
    d = te.compute(c.shape, lambda *i: te.max(c(*i) + bias[i[-1]], tvm.tirx.const(0.0)),
                   name="D")
    return te.create_prim_func([a, b, bias, d])


def _scheduled_dense(func: tvm.tirx.PrimFunc, features: CPUFeatures) -> tvm.tirx.PrimFunc | None:
    sch = schedule_dense(func, features)
    return None if sch is None else sch.mod["main"]


@pytest.mark.parametrize(("rows", "cols", "features", "expected"), [
    (16, 1024, AVX512, (8, 32)),  # 8 rows x 2 vectors of accumulators
    (16, 100, AVX512, (8, 20)),  # N not a multiple of 16: two 10-wide vectors per row
    (16, 84, AVX512, (8, 28)),
    (1, 100, AVX512, (1, 50)),  # GEMV: a wide row
    (1, 256, AVX512, (1, 64)),
    (20, 256, AVX512, (5, 32)),
    (7, 13, AVX512, (7, 13)),  # primes: the whole (small) extent
    (16, 64, AVX2, (4, 16)),  # 16 registers: 4 rows x 2 vectors
])
def test_tile_sizes(rows, cols, features, expected):
    assert tile_sizes(rows, cols, features) == expected


def test_applies_with_register_tile_fused_epilogue_and_parallel_loop():
    scheduled = _scheduled_dense(_dense((), 256, 256, 128), AVX512)  # 2**23 multiply-adds
    assert scheduled is not None
    text = scheduled.script()
    assert 'scope="local"' in text  # accumulators in a local tile
    assert "T.parallel" in text and "T.unroll" in text and "T.vectorized" in text
    # the epilogue runs per tile: its block sits under the parallel loop, no second nest
    parallel_at = text.index("T.parallel")
    assert text.index('T.sblock("D")') > parallel_at
    assert text.count("T.parallel") == 1


def test_small_work_stays_on_one_core():
    scheduled = _scheduled_dense(_dense((), 1, 64, 256), AVX512)
    assert scheduled is not None and "T.parallel" not in scheduled.script()


def test_rule_entry_point_uses_it():
    text = schedule_prim_func(_dense((), 16, 64, 100), AVX512).script()
    assert 'scope="local"' in text


def test_not_a_matmul_is_left_to_the_generic_rule():
    x = te.placeholder((8, 32), name="X")
    r = te.reduce_axis((0, 32), name="r")
    total = te.compute((8,), lambda i: te.sum(x[i, r], axis=r), name="S")
    assert _scheduled_dense(te.create_prim_func([x, total]), AVX512) is None
    # a producer before the matmul (here a transpose of A): not this schedule
    a = te.placeholder((32, 8), name="A")
    b = te.placeholder((32, 16), name="B")
    at = te.compute((8, 32), lambda i, k: a[k, i] * 2.0, name="AT")
    c = te.compute((8, 16), lambda i, j: te.sum(at[i, r] * b[r, j], axis=r), name="C")
    assert _scheduled_dense(te.create_prim_func([a, b, c]), AVX512) is None


def _compile(func: tvm.tirx.PrimFunc) -> tvm.runtime.Executable:
    return tvm.compile(tvm.IRModule({"main": func}), LLVMCPUTarget().tvm_target())


@pytest.mark.parametrize(("batch", "m", "k", "n"), [
    ((), 16, 784, 100), ((), 1, 784, 100), ((), 5, 1, 33), ((2, 3), 7, 9, 17), ((), 64, 128, 96),
    ((16,), 1, 256, 100), ((1, 5), 3, 16, 48),
])
def test_scheduled_code_matches_numpy(batch, m, k, n):
    features = CPUFeatures.of(LLVMCPUTarget().tvm_target())
    scheduled = _scheduled_dense(_dense(batch, m, k, n), features)
    assert scheduled is not None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((*batch, m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out = tvm.runtime.tensor(np.zeros((*batch, m, n), np.float32))
    _compile(scheduled)["main"](*(tvm.runtime.tensor(v) for v in (a, b, bias)), out)
    np.testing.assert_allclose(out.numpy(), np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)


def test_machine_code_is_vectorised():
    features = CPUFeatures.of(LLVMCPUTarget().tvm_target())
    if features.vector_bits < 512:
        pytest.skip("the host has no AVX-512 (the check looks for zmm FMAs)")
    scheduled = _scheduled_dense(_dense((), 16, 64, 256), features)
    asm = _compile(scheduled).mod.inspect_source("asm")
    # the k loop's multiply-adds: packed FMAs on 512-bit registers
    assert len(re.findall(r"vfmadd\w*ps\s+[^\n]*zmm", asm)) >= 8


def test_batch_of_single_rows_with_shared_weights_is_tiled_as_rows():
    """(16, 1, K) @ (K, N) (attention's projections at batch 1): the batch axis is the row
    axis of the register tile, so the weights are streamed once per row tile."""
    text = _scheduled_dense(_dense((16,), 1, 256, 768), AVX512).script()
    assert "_fused" in text  # batch and rows fused into one row axis
    rows = tile_sizes(16, 768, AVX512)[0]
    assert rows > 1 and f"T.unroll({rows})" in text


def _vector_widths(text: str) -> list[int]:
    return [int(w) for w in re.findall(r"T\.vectorized\((?:T\.int64\()?(\d+)", text)]


@pytest.mark.parametrize(("m", "n"), [(16, 100), (1, 100), (16, 84)])
def test_partial_vectors_are_unrolled_not_wider_than_a_register(m, n):
    """Columns that are no whole vectors: vectors of one partial width (at most one
    register), several of them unrolled; never an odd width over one register."""
    scheduled = _scheduled_dense(_dense((), m, 784, n), AVX512)
    assert scheduled is not None
    widths = _vector_widths(scheduled.script())
    assert widths and all(w <= 16 or w % 16 == 0 for w in widths), widths
    assert max(widths) < tile_sizes(m, n, AVX512)[1]  # the tile's columns: several vectors


def test_partial_vector_machine_code_keeps_the_tile_in_registers():
    features = CPUFeatures.of(LLVMCPUTarget().tvm_target())
    if features.vector_bits < 512:
        pytest.skip("the host has no AVX-512 (the check looks for zmm FMAs)")
    asm = _compile(_scheduled_dense(_dense((), 16, 784, 100), features)).mod.inspect_source("asm")
    assert len(re.findall(r"vfmadd\w*ps\s+[^\n]*zmm", asm)) >= 16
    # an odd width over one register is assembled lane by lane: no such shuffles
    assert len(re.findall(r"vinsertps", asm)) < 16


# -- through the compiler, against ONNX Runtime ------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    ((16, 784), (784, 100)),  # N not a multiple of the vector
    ((1, 784), (784, 10)),
    ((6, 1), (1, 33)),  # K = 1
    ((3, 17, 5), (5, 19)),
])
def test_matmul_constant_b_odd_sizes(a, b):
    check_node("MatMul", [rand(*a), Const(rand(*b))], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("a", "b"), [
    ((2, 1, 16, 8), (3, 8, 20)),  # batched, broadcast both ways
    ((4, 16, 64), (4, 64, 16)),  # attention's scores
    ((4, 16, 16), (4, 16, 64)),  # attention's weighted sum
])
def test_batched_matmul(a, b):
    check_node("MatMul", [rand(*a), rand(*b)], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 2.0), (1.5, 0.0)])
def test_gemm_constant_b(trans_a, trans_b, alpha, beta):
    m, k, n = 5, 24, 100
    a = rand(k, m) if trans_a else rand(m, k)
    b = rand(n, k) if trans_b else rand(k, n)
    check_node("Gemm", [a, Const(b), Const(rand(n))],
               {"transA": trans_a, "transB": trans_b, "alpha": alpha, "beta": beta},
               rtol=1e-4, atol=1e-4)

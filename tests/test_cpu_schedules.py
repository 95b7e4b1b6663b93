"""The CPU schedule rules: what they do to TIR, and that scheduled code computes the same."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax, te, topi

from hcompile.targets.llvm_cpu import LLVMCPUTarget
from hcompile.targets.llvm_cpu.schedules import CPUFeatures, cpu_pipeline, schedule_prim_func

FEATURES = CPUFeatures(vector_bits=256, vector_registers=16, cores=2)


def _matmul(m: int, n: int, k: int) -> tvm.tirx.PrimFunc:
    a = te.placeholder((m, k), name="A")
    b = te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    d = te.compute((m, n), lambda i, j: te.max(c[i, j], tvm.tirx.const(0.0, "float32")),
                   name="D")
    return te.create_prim_func([a, b, d])


def _run(func: tvm.tirx.PrimFunc, *arrays: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    target = LLVMCPUTarget().tvm_target()
    lib = tvm.compile(tvm.IRModule({"main": func}), target)
    args = [tvm.runtime.tensor(a) for a in arrays]
    out = tvm.runtime.tensor(np.zeros(out_shape, dtype="float32"))
    lib["main"](*args, out)
    return out.numpy()


def test_features_come_from_the_target():
    target = tvm.target.Target({"kind": "llvm", "mcpu": "haswell", "num-cores": 3})
    features = CPUFeatures.of(target)
    assert features.vector_bits == 256 and features.lanes(32) == 8
    assert features.vector_registers == 16 and features.cores == 3
    avx512 = CPUFeatures.of(tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512"}))
    assert avx512.lanes(32) == 16 and avx512.vector_registers == 32


def test_matmul_gets_register_tile_vectors_and_parallel_loop():
    func = _matmul(256, 192, 256)  # > 2**23 multiply-adds: enough to go parallel
    scheduled = schedule_prim_func(func, FEATURES)
    assert scheduled is not None
    text = scheduled.script()
    assert "T.vectorized" in text and "T.parallel" in text and "T.unroll" in text
    # The relu epilogue was inlined: one output block besides the reduction's init/update.
    assert 'T.sblock("D")' not in text or 'T.sblock("C_update")' in text


@pytest.mark.parametrize("shape", [(1, 100, 784), (64, 96, 128), (7, 13, 5)])
def test_scheduled_matmul_matches_numpy(shape):
    m, n, k = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    scheduled = schedule_prim_func(_matmul(m, n, k), FEATURES)
    assert scheduled is not None
    got = _run(scheduled, a, b, out_shape=(m, n))
    np.testing.assert_allclose(got, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)


def test_small_loop_nests_stay_on_one_core():
    scheduled = schedule_prim_func(_matmul(1, 16, 16), FEATURES)
    assert scheduled is not None and "T.parallel" not in scheduled.script()


def test_a_large_one_row_matmul_goes_parallel_where_more_rows_of_the_same_work_do_not():
    """A one-row product streams each weight once (bandwidth-bound): 1.3M multiply-adds are
    worth both cores; the same multiply-adds over 2 rows reuse each weight and stay on one."""
    one_row = schedule_prim_func(_matmul(1, 1024, 1280), FEATURES)
    two_rows = schedule_prim_func(_matmul(2, 512, 1280), FEATURES)
    assert one_row is not None and "T.parallel" in one_row.script()
    assert two_rows is not None and "T.parallel" not in two_rows.script()


def test_calls_without_vector_lowering_stay_scalar():
    a = te.placeholder((256,), name="A")
    b = te.compute((256,), lambda i: tvm.tirx.cosh(a[i]), name="B")
    scheduled = schedule_prim_func(te.create_prim_func([a, b]), FEATURES)
    assert scheduled is not None and "T.vectorized" not in scheduled.script()
    x = np.linspace(-2, 2, 256).astype(np.float32)
    np.testing.assert_allclose(_run(scheduled, x, out_shape=(256,)), np.cosh(x), rtol=1e-5)


def _conv_module(channels: int, groups: int) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, channels, 14, 14], "float32"))
    w = relax.Var("w", relax.TensorType([16 if groups == 1 else channels,
                                         channels // groups, 3, 3], "float32"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w, padding=1, groups=groups))
            y = bb.emit(relax.op.nn.relu(y))
            p = bb.emit(relax.op.nn.max_pool2d(y, pool_size=2, strides=2))
            s = bb.emit(relax.op.nn.softmax(relax.op.mean(p, axis=[2, 3])))
            out = bb.emit_output(s)
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("groups", [1, 8], ids=["conv", "depthwise"])
def test_conv_pool_softmax_same_with_and_without_schedules(groups):
    module = _conv_module(8, groups)
    target = LLVMCPUTarget().tvm_target()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 8, 14, 14)).astype(np.float32)
    w_shape = [int(d) for d in module["main"].params[1].ty.shape]
    w = rng.standard_normal(w_shape).astype(np.float32)
    results = []
    for schedules in (True, False):
        exe = tvm.compile(module, target, relax_pipeline=cpu_pipeline(target,
                                                                      schedules=schedules))
        vm = relax.VirtualMachine(exe, tvm.cpu())
        results.append(vm["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w)).numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_scheduling_pass_marks_functions_scheduled():
    module = _conv_module(8, 1)
    target = LLVMCPUTarget().tvm_target()
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

    from hcompile.targets.llvm_cpu.schedules import ScheduleCPU

    with target:
        legal = tvm.transform.Sequential(cpu_generic.legalize_passes(target))(module)
        scheduled = ScheduleCPU(CPUFeatures.of(target))(legal)
    funcs = [f for _, f in scheduled.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert funcs and all(f.attrs.get("tirx.is_scheduled", False) for f in funcs)


def _narrow_conv(batch: int = 2) -> tvm.tirx.PrimFunc:
    """LeNet's first conv (1 input, 6 output channels: not blocked by the layout pass, the
    generic rule schedules it) with its bias + relu epilogue, as legalization fuses it."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([batch, 1, 28, 28], "float32"))
    w = relax.Var("w", relax.TensorType([6, 1, 5, 5], "float32"))
    b = relax.Var("b", relax.TensorType([1, 6, 1, 1], "float32"))
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w, padding=2))
            y = bb.emit_output(relax.op.nn.relu(relax.op.add(y, b)))
        bb.emit_func_output(y)
    module = tvm.transform.Sequential([
        relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
        relax.transform.FuseOps(), relax.transform.FuseTIR()])(bb.get())
    func = next(f for _, f in module.functions_items() if isinstance(f, tvm.tirx.PrimFunc))
    return func.with_attr("global_symbol", "main")


def test_reduction_accumulates_in_a_register_tile_of_whole_or_partial_vectors():
    avx512 = CPUFeatures(vector_bits=512, vector_registers=32, cores=2)
    scheduled = schedule_prim_func(_narrow_conv(), avx512)
    assert scheduled is not None
    text = scheduled.script()
    assert 'scope="local"' in text  # accumulators in a local tile, not the output buffer
    widths = [int(w) for w in re.findall(r"T\.vectorized\((?:T\.int64\()?(\d+)", text)]
    # 28 output columns: two unrolled 14-wide vectors, not one <28 x float>
    assert 14 in widths and all(w <= 16 or w % 16 == 0 for w in widths), widths
    # the epilogue (bias, relu) is computed from the tile: no separate loop nest over the output
    assert text.count('T.sblock("compute")') == 1
    assert text.index('T.sblock("compute")') > text.index('T.sblock("conv2d_nchw_update")')


def test_narrow_conv_matches_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal((1, 6, 1, 1)).astype(np.float32)
    func = _narrow_conv()
    host = CPUFeatures.of(LLVMCPUTarget().tvm_target())
    got = _run(schedule_prim_func(func, host), x, w, b, out_shape=(2, 6, 28, 28))
    expected = _run(func, x, w, b, out_shape=(2, 6, 28, 28))  # TVM's unscheduled code
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_reduction_without_elementwise_consumer_keeps_a_copy_out():
    """A reduction whose result feeds another reduction (softmax's max, then the sum):
    scheduled, and the results match the unscheduled code."""
    x = te.placeholder((4, 100), name="X")
    func = te.create_prim_func([x, topi.nn.softmax(x, axis=1)])
    scheduled = schedule_prim_func(func, FEATURES)
    assert scheduled is not None
    data = np.random.default_rng(3).standard_normal((4, 100)).astype(np.float32)
    np.testing.assert_allclose(_run(scheduled, data, out_shape=(4, 100)),
                               _run(func, data, out_shape=(4, 100)), rtol=1e-5, atol=1e-6)


def _layer_norm(shape: tuple[int, ...]) -> tvm.tirx.PrimFunc:
    x = te.placeholder(shape, name="x")
    gamma = te.placeholder(shape[-1:], name="gamma")
    beta = te.placeholder(shape[-1:], name="beta")
    out = topi.nn.layer_norm(x, gamma, beta, axis=[len(shape) - 1], epsilon=1e-5)
    return te.create_prim_func([x, gamma, beta, out])


@pytest.mark.parametrize("shape", [(4, 6, 64), (3, 8), (5, 48), (5, 20)])
def test_row_moments_are_vectorised_along_the_row_and_match_numpy(shape):
    """Layernorm's moments reduce along the contiguous last axis: partial-sum vectors per
    row (rfactor), not vectors across rows that gather one element from each."""
    scheduled = schedule_prim_func(_layer_norm(shape), FEATURES)
    assert scheduled is not None
    text = scheduled.script()
    lanes = FEATURES.lanes(32)
    if shape[-1] % lanes == 0:
        assert text.count("_rf = T.sblock_alloc_buffer") == 2, text  # mean and variance
        assert re.search(rf"T\.vectorized\((T\.int64\()?{lanes}\)", text), text
    else:  # a row that is not whole vectors keeps the generic rule
        assert "_rf" not in text
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype("float32") * 3 + 1
    gamma = rng.standard_normal(shape[-1:]).astype("float32")
    beta = rng.standard_normal(shape[-1:]).astype("float32")
    got = _run(scheduled, x, gamma, beta, out_shape=shape)
    mean = x.mean(axis=-1, keepdims=True)
    want = (x - mean) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

"""The CPU's fast erf/tanh/sigmoid/softmax (targets/llvm_cpu/fast_math.py): close to the
exact functions everywhere, saturated beyond their clamps, NaN kept, other dtypes untouched."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from tvm import relax

from hcompile.targets.llvm_cpu import LLVMCPUTarget

_erf = np.vectorize(math.erf, otypes=[np.float64])
EXACT = {
    "erf": _erf,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
}
SPECIAL = np.array([np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 88.5, -88.5, 9.5, -4.5])


def _run(op: str, x: np.ndarray, **attrs: int) -> np.ndarray:
    bb = relax.BlockBuilder()
    var = relax.Var("x", relax.TensorType(x.shape, str(x.dtype)))
    make = relax.op.nn.softmax if op == "softmax" else getattr(relax.op, op)
    with bb.function("main", [var]):
        with bb.dataflow():
            out = bb.emit_output(make(var, **attrs))
        bb.emit_func_output(out)
    cpu = LLVMCPUTarget()
    target = cpu.tvm_target()
    executable = tvm.compile(bb.get(), target, relax_pipeline=cpu.relax_pipeline(target))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("op", sorted(EXACT))
def test_close_to_the_exact_function(op):
    x = np.concatenate([np.linspace(-30, 30, 20001), SPECIAL]).astype(np.float32)
    got = _run(op, x)
    np.testing.assert_allclose(got, EXACT[op](x.astype(np.float64)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("op", sorted(EXACT))
def test_nan_stays_nan(op):
    x = np.array([np.nan, 1.0, np.nan, -np.nan], np.float32)
    got = _run(op, x)
    assert np.isnan(got[[0, 2, 3]]).all() and not np.isnan(got[1])


def test_float64_keeps_the_exact_function():
    x = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(_run("erf", x), _erf(x), rtol=1e-12, atol=1e-14)


def test_fast_sigmoid_is_vectorised_by_the_rule():
    """fast_exp builds 2**n with ``reinterpret``: the rule must still vectorise the loop."""
    from tvm import te

    from hcompile.targets.llvm_cpu.fast_math import FAST
    from hcompile.targets.llvm_cpu.schedules import CPUFeatures, schedule_prim_func

    x = te.placeholder((4, 256), name="x")
    func = te.create_prim_func([x, FAST["relax.sigmoid"](x)])
    assert "reinterpret" in func.script()
    scheduled = schedule_prim_func(func, CPUFeatures(vector_bits=512, vector_registers=32))
    assert scheduled is not None and "T.vectorized" in scheduled.script()


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # rows of -inf: NaN, as the exact function gives
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_softmax_close_to_the_exact_function_along_any_axis(axis):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 32, 48)) * 20).astype(np.float32)
    x[0, 3, :5] = 88.0  # large, equal maxima
    x[1, :, 7] = -1e30
    got = _run("softmax", x, axis=axis)
    np.testing.assert_allclose(got, _softmax(x, axis), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-5)


def test_softmax_masked_scores_get_exactly_zero_and_nan_stays_nan():
    x = np.zeros((4, 32), np.float32)
    x[0, 16:] = -np.inf  # an attention mask
    x[1, 5] = np.nan
    x[2, :] = -np.inf  # everything masked: NaN, as exp/sum gives
    x[3, 0] = 100.0  # the others underflow to 0
    got = _run("softmax", x, axis=-1)
    assert (got[0, 16:] == 0).all()
    np.testing.assert_allclose(got[0, :16], 1 / 16, rtol=1e-6)
    assert np.isnan(got[1]).all() and np.isnan(got[2]).all()
    assert got[3, 0] == 1.0 and (got[3, 1:] == 0).all()


def test_fast_softmax_is_vectorised_along_the_row():
    from tvm import te

    from hcompile.targets.llvm_cpu.fast_math import FAST
    from hcompile.targets.llvm_cpu.schedules import CPUFeatures, schedule_prim_func

    x = te.placeholder((16, 256), name="x")
    func = te.create_prim_func([x, FAST["relax.nn.softmax"](x, -1)])
    assert "reinterpret" in func.script() and "T.exp(" not in func.script()
    scheduled = schedule_prim_func(func, CPUFeatures(vector_bits=512, vector_registers=32))
    assert scheduled is not None
    assert scheduled.script().count("_rf = T.sblock_alloc_buffer") == 2  # max and sum

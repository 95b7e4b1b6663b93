"""Erf, tanh and sigmoid as vectorisable polynomials on the CPU.

LLVM has no vector ``erf``/``tanh``/``exp`` here: TVM's versions become one libm call per
element, a scalar loop. Measured on 16x1024 float32 (AVX-512, one core): erf 80 µs vs 2 µs,
tanh 46 µs vs 2 µs, sigmoid (libm exp) 23 µs vs 2 µs. That was the GELU epilogue of the
zoo's transformer and most of every LSTM cell. ``topi.fast_erf``/``fast_tanh``/``fast_exp``
are clamped rational/polynomial approximations within a few float32 ulps (the kind ONNX
Runtime's own kernels use); beyond the clamp they give the saturated value (±1, 0/1).
NaN is passed through explicitly (the clamps would turn it into a number). Only float32:
the approximations are not meant for other types, which keep the exact functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tvm
from tvm import relax, te, tirx, topi
from tvm.relax import expr_functor


def _nan_safe(fast: Callable[[te.Tensor], te.Tensor]) -> Callable[[te.Tensor], te.Tensor]:
    def compute(x: te.Tensor) -> te.Tensor:
        y = fast(x)
        return te.compute(x.shape, lambda *i: tirx.Select(tirx.isnan(x(*i)), x(*i), y(*i)),
                          name="fast_math", tag="elemwise")
    return compute


def _fast_sigmoid(x: te.Tensor) -> te.Tensor:
    e = topi.fast_exp(topi.negative(x))
    return te.compute(x.shape, lambda *i: tirx.const(1.0, x.dtype) / (1.0 + e(*i)),
                      name="sigmoid", tag="elemwise")


#: relax op -> its fast float32 version (a TE compute)
FAST = {
    "relax.erf": _nan_safe(topi.fast_erf),
    "relax.tanh": _nan_safe(topi.fast_tanh),
    "relax.sigmoid": _nan_safe(_fast_sigmoid),
}


@expr_functor.mutator
class _FastMath(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or call.op.name not in FAST:
            return call
        if getattr(call.args[0].ty, "dtype", None) != "float32":
            return call
        return self.builder_.call_te(FAST[call.op.name], call.args[0])


@tvm.transform.module_pass(opt_level=0, name="hcompile.FastMath")
class FastMath:
    """Replace float32 erf/tanh/sigmoid calls with their fast versions (before legalizing)."""

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        mutator = _FastMath(mod)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gvar, mutator.visit_expr(func))
        return mutator.builder_.get()

"""Erf, tanh, sigmoid and softmax's exp as vectorisable polynomials on the CPU.

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


#: topi.fast_exp's input clamp (its lowest exponent)
_FAST_EXP_CLAMP = -88.3762626647949


def _fast_softmax(x: te.Tensor, axis: int) -> te.Tensor:
    """TOPI's softmax (max, exp of the difference, sum, divide) with ``fast_exp``."""
    axis %= len(x.shape)

    def row(index: tuple[Any, ...]) -> tuple[Any, ...]:  # the index without ``axis``
        return index[:axis] + index[axis + 1:]

    def along(index: tuple[Any, ...], k: Any) -> tuple[Any, ...]:
        return (*index[:axis], k, *index[axis:])

    rows = row(tuple(x.shape))
    k = te.reduce_axis((0, x.shape[axis]), name="k")
    maxelem = te.compute(rows, lambda *i: te.max(x(*along(i, k)), axis=k),
                         name="T_softmax_maxelem")
    shifted = te.compute(x.shape, lambda *i: x(*i) - maxelem(*row(i)), name="T_softmax_shift",
                         tag="elemwise")
    fast = topi.fast_exp(shifted)
    # fast_exp clamps its input at -88.38 (about 4e-39): a masked (-inf) score must still get
    # exactly 0, as with the exact exp; NaN stays NaN.
    floor = tirx.const(_FAST_EXP_CLAMP, x.dtype)
    exp = te.compute(x.shape, lambda *i: tirx.Select(
        tirx.isnan(shifted(*i)), shifted(*i),
        tirx.Select(shifted(*i) < floor, tirx.const(0.0, x.dtype), fast(*i))),
        name="T_softmax_exp", tag="elemwise")
    k2 = te.reduce_axis((0, x.shape[axis]), name="k")
    expsum = te.compute(rows, lambda *i: te.sum(exp(*along(i, k2)), axis=k2),
                        name="T_softmax_expsum")
    return te.compute(x.shape, lambda *i: exp(*i) / expsum(*row(i)), name="T_softmax_norm")


#: relax op -> its fast float32 version (a TE compute of the input and the call's attrs)
FAST: dict[str, Callable[..., te.Tensor]] = {
    "relax.erf": _nan_safe(topi.fast_erf),
    "relax.tanh": _nan_safe(topi.fast_tanh),
    "relax.sigmoid": _nan_safe(_fast_sigmoid),
    # softmax (attention, classifier heads): 16x16x256 took 93 µs of libm expf calls
    "relax.nn.softmax": _fast_softmax,
}
#: attrs passed on to the fast version
_ATTRS = {"relax.nn.softmax": ("axis",)}


@expr_functor.mutator
class _FastMath(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or call.op.name not in FAST:
            return call
        if getattr(call.args[0].ty, "dtype", None) != "float32":
            return call
        attrs = [int(getattr(call.attrs, name)) for name in _ATTRS.get(call.op.name, ())]
        return self.builder_.call_te(FAST[call.op.name], call.args[0], *attrs)


@tvm.transform.module_pass(opt_level=0, name="hcompile.FastMath")
class FastMath:
    """Replace float32 erf/tanh/sigmoid/softmax calls with their fast versions (before
    legalizing)."""

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        mutator = _FastMath(mod)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gvar, mutator.visit_expr(func))
        return mutator.builder_.get()

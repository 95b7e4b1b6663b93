"""Whole vectors for matmuls with constant weights: output columns padded to a vector multiple.

The dense schedule (:mod:`.schedules.dense`) vectorises along the output columns. When their
count is not a multiple of the vector width it falls back to the widest partial vector that
divides it: 10 lanes of 16 for the seed MLP's 100 hidden units (16x784x100 on one core: 15 µs,
where whole vectors over 112 columns take about 11). So a matmul ``x @ W`` whose ``W`` is a
weight gets ``W`` padded with zero columns up to a whole number of vectors (at most
``MAX_WASTE`` more columns), and the padded output is kept through elementwise ops that map
finite to finite (bias adds with the bias padded by zeros, ReLU, clip, ...). A following
matmul with a weight takes the padded tensor as is, with zero rows added to its weight; any
other consumer gets the tensor sliced back, once. Padded columns hold finite values times
zero rows, so results are exact. The weight padding moves into ``main_transform_params``
(``LiftTransformParams`` runs after this pass): weights are padded once, at load.
"""

from __future__ import annotations

import math
from typing import Any

import tvm
from tvm import relax

from hcompile.targets.llvm_cpu.relax_types import all_float32, static_shape

#: At most this fraction of extra columns (100 -> 112 is 12%; 20 -> 32 would be 60%, more
#: work than the partial vectors lose).
MAX_WASTE = 0.25

#: Elementwise ops that keep padded columns finite (no division: 0/0 is NaN).
_KEEPS_FINITE = frozenset(("relax.add", "relax.subtract", "relax.multiply", "relax.maximum",
                           "relax.minimum", "relax.clip", "relax.nn.relu", "relax.sigmoid",
                           "relax.tanh", "relax.nn.silu", "relax.nn.gelu"))


def padded_columns(columns: int, lanes: int) -> int:
    """The column count a weight with ``columns`` columns is padded to (itself if none)."""
    if columns <= lanes or columns % lanes == 0:
        return columns
    padded = -(-columns // lanes) * lanes
    return padded if padded <= columns * (1 + MAX_WASTE) else columns


@tvm.transform.module_pass(opt_level=0, name="hcompile.PadDenseColumns")
class PadDenseColumns:
    """Pad the weights of ``x @ W`` to whole vectors of columns (see the module docstring)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        padder = None
        for gvar, func in list(mod.functions_items()):
            if not isinstance(func, relax.Function) or func.attrs is None \
                    or "num_input" not in func.attrs:
                continue
            weights = set(func.params[int(func.attrs["num_input"]):])
            padder = _Padder(mod, self.lanes, weights)
            padder.builder_.update_func(gvar, padder.visit_expr(func))
            mod = padder.builder_.get()
        return mod


@relax.expr_functor.mutator
class _Padder(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, lanes: int, weights: set[Any]) -> None:
        super().__init__(mod)
        self.lanes = lanes
        self.weights = weights
        self.padded: dict[Any, tuple[relax.Var, int]] = {}  # var -> (padded var, columns)
        self.sliced: set[Any] = set()  # padded vars whose unpadded value exists

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        rewritten = self._rewrite(value) if isinstance(value, relax.Call) else None
        if rewritten is None:
            self._unpad_args(value)
            super().visit_var_binding_(binding)
            return
        call, padded = rewritten
        if not padded:  # consumed a padded input, output as before
            self.builder_.emit_normalized(
                relax.VarBinding(binding.var, self.builder_.normalize(call)))
            return
        new = self.builder_.emit(call, name_hint=binding.var.name + "_p")
        self.padded[binding.var] = (new, _last(binding.var))
        if not isinstance(binding.var, relax.DataflowVar):  # a function output: unpadded now
            self.sliced.add(binding.var)
            self.builder_.emit_normalized(relax.VarBinding(
                binding.var, self.builder_.normalize(self._slice(new, _last(binding.var)))))

    def _rewrite(self, call: relax.Call) -> tuple[relax.Expr, bool] | None:
        name = getattr(call.op, "name", "")
        if not all_float32(call):
            return None
        if name == "relax.matmul":
            return self._matmul(call)
        if name in _KEEPS_FINITE:
            return self._elementwise(call)
        return None

    def _matmul(self, call: relax.Call) -> tuple[relax.Expr, bool] | None:
        x, w = call.args
        ws = static_shape(w)
        if not self._is_weight(w) or ws is None or len(ws) != 2 or not all_float32(x, w):
            return None
        rows, cols = ws
        x_padded = isinstance(x, relax.Var) and x in self.padded
        # One row is a matrix-vector product, bound by reading W: more columns, more bytes
        # (the seed MLP at batch 1: 8.0 -> 9.4 µs padded).
        many_rows = math.prod((static_shape(x) or (1, 1))[:-1]) > 1
        new_cols = padded_columns(cols, self.lanes) if many_rows else cols
        if new_cols == cols and not x_padded:
            return None
        new_rows = _last(self.padded[x][0]) if x_padded else rows
        weight = self.builder_.emit(relax.op.nn.pad(
            self.visit_expr(w), [0, new_rows - rows, 0, new_cols - cols]))
        data = self.padded[x][0] if x_padded else self.visit_expr(x)
        return relax.op.matmul(data, weight), new_cols != cols

    def _elementwise(self, call: relax.Call) -> tuple[relax.Expr, bool] | None:
        out = static_shape(call)
        padded_args = [a for a in call.args if isinstance(a, relax.Var) and a in self.padded]
        if out is None or not padded_args:
            return None
        new_cols = _last(self.padded[padded_args[0]][0])
        args = []
        for arg in call.args:
            if isinstance(arg, relax.Var) and arg in self.padded:
                if self.padded[arg][1] != out[-1] or _last(self.padded[arg][0]) != new_cols:
                    return None
                args.append(self.padded[arg][0])
                continue
            shape = static_shape(arg)
            if not isinstance(getattr(arg, "ty", None), relax.TensorType) or (
                    shape is not None and all(d == 1 for d in shape)):
                args.append(self.visit_expr(arg))  # scalars broadcast as they are
            elif shape is not None and shape[-1] == out[-1] and self._is_weight(arg) \
                    and all(d == 1 for d in shape[:-1]):  # a bias: padded with zeros
                pad = [0, 0] * (len(shape) - 1) + [0, new_cols - out[-1]]
                args.append(self.builder_.emit(relax.op.nn.pad(self.visit_expr(arg), pad)))
            else:
                return None  # e.g. a full unpadded tensor: padding it would copy per call
        return relax.Call(call.op, args, call.attrs), True

    def _unpad_args(self, value: relax.Expr) -> None:
        """Give the padded tensors ``value`` uses their unpadded value (made once)."""
        if isinstance(value, relax.Call | relax.Tuple):
            for arg in value.args if isinstance(value, relax.Call) else value.fields:
                self._unpad_args(arg)
        elif isinstance(value, relax.Var) and value in self.padded and value not in self.sliced:
            var, cols = self.padded[value]
            self.sliced.add(value)
            self.set_var_remap(value, self.builder_.emit(self._slice(var, cols),
                                                         name_hint=value.name))

    def _is_weight(self, expr: relax.Expr) -> bool:
        return isinstance(expr, tvm.ir.expr.Constant) or expr in self.weights

    @staticmethod
    def _slice(padded: relax.Expr, cols: int) -> relax.Expr:
        axis = len(static_shape(padded) or (0,)) - 1
        return relax.op.strided_slice(padded, axes=[axis], begin=[0], end=[cols])


def _last(expr: relax.Expr) -> int:
    shape = static_shape(expr)
    return shape[-1] if shape else 0

"""Lower one partition (an IR :class:`Graph`) to a Relax ``IRModule`` with one function, ``main``.

Shared by every target: CPU, GPU and FPGA code all start from the same Relax function.

Calling convention of ``main`` (the runtime relies on it):
``main(*partition inputs, *params) -> tuple(one tensor per partition output)``.
Params are the partition's large constants (weights); they travel as artifact members, not
inside the compiled code. Small constants (<= ``INLINE_CONST_LIMIT`` elements) and every
*static* input (shapes, axes, pads) are baked into the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tvm
from tvm import relax

from hcompile.errors import CompileError, HcompileError, UnsupportedOpError
from hcompile.ir import Graph, Node, TensorType
from hcompile.ir.types import storage_dtype, to_storage
from hcompile.ops import narrow_types, registry

#: Constants with at most this many elements are inlined into the code instead of being params.
INLINE_CONST_LIMIT = 64


class LowerContext:
    """What an op lowering sees: Relax values by tensor name, constants, and types."""

    def __init__(self, graph: Graph, bb: relax.BlockBuilder, values: dict[str, relax.Expr],
                 types: dict[str, TensorType] | None = None,
                 constants: dict[str, np.ndarray] | None = None):
        self.graph = graph
        self.bb = bb
        self.values = values
        self._types = types if types is not None else graph.tensor_types()
        self._constants = constants if constants is not None else graph.constants

    def derived(self, types: dict[str, TensorType], values: dict[str, relax.Expr],
                constants: dict[str, np.ndarray]) -> LowerContext:
        """A view with some tensors retyped (narrow types widened: hcompile.ops.narrow_types)."""
        return LowerContext(self.graph, self.bb, {**self.values, **values},
                            {**self._types, **types}, {**self._constants, **constants})

    def value(self, name: str) -> relax.Expr:
        """The Relax value of tensor ``name``: an input, param, inlined constant or result."""
        if name not in self.values:
            if name not in self._constants:
                raise KeyError(f"tensor '{name}' has no Relax value")
            # narrow element types are carried as their integer storage bits
            value = to_storage(np.asarray(self._constants[name]))
            # Pass the dtype: relax.const narrows int64/float64 to 32 bits by default.
            self.values[name] = relax.const(value, str(value.dtype))
        return self.values[name]

    def input(self, node: Node, index: int) -> relax.Expr | None:
        """The Relax value of ``node.inputs[index]``, None for an omitted optional input."""
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        return self.value(node.inputs[index])

    def const(self, node: Node, index: int) -> np.ndarray | None:
        """The compile-time value of ``node.inputs[index]``; None when omitted.

        Raises UnsupportedOpError when the input is computed at run time.
        """
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        name = node.inputs[index]
        if name not in self._constants:
            raise UnsupportedOpError(
                f"{node.op} needs input {index} ('{name}') to be a compile-time constant, "
                "but it is computed at run time",
                node=node.name,
                hint="hcompile compiles static shapes only; fix the value in the model",
            )
        return self._constants[name]

    def type_of(self, name: str) -> TensorType:
        return self._types[name]

    def input_type(self, node: Node, index: int) -> TensorType:
        return self._types[node.inputs[index]]

    def emit(self, expr: relax.Expr) -> relax.Var:
        return self.bb.emit(expr)


def partition_params(graph: Graph) -> list[str]:
    """Constants of ``graph`` that become ``main`` params: large ones used as run-time data."""
    params: dict[str, None] = {}
    for node in graph.nodes:
        impl = registry.lookup(node.op, node.domain, node.opset)
        static = impl.static_inputs if impl else ()
        for index, name in enumerate(node.inputs):
            if name in graph.constants and index not in static and _is_param(graph, name):
                params[name] = None
    for name in graph.outputs:
        if name in graph.constants and _is_param(graph, name):
            params[name] = None
    return list(params)


def _is_param(graph: Graph, name: str) -> bool:
    return int(np.asarray(graph.constants[name]).size) > INLINE_CONST_LIMIT


def lower_graph(graph: Graph, params: Sequence[str]) -> tvm.IRModule:
    """Build the Relax module for ``graph`` (its nodes in order) with ``params`` as extra args."""
    bb = relax.BlockBuilder()
    arg_vars = [_var(name, t) for name, t in graph.inputs.items()]
    param_vars = [_var(name, graph.type_of(name)) for name in params]
    values: dict[str, relax.Expr] = {v.name: v for v in (*arg_vars, *param_vars)}
    ctx = LowerContext(graph, bb, values)
    # num_input: TVM's name for "the rest are weights" (the CPU pipeline lifts weight layout
    # transforms into a function run once at load; see targets/llvm_cpu/layout.py).
    with bb.function("main", [*arg_vars, *param_vars], attrs={"num_input": len(arg_vars)}):
        with bb.dataflow():
            for node in graph.nodes:
                _lower_node(ctx, node)
            out = bb.emit_output(relax.Tuple([ctx.value(name) for name in graph.outputs]))
        bb.emit_func_output(out)
    return bb.get()


def _var(name: str, ttype: TensorType) -> relax.Var:
    return relax.Var(name, relax.TensorType(list(ttype.shape), storage_dtype(ttype.dtype)))


def _lower_node(ctx: LowerContext, node: Node) -> None:
    impl = registry.lookup(node.op, node.domain, node.opset)
    if impl is None:
        raise UnsupportedOpError(f"no lowering for {node.op} (opset {node.opset})", node=node.name)
    try:
        if narrow_types.involved(ctx, node):
            results = narrow_types.lower_widened(ctx, node, impl.lower)
        else:
            results = list(impl.lower(ctx, node))
        _bind_results(ctx, node, results)
    except HcompileError as err:
        raise err.with_context(node=node.name) from None
    except Exception as err:  # TVM raises plain errors for bad op arguments and types
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CompileError(
            f"lowering {node.op} to Relax failed: {type(err).__name__}: {first}", node=node.name
        ) from err


def _bind_results(ctx: LowerContext, node: Node, results: list[Any]) -> None:
    live = [o for o in node.outputs if o]
    if len(results) < len(live):
        raise CompileError(f"lowering returned {len(results)} values for {len(live)} outputs",
                           node=node.name)
    for name, expr, ttype in zip(node.outputs, results, node.output_types, strict=False):
        if not name:
            continue
        # Emitting normalises the expression: TVM's type checks run here.
        var = ctx.emit(expr) if not isinstance(expr, relax.Var) else expr
        _check_lowered_type(node, name, var, ttype)
        ctx.values[name] = var


def _check_lowered_type(node: Node, name: str, var: Any, expected: TensorType) -> None:
    """Catch lowering bugs early: the Relax type must equal the IR type."""
    ty = var.ty
    shape = getattr(ty, "shape", None)
    dtype = getattr(ty, "dtype", None)
    got = tuple(int(d) for d in shape) if shape is not None else None
    if got != expected.shape or str(dtype) != storage_dtype(expected.dtype):
        raise CompileError(
            f"lowering produced {dtype}{list(got) if got is not None else '?'} for '{name}', "
            f"the IR says {expected}",
            node=node.name,
        )

"""Read a launch plan out of TVM's compiled module: the Relax ``main`` (call order, storage
TVM planned, aliases) and the host side of each TIR function (kernel launches).

Used by :mod:`hcompile.targets.launch_plan`; see its docstring for the two pitfalls handled
here (kernel argument order, launch-tag order).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tvm
from tvm import relax, tirx

from hcompile.errors import CompileError
from hcompile.runtime.launch_plan import (
    HANDLE,
    BufferArg,
    KernelArg,
    KernelInfo,
    Launch,
    LaunchPlan,
    PlanBuffer,
    PlanOutput,
    ScalarArg,
)

MAX_PLAN_CONST_BYTES = 1 << 20
_GRID = {"blockIdx.x": 0, "blockIdx.y": 1, "blockIdx.z": 2}
_BLOCK = {"threadIdx.x": 0, "threadIdx.y": 1, "threadIdx.z": 2}
_DYN_SHARED = "tirx.use_dyn_shared_memory"


@dataclass(frozen=True)
class _Tensor:
    """A tensor living in plan buffer ``buffer`` at byte ``offset``."""

    buffer: int
    offset: int
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _itemsize(self.dtype)


@dataclass(frozen=True)
class _Storage:
    buffer: int
    nbytes: int


@dataclass(frozen=True)
class _Scalar:
    dtype: str
    value: int | float


def _key(obj: Any) -> int:
    """Identity of a TVM object (its ``==`` builds expressions instead of comparing)."""
    key: int = obj.__chandle__()
    return key


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # a dtype numpy lacks (bfloat16...)
        t = tvm.DataType(dtype)
        return max(t.bits // 8, 1) * max(t.lanes, 1)


def _dims(shape: Any) -> tuple[int, ...]:
    values = getattr(shape, "values", shape)
    return tuple(int(d) for d in values)


@dataclass
class _PlanBuilder:
    functions: dict[str, tirx.PrimFunc]
    what: str
    buffers: list[PlanBuffer] = field(default_factory=list)
    kernels: dict[str, KernelInfo] = field(default_factory=dict)
    launches: list[Launch] = field(default_factory=list)
    consts: dict[int, _Tensor] = field(default_factory=dict)
    #: scalar variables of the host function being read, with their values
    bound: list[tuple[Any, int | float]] = field(default_factory=list)

    def fail(self, problem: str) -> CompileError:
        return CompileError(f"{self.what}: the launch plan cannot express {problem}",
                            hint="this partition needs TVM's own host code; keep it on the CPU")

    def new_buffer(self, kind: str, nbytes: int, **details: Any) -> int:
        self.buffers.append(PlanBuffer(len(self.buffers), kind, int(nbytes), **details))
        return len(self.buffers) - 1

    # -- Relax main -------------------------------------------------------------------------

    def run_main(self, main: relax.Function, num_inputs: int) -> list[PlanOutput]:
        env: dict[int, Any] = {}
        for i, param in enumerate(main.params):
            shape, dtype = _dims(param.ty.shape), str(param.ty.dtype)
            kind, index = ("input", i) if i < num_inputs else ("param", i - num_inputs)
            nbytes = math.prod(shape) * _itemsize(dtype)
            bid = self.new_buffer(kind, nbytes, index=index, dtype=dtype, shape=shape)
            env[_key(param)] = _Tensor(bid, 0, shape, dtype)
        for block in main.body.blocks:
            for binding in block.bindings:
                env[_key(binding.var)] = self.bind(binding, env)
        result = self.value(main.body.body, env)
        outputs = []
        for item in _flatten(result):
            if not isinstance(item, _Tensor):
                raise self.fail(f"a function result of type {type(item).__name__}")
            outputs.append(PlanOutput(item.buffer, item.shape, item.dtype, item.offset))
        return outputs

    def bind(self, binding: Any, env: dict[int, Any]) -> Any:
        value = binding.value
        if isinstance(binding, relax.MatchCast):
            return self.value(value, env)
        if isinstance(value, relax.Call):
            return self.call(value, binding.var, env)
        return self.value(value, env)

    def value(self, expr: Any, env: dict[int, Any]) -> Any:
        if isinstance(expr, relax.Var):
            if _key(expr) not in env:
                raise self.fail(f"the use of '{expr.name}' before it is defined")
            return env[_key(expr)]
        if isinstance(expr, relax.Tuple):
            return tuple(self.value(f, env) for f in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            whole = self.value(expr.tuple_value, env)
            return whole[int(expr.index)]
        if isinstance(expr, tvm.ir.GenericConst) and hasattr(expr.value, "numpy"):
            return self.const(expr)
        if isinstance(expr, tirx.IntImm | tirx.FloatImm):
            return _Scalar(str(expr.dtype), expr.value)
        raise self.fail(f"the Relax expression {type(expr).__name__} ({_short(expr)})")

    def const(self, expr: Any) -> _Tensor:
        if _key(expr) not in self.consts:
            array = np.ascontiguousarray(expr.value.numpy())
            if array.nbytes > MAX_PLAN_CONST_BYTES:
                raise self.fail(f"a folded constant of {array.nbytes} bytes (the limit is "
                                f"{MAX_PLAN_CONST_BYTES})")
            dtype = str(array.dtype)
            bid = self.new_buffer("const", array.nbytes, dtype=dtype, shape=array.shape,
                                  data=array.tobytes())
            self.consts[_key(expr)] = _Tensor(bid, 0, tuple(array.shape), dtype)
        return self.consts[_key(expr)]

    def call(self, call: Any, var: Any, env: dict[int, Any]) -> Any:
        op = call.op
        if isinstance(op, tvm.ir.GlobalVar):
            args = [self.value(a, env) for a in call.args]
            self.run_host(op.name_hint, list(_flatten(args)))
            return None
        name = getattr(op, "name", None) or getattr(op, "global_symbol", None) or \
            type(op).__name__
        args = list(call.args)
        if name == "relax.memory.alloc_storage":
            (nbytes,) = _dims(args[0])
            return _Storage(self.new_buffer("scratch", nbytes), nbytes)
        if name == "relax.memory.alloc_tensor":
            storage, offset = self.value(args[0], env), int(args[1].value)
            shape, dtype = _dims(args[2]), str(var.ty.dtype)
            tensor = _Tensor(storage.buffer, offset, shape, dtype)
            if offset + tensor.nbytes > storage.nbytes:
                raise self.fail(f"tensor '{var.name}' overflowing its storage")
            return tensor
        if name == "relax.builtin.alloc_tensor":
            shape, dtype = _dims(args[0]), str(var.ty.dtype)
            nbytes = math.prod(shape) * _itemsize(dtype)
            return _Tensor(self.new_buffer("scratch", nbytes), 0, shape, dtype)
        if name == "relax.reshape":
            source = self.value(args[0], env)
            shape = _dims(var.ty.shape)
            view = _Tensor(source.buffer, source.offset, shape, str(var.ty.dtype))
            if view.nbytes != source.nbytes:
                raise self.fail(f"reshape '{var.name}' changing the byte size")
            return view
        raise self.fail(f"a call of {name} in the host code (binding '{var.name}')")

    # -- TIR host functions -------------------------------------------------------------------

    def run_host(self, name: str, args: list[Any]) -> None:
        func = self.functions.get(name)
        if func is None:
            raise self.fail(f"a call of '{name}', which is not a TIR function of the module")
        if len(func.params) != len(args):
            raise self.fail(f"'{name}' called with {len(args)} args for {len(func.params)} "
                            "parameters")
        env = {_key(p): a for p, a in zip(func.params, args, strict=True)}
        self.bound = [(p, a.value) for p, a in zip(func.params, args, strict=True)
                      if isinstance(a, _Scalar)]
        for stmt in _statements(func.body):
            self.host_stmt(name, stmt, env)

    def host_stmt(self, name: str, stmt: Any, env: dict[int, Any]) -> None:
        if isinstance(stmt, tirx.DeclBuffer):
            env[_key(stmt.buffer)] = self.declared(name, stmt, env)
        elif isinstance(stmt, tirx.Bind):
            value = self.scalar(name, stmt.value, env)
            env[_key(stmt.var)] = _Scalar(str(stmt.var.dtype), value)
            self.bound.append((stmt.var, value))
        elif isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.scope() == "global":
            buf = stmt.buffer
            shape, dtype = _dims(buf.shape), str(buf.dtype)
            nbytes = math.prod(shape) * _itemsize(dtype)
            env[_key(buf)] = _Tensor(self.new_buffer("scratch", nbytes), 0, shape, dtype)
        elif isinstance(stmt, tirx.Evaluate) and _op_name(stmt.value) == "tirx.call_ffi_kernel":
            self.launch(name, stmt.value, env)
        else:
            raise self.fail(f"a {type(stmt).__name__} statement in the host code of '{name}'")

    def declared(self, name: str, stmt: Any, env: dict[int, Any]) -> _Tensor:
        base = self.operand(name, stmt.data, env)
        if not isinstance(base, _Tensor):
            raise self.fail(f"buffer '{stmt.buffer.name}' of '{name}' over a non-tensor")
        buf = stmt.buffer
        offset = base.offset + self.scalar(name, buf.elem_offset, env) * _itemsize(str(buf.dtype))
        view = _Tensor(base.buffer, int(offset), _dims(buf.shape), str(buf.dtype))
        size = next(b.nbytes for b in self.buffers if b.id == base.buffer)
        if view.offset + view.nbytes > size:
            raise self.fail(f"buffer '{buf.name}' of '{name}' reaching past its memory")
        return view

    def operand(self, name: str, expr: Any, env: dict[int, Any]) -> Any:
        if _op_name(expr) == "tirx.buffer_data" and _key(expr.args[0]) in env:
            return env[_key(expr.args[0])]
        if isinstance(expr, tirx.Var) and _key(expr) in env:
            return env[_key(expr)]
        if isinstance(expr, tirx.IntImm | tirx.FloatImm):
            return _Scalar(str(expr.dtype), expr.value)
        raise self.fail(f"the kernel operand {_short(expr)} in '{name}'")

    def scalar(self, name: str, expr: Any, env: dict[int, Any]) -> int:
        """Evaluate an integer expression of the host code (static shapes make it constant)."""
        analyzer = tvm.sym.Analyzer()
        for var, known in self.bound:
            analyzer.bind(var, tirx.const(known, str(var.dtype)))
        value = analyzer.simplify(expr)
        if isinstance(value, tirx.IntImm):
            return int(value.value)
        raise self.fail(f"the non-constant host expression {_short(expr)} in '{name}'")

    def launch(self, name: str, call: Any, env: dict[int, Any]) -> None:
        kernel_name = str(call.args[0].value)
        kernel = self.functions.get(kernel_name)
        if kernel is None:
            raise self.fail(f"kernel '{kernel_name}', which is not in the module")
        tags = [str(t) for t in call.attrs.launch_params]
        params = [_param_type(p) for p in kernel.params]
        operands, extents = list(call.args[1:1 + len(params)]), list(call.args[1 + len(params):])
        if len(extents) != len(tags):
            raise self.fail(f"kernel '{kernel_name}' launched with {len(extents)} extents for "
                            f"launch tags {tags}")
        grid, block, dyn_shared = [1, 1, 1], [1, 1, 1], 0
        for tag, extent in zip(tags, extents, strict=True):
            value = self.scalar(name, extent, env)
            if tag in _GRID:
                grid[_GRID[tag]] = value
            elif tag in _BLOCK:
                block[_BLOCK[tag]] = value
            elif tag == _DYN_SHARED:
                dyn_shared = value
            else:
                raise self.fail(f"launch tag '{tag}' of kernel '{kernel_name}'")
        args: list[KernelArg] = []
        for ptype, expr in zip(params, operands, strict=True):
            value = self.operand(name, expr, env)
            if ptype == HANDLE and isinstance(value, _Tensor):
                args.append(BufferArg(value.buffer, value.offset))
            elif ptype != HANDLE and isinstance(value, _Scalar):
                args.append(ScalarArg(ptype, value.value))
            else:
                raise self.fail(f"operand {_short(expr)} for a {ptype} parameter of "
                                f"'{kernel_name}'")
        info = KernelInfo(kernel_name, tuple(params), (block[0], block[1], block[2]),
                          _shared_bytes(kernel.body))
        known = self.kernels.setdefault(kernel_name, info)
        if known.block != info.block:
            raise self.fail(f"kernel '{kernel_name}' launched with two block sizes")
        self.launches.append(Launch(kernel_name, (grid[0], grid[1], grid[2]), info.block,
                                    tuple(args), name, dyn_shared))


def extract_plan(main: relax.Function, functions: dict[str, tirx.PrimFunc], num_inputs: int,
                 what: str = "partition") -> LaunchPlan:
    """The launch plan of Relax ``main`` (after CallTIRRewrite/StaticPlanBlockMemory) whose
    TIR functions are ``functions`` (after SplitHostDevice, kernels included)."""
    builder = _PlanBuilder(functions, what)
    outputs = builder.run_main(main, num_inputs)
    plan = LaunchPlan(tuple(builder.buffers), tuple(builder.kernels.values()),
                      tuple(builder.launches), tuple(outputs))
    problems = plan.problems()
    if problems:
        raise CompileError(f"{what}: the extracted launch plan is inconsistent: "
                           + "; ".join(problems[:5]))
    return plan


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, tuple | list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _statements(stmt: Any) -> Iterable[Any]:
    if isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            yield from _statements(s)
    else:
        yield stmt


def _op_name(expr: Any) -> str | None:
    op = getattr(expr, "op", None)
    return getattr(op, "name", None) if isinstance(op, tvm.ir.Op) else None


def _param_type(param: Any) -> str:
    ty = param.ty
    if isinstance(ty, tvm.ir.PointerType):
        return HANDLE
    return str(np.dtype(str(param.dtype)))


def _shared_bytes(body: Any) -> int:
    """Static local (shared) memory a kernel allocates, in bytes."""
    total = 0
    pending = [body]
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.scope() == "shared":
            buf = stmt.buffer
            total += math.prod(_dims(buf.shape)) * _itemsize(str(buf.dtype))
        if isinstance(stmt, tirx.SeqStmt):
            pending.extend(stmt.seq)
        for name in ("body", "then_case", "else_case"):
            child = getattr(stmt, name, None)
            if isinstance(child, tirx.Stmt):
                pending.append(child)
    return total


def _short(expr: Any) -> str:
    text = re.sub(r"\s+", " ", str(expr))
    return text if len(text) <= 80 else text[:77] + "..."

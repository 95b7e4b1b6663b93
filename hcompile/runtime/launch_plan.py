"""Launch plans: what a kernel-launch runner needs to run one partition's device code.

The compiler (``hcompile.targets.launch_plan``) reads a plan off TVM's real pipeline; the
CUDA and OpenCL runners execute it. The plan is plain JSON inside the artifact manifest
(``CodeSpec.extra["plan"]``) and this module reads and checks it without TVM.

A partition's code computes ``(*outputs) = main(*inputs, *params)``. Its plan lists:

``buffers``
    Device memory objects. ``kind`` says where the bytes come from: ``input`` (the partition
    input ``index``, uploaded every run), ``param`` (the partition param ``index``, uploaded
    once), ``const`` (bytes in the plan, uploaded once) or ``scratch`` (allocated once per
    execution context, never initialised). Scratch buffers are TVM's memory-planned storage:
    one scratch buffer may back several intermediate tensors whose lifetimes do not overlap.
``kernels``
    One entry per kernel in the device source: its parameter types (``handle`` for a
    buffer pointer, else a scalar dtype), its work-group (thread-block) size and its static
    local (shared) memory in bytes.
``launches``
    The host code, in order: each launch names a kernel, its grid (work-groups per
    dimension), its block (work-items per work-group, the OpenCL local size) and its
    arguments, each a buffer (plus a byte offset) or a scalar. Reshapes and other views
    cost nothing at run time: they are resolved to buffers at compile time.
``outputs``
    Where each partition output lives after the last launch: buffer, byte offset, shape, dtype.

OpenCL's global size is ``grid[i] * block[i]``; CUDA takes grid and block as they are.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from hcompile.errors import ArtifactError

#: the plan layout this hcompile writes and reads
PLAN_VERSION = 1

BUFFER_KINDS = ("input", "param", "const", "scratch")

#: parameter type of a kernel argument that is a buffer pointer
HANDLE = "handle"


@dataclass(frozen=True)
class PlanBuffer:
    """A device memory object. ``index`` is the input/param position (-1 otherwise);
    ``dtype``/``shape`` describe inputs, params and consts; ``data`` holds a const's bytes."""

    id: int
    kind: str
    nbytes: int
    index: int = -1
    dtype: str = ""
    shape: tuple[int, ...] = ()
    data: bytes = b""


@dataclass(frozen=True)
class BufferArg:
    """A kernel argument that points at ``buffer`` plus ``offset`` bytes."""

    buffer: int
    offset: int = 0


@dataclass(frozen=True)
class ScalarArg:
    """A kernel argument passed by value."""

    dtype: str
    value: int | float


KernelArg = BufferArg | ScalarArg


@dataclass(frozen=True)
class KernelInfo:
    """A kernel of the device source: parameter types, work-group size, static local memory."""

    name: str
    params: tuple[str, ...]
    block: tuple[int, int, int]
    shared_bytes: int = 0


@dataclass(frozen=True)
class Launch:
    """One kernel launch of the host code; ``call`` names the TVM function it came from."""

    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[KernelArg, ...]
    call: str = ""
    dynamic_shared_bytes: int = 0

    @property
    def global_size(self) -> tuple[int, int, int]:
        """OpenCL's global work size: work-groups times work-items per group."""
        g, b = self.grid, self.block
        return (g[0] * b[0], g[1] * b[1], g[2] * b[2])


@dataclass(frozen=True)
class PlanOutput:
    """A partition output: ``shape``/``dtype`` bytes at ``buffer`` + ``offset``."""

    buffer: int
    shape: tuple[int, ...]
    dtype: str
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class LaunchPlan:
    buffers: tuple[PlanBuffer, ...]
    kernels: tuple[KernelInfo, ...]
    launches: tuple[Launch, ...]
    outputs: tuple[PlanOutput, ...]
    version: int = PLAN_VERSION

    def buffers_of(self, kind: str) -> list[PlanBuffer]:
        return [b for b in self.buffers if b.kind == kind]

    def kernel(self, name: str) -> KernelInfo:
        for k in self.kernels:
            if k.name == name:
                return k
        raise KeyError(name)

    def scratch_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b.kind == "scratch")

    # -- JSON -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-serialisable data (what the manifest stores)."""
        return {
            "version": self.version,
            "buffers": [_buffer_json(b) for b in self.buffers],
            "kernels": [
                {"name": k.name, "params": list(k.params), "block": list(k.block),
                 "shared_bytes": k.shared_bytes}
                for k in self.kernels
            ],
            "launches": [
                {"kernel": x.kernel, "call": x.call, "grid": list(x.grid), "block": list(x.block),
                 "dynamic_shared_bytes": x.dynamic_shared_bytes,
                 "args": [_arg_json(a) for a in x.args]}
                for x in self.launches
            ],
            "outputs": [
                {"buffer": o.buffer, "offset": o.offset, "shape": list(o.shape), "dtype": o.dtype}
                for o in self.outputs
            ],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "plan") -> LaunchPlan:
        """Read a plan and check it (:meth:`problems`); any problem is an ArtifactError."""
        try:
            obj = _obj(data, where)
            version = _int(obj, "version", where)
            if version != PLAN_VERSION:
                raise _bad(f"{where}.version", f"is {version}; this hcompile reads "
                                               f"version {PLAN_VERSION}")
            plan = cls(
                buffers=tuple(_read_buffer(b, f"{where}.buffers[{i}]")
                              for i, b in enumerate(_list(obj, "buffers", where))),
                kernels=tuple(_read_kernel(k, f"{where}.kernels[{i}]")
                              for i, k in enumerate(_list(obj, "kernels", where))),
                launches=tuple(_read_launch(x, f"{where}.launches[{i}]")
                               for i, x in enumerate(_list(obj, "launches", where))),
                outputs=tuple(_read_output(o, f"{where}.outputs[{i}]")
                              for i, o in enumerate(_list(obj, "outputs", where))),
                version=version,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(where, f"is malformed: {e}") from e
        problems = plan.problems()
        if problems:
            raise _bad(where, "is inconsistent: " + "; ".join(problems[:5]))
        return plan

    def problems(self, num_inputs: int | None = None, num_params: int | None = None) -> list[str]:
        """Everything wrong with the plan's references and sizes (empty when it is sound)."""
        out: list[str] = []
        ids = [b.id for b in self.buffers]
        if ids != list(range(len(ids))):
            out.append(f"buffer ids must be 0..{len(ids) - 1} in order, got {ids}")
        sizes = {b.id: b.nbytes for b in self.buffers}
        for b in self.buffers:
            if b.kind not in BUFFER_KINDS:
                out.append(f"buffer {b.id} has unknown kind {b.kind!r}")
            if b.kind == "const" and len(b.data) != b.nbytes:
                out.append(f"const buffer {b.id} holds {len(b.data)} bytes, not {b.nbytes}")
        for kind, count in (("input", num_inputs), ("param", num_params)):
            indices = sorted(b.index for b in self.buffers if b.kind == kind)
            if count is not None and any(not 0 <= i < count for i in indices):
                out.append(f"{kind} buffers use indices {indices}, but there are {count}")
            if len(set(indices)) != len(indices):
                out.append(f"two buffers stand for the same {kind}: {indices}")
        kernels = {k.name: k for k in self.kernels}
        for i, x in enumerate(self.launches):
            k = kernels.get(x.kernel)
            if k is None:
                out.append(f"launch {i} calls unknown kernel {x.kernel!r}")
                continue
            if len(x.args) != len(k.params):
                out.append(f"launch {i} passes {len(x.args)} args to {x.kernel}, "
                           f"which takes {len(k.params)}")
            if x.block != k.block:
                out.append(f"launch {i} uses block {x.block}, kernel {x.kernel} is built for "
                           f"{k.block}")
            for j, (arg, ptype) in enumerate(zip(x.args, k.params, strict=False)):
                if isinstance(arg, BufferArg) != (ptype == HANDLE):
                    out.append(f"launch {i} arg {j} does not match parameter type {ptype}")
                elif isinstance(arg, BufferArg) and arg.buffer not in sizes:
                    out.append(f"launch {i} arg {j} uses unknown buffer {arg.buffer}")
                elif isinstance(arg, BufferArg) and not 0 <= arg.offset < max(
                        sizes[arg.buffer], 1):
                    out.append(f"launch {i} arg {j} points outside buffer {arg.buffer}")
        for i, o in enumerate(self.outputs):
            if o.buffer not in sizes or o.offset + o.nbytes > sizes[o.buffer]:
                out.append(f"output {i} ({o.nbytes} bytes at {o.offset}) lies outside "
                           f"buffer {o.buffer}")
        return out


# -- reading helpers ----------------------------------------------------------------------


def _bad(where: str, problem: str) -> ArtifactError:
    return ArtifactError(f"the launch plan {where} {problem}",
                         hint="the artifact is corrupt or from another hcompile; recompile")


def _obj(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _bad(where, f"should be an object, not {type(data).__name__}")
    return data


def _list(obj: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise _bad(f"{where}.{key}", "should be a list")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{where}.{key}", f"should be an int, not {value!r}")
    return value


def _dims(obj: Mapping[str, Any], key: str, where: str, n: int | None = None) -> tuple[int, ...]:
    value = _list(obj, key, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value) or (
            n is not None and len(value) != n):
        raise _bad(f"{where}.{key}", f"should be {n or 'some'} non-negative ints, got {value!r}")
    return tuple(value)


def _dim3(obj: Mapping[str, Any], key: str, where: str) -> tuple[int, int, int]:
    d = _dims(obj, key, where, 3)
    return (d[0], d[1], d[2])


def _buffer_json(b: PlanBuffer) -> dict[str, Any]:
    out: dict[str, Any] = {"id": b.id, "kind": b.kind, "nbytes": b.nbytes}
    if b.kind in ("input", "param"):
        out["index"] = b.index
    if b.kind != "scratch":
        out.update(dtype=b.dtype, shape=list(b.shape))
    if b.kind == "const":
        out["data"] = base64.b64encode(b.data).decode("ascii")
    return out


def _read_buffer(data: Any, where: str) -> PlanBuffer:
    obj = _obj(data, where)
    kind = obj.get("kind")
    if kind not in BUFFER_KINDS:
        raise _bad(f"{where}.kind", f"is {kind!r}; expected one of {BUFFER_KINDS}")
    raw = base64.b64decode(obj["data"], validate=True) if kind == "const" else b""
    return PlanBuffer(
        id=_int(obj, "id", where), kind=kind, nbytes=_int(obj, "nbytes", where),
        index=_int(obj, "index", where, -1), dtype=str(obj.get("dtype", "")),
        shape=_dims(obj, "shape", where) if "shape" in obj else (), data=raw,
    )


def _arg_json(arg: KernelArg) -> dict[str, Any]:
    if isinstance(arg, BufferArg):
        return {"buffer": arg.buffer, "offset": arg.offset}
    return {"dtype": arg.dtype, "value": arg.value}


def _read_arg(data: Any, where: str) -> KernelArg:
    obj = _obj(data, where)
    if "buffer" in obj:
        return BufferArg(_int(obj, "buffer", where), _int(obj, "offset", where, 0))
    value = obj.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"{where}.value", f"should be a number, not {value!r}")
    return ScalarArg(str(np.dtype(obj["dtype"])), value)


def _read_kernel(data: Any, where: str) -> KernelInfo:
    obj = _obj(data, where)
    params = _list(obj, "params", where)
    for p in params:
        if p != HANDLE:
            np.dtype(p)  # a scalar parameter must name a numpy dtype
    return KernelInfo(str(obj["name"]), tuple(map(str, params)), _dim3(obj, "block", where),
                      _int(obj, "shared_bytes", where, 0))


def _read_launch(data: Any, where: str) -> Launch:
    obj = _obj(data, where)
    return Launch(
        kernel=str(obj["kernel"]), grid=_dim3(obj, "grid", where),
        block=_dim3(obj, "block", where),
        args=tuple(_read_arg(a, f"{where}.args[{j}]")
                   for j, a in enumerate(_list(obj, "args", where))),
        call=str(obj.get("call", "")),
        dynamic_shared_bytes=_int(obj, "dynamic_shared_bytes", where, 0),
    )


def _read_output(data: Any, where: str) -> PlanOutput:
    obj = _obj(data, where)
    return PlanOutput(_int(obj, "buffer", where), _dims(obj, "shape", where),
                      str(np.dtype(obj["dtype"])), _int(obj, "offset", where, 0))


# -- what both runners share ------------------------------------------------------------


def scalar_value(arg: ScalarArg) -> np.generic:
    """The scalar as a numpy value of its exact dtype (what kernel-argument APIs want)."""
    value: np.generic = np.dtype(arg.dtype).type(arg.value)
    return value


def host_view(tensor: Any) -> np.ndarray:
    """A C-contiguous numpy view (or copy) of a host ``tvm_ffi.Tensor`` or array."""
    return np.ascontiguousarray(np.from_dlpack(tensor))


def check_host_arrays(kind: str, arrays: Sequence[np.ndarray], plan: LaunchPlan,
                      partition: int) -> None:
    """Each input/param array must match its plan buffer's dtype and byte size."""
    for b in plan.buffers_of(kind):
        if b.index >= len(arrays):
            raise ArtifactError(f"partition {partition}: its launch plan reads {kind} {b.index}, "
                                f"but the partition has {len(arrays)} {kind}s",
                                hint="the artifact is inconsistent; recompile the model")
        a = arrays[b.index]
        if a.nbytes != b.nbytes or (b.dtype and a.dtype != np.dtype(b.dtype)):
            raise ArtifactError(
                f"partition {partition}: {kind} {b.index} is {a.dtype}{list(a.shape)}, but the "
                f"launch plan expects {b.dtype}{list(b.shape)} ({b.nbytes} bytes)",
                hint="the artifact is inconsistent; recompile the model")


T = TypeVar("T")


class ContextPool(Generic[T]):
    """Execution contexts (a queue or stream, scratch and input buffers) lent to one run at a
    time. Concurrent runs each get their own context, made on demand by ``factory``, so a
    runner is thread-safe without serialising its callers."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._free: list[T] = []
        self._lock = threading.Lock()

    @contextmanager
    def acquire(self) -> Iterator[T]:
        with self._lock:
            context = self._free.pop() if self._free else None
        if context is None:
            context = self._factory()
        try:
            yield context
        finally:
            with self._lock:
                self._free.append(context)

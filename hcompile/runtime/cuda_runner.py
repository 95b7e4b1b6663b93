"""CUDA partitions (the ``gpu`` target): a fatbinary plus a launch plan, run through the CUDA
driver API.

The code member is a fatbinary holding a cubin for the compile-time architecture and PTX;
``cuModuleLoadData`` takes the cubin on a matching GPU and JIT-compiles the PTX on newer
ones, so the serving host needs the NVIDIA driver but no CUDA toolkit.
The driver is reached through NVIDIA's ``cuda-bindings`` package (``cuda.bindings.driver``,
part of cuda-python): an optional dependency, imported only when a GPU partition is probed
or loaded. ``HCOMPILE_CUDA_DEVICE`` picks the GPU (default 0). Without a GPU, or without the
package, :meth:`CudaRunner.unavailable_reason` says why and the executor uses the partition's
CPU fallback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcompile.artifact.manifest import CodeSpec, PartitionSpec
from hcompile.errors import ArtifactError, DeviceError
from hcompile.runtime.launch_plan import (
    BufferArg,
    ContextPool,
    Launch,
    LaunchPlan,
    check_host_arrays,
    host_view,
    scalar_value,
)
from hcompile.runtime.residency import CudaHome, CudaTensor, is_resident
from hcompile.runtime.runners import PartitionRunner, RunnerOptions, register_runner
from hcompile.runtime.tensors import aligned_empty, to_ffi

DEVICE_ENV = "HCOMPILE_CUDA_DEVICE"
#: dynamic shared memory above this needs an explicit opt-in per kernel
_DEFAULT_DYNAMIC_SHARED = 48 * 1024


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


@dataclass
class _Gpu:
    """The process's CUDA device: the driver module, the device and its primary context."""

    cu: Any
    device: Any
    context: Any
    name: str


_gpu_lock = threading.Lock()
_gpu: _Gpu | None = None
_gpu_error: str | None = None


def _check(cu: Any, result: Any) -> Any:
    """Unwrap a cuda-bindings result tuple ``(CUresult, *values)``; raise CudaError on failure."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cu.CUresult.CUDA_SUCCESS:
        _, name = cu.cuGetErrorName(err)
        _, text = cu.cuGetErrorString(err)
        raise CudaError(f"{name.decode() if name else err}: {text.decode() if text else ''}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_gpu() -> _Gpu:
    """The GPU this process uses (initialised once); LookupError says why there is none."""
    global _gpu, _gpu_error
    with _gpu_lock:
        if _gpu is not None:
            return _gpu
        if _gpu_error is not None:
            raise LookupError(_gpu_error)
        try:
            _gpu = _open_gpu()
        except LookupError as e:
            _gpu_error = str(e)
            raise
        return _gpu


def _open_gpu() -> _Gpu:
    # The driver library first: without it there is no GPU, whatever else is installed.
    if ctypes.util.find_library("cuda") is None:
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            raise LookupError("no CUDA device (the NVIDIA driver's libcuda is not installed)")\
                from None
    try:
        from cuda.bindings import driver as cu
    except ImportError:
        raise LookupError("the CUDA driver bindings are not installed "
                          "(pip install 'cuda-bindings>=12')") from None
    try:
        _check(cu, cu.cuInit(0))
        count = _check(cu, cu.cuDeviceGetCount())
        if count == 0:
            raise LookupError("no CUDA device")
        ordinal = int(os.environ.get(DEVICE_ENV, "0") or 0)
        if not 0 <= ordinal < count:
            raise LookupError(f"no CUDA device {ordinal} ({DEVICE_ENV}); there are {count}")
        device = _check(cu, cu.cuDeviceGet(ordinal))
        context = _check(cu, cu.cuDevicePrimaryCtxRetain(device))
        name = _check(cu, cu.cuDeviceGetName(256, device))
    except (CudaError, RuntimeError, ValueError) as e:  # RuntimeError: driver not loadable
        raise LookupError(f"no CUDA device ({e})") from None
    return _Gpu(cu, device, context, name.split(b"\0")[0].decode(errors="replace"))


@dataclass
class _Context:
    """What one run uses: a stream, input/scratch allocations, prepared kernel arguments."""

    stream: Any
    inputs: dict[int, int]  # input index -> device pointer
    outputs: list[int]  # device pointer of each output
    launches: list[tuple[Any, Launch, Any, list[np.ndarray]]]  # (function, launch, params, keep)


@register_runner("cuda-plan")
class CudaRunner(PartitionRunner):
    """Loads the fatbinary into the GPU's primary context and launches the plan."""

    runs_on = "gpu"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            cuda_gpu()
        except LookupError as e:
            return str(e)
        return None

    def __init__(
        self,
        partition: PartitionSpec,
        code: CodeSpec,
        blob: bytes,
        params: Sequence[Any],
        options: RunnerOptions,
    ) -> None:
        super().__init__(partition, code, blob, params, options)
        where = f"manifest.partitions[id={partition.id}].code[{code.member!r}]"
        self.plan = LaunchPlan.from_json(code.extra.get("plan"), f"{where}.plan")
        problems = self.plan.problems(len(partition.inputs), len(partition.params))
        if len(self.plan.outputs) != len(partition.outputs):
            problems.append("its outputs do not match the partition's")
        if problems:
            raise ArtifactError(f"partition {partition.id}: its launch plan does not fit the "
                                "partition: " + "; ".join(problems[:5]),
                                hint="recompile the model")
        try:
            self.gpu = cuda_gpu()
        except LookupError as e:
            raise DeviceError(f"partition {partition.id}: {e}") from e
        cu = self.gpu.cu
        self._cu = cu
        self._allocations: list[int] = []
        self._streams: list[Any] = []
        self._image = np.frombuffer(blob, dtype=np.uint8).copy()  # the driver reads it in place
        host_params = [host_view(p) for p in params]
        check_host_arrays("param", host_params, self.plan, partition.id)
        try:
            self._enter()
            self._module = _check(cu, cu.cuModuleLoadData(self._image.ctypes.data))
            self._functions = {}
            for k in self.plan.kernels:
                self._functions[k.name] = _check(
                    cu, cu.cuModuleGetFunction(self._module, k.name.encode()))
            for launch in self.plan.launches:
                if launch.dynamic_shared_bytes > _DEFAULT_DYNAMIC_SHARED:
                    _check(cu, cu.cuFuncSetAttribute(
                        self._functions[launch.kernel],
                        cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        launch.dynamic_shared_bytes))
            # Params and constants are uploaded once and shared by every context.
            self._shared: dict[int, int] = {}
            for b in self.plan.buffers:
                if b.kind == "param":
                    host = host_params[b.index]
                elif b.kind == "const":
                    host = np.frombuffer(b.data, dtype=np.uint8)
                else:
                    continue
                self._shared[b.id] = self._alloc(b.nbytes)
                _check(cu, cu.cuMemcpyHtoD(self._shared[b.id], host.ctypes.data, b.nbytes))
        except CudaError as e:
            self._release()
            raise DeviceError(f"partition {partition.id}: loading its CUDA code "
                              f"({code.member}) on {self.gpu.name} failed: {e}",
                              hint="the GPU may be older than the artifact's --cuda-arch, or "
                              "the driver older than the CUDA that built it") from e
        weakref.finalize(self, _free, cu, self.gpu.context, self._module, self._allocations,
                         self._streams)
        self._pool: ContextPool[_Context] = ContextPool(self._new_context)
        self._home = CudaHome(self.gpu, _check)
        #: per output: return it as a device tensor (set by the executor's residency plan)
        self.keep_on_device = (False,) * len(partition.outputs)
        with self._pool.acquire():  # make the first context now: allocation errors surface here
            pass

    def _enter(self) -> None:
        """Make the GPU's primary context current on this thread (the driver's state is
        per thread; runs may come from any thread)."""
        _check(self._cu, self._cu.cuCtxSetCurrent(self.gpu.context))

    def _alloc(self, nbytes: int) -> int:
        pointer = int(_check(self._cu, self._cu.cuMemAlloc(max(nbytes, 4))))
        self._allocations.append(pointer)
        return pointer

    def _release(self) -> None:
        _free(self._cu, self.gpu.context, getattr(self, "_module", None), self._allocations,
              self._streams)

    def _new_context(self) -> _Context:
        cu, plan = self._cu, self.plan
        self._enter()
        pointers = dict(self._shared)
        inputs = {}
        for b in plan.buffers:
            if b.kind in ("input", "scratch"):
                pointers[b.id] = self._alloc(b.nbytes)
                if b.kind == "input":
                    inputs[b.index] = pointers[b.id]
        launches = []
        for launch in plan.launches:
            values = [
                np.array([pointers[a.buffer] + a.offset], dtype=np.uint64)
                if isinstance(a, BufferArg) else np.array([scalar_value(a)])
                for a in launch.args
            ]
            params = np.array([v.ctypes.data for v in values], dtype=np.uint64)
            launches.append((self._functions[launch.kernel], launch, params, [*values, params]))
        outputs = [pointers[o.buffer] + o.offset for o in plan.outputs]
        stream = _check(cu, cu.cuStreamCreate(cu.CUstream_flags.CU_STREAM_NON_BLOCKING.value))
        self._streams.append(stream)
        return _Context(stream, inputs, outputs, launches)

    def run(self, args: Sequence[Any]) -> list[Any]:
        cu, plan = self._cu, self.plan
        # Device tensors on this GPU stay there (see hcompile.runtime.residency).
        arrays = [a if is_resident(a) else host_view(a) for a in args]
        check_host_arrays("input", arrays, plan, self.partition.id)
        try:
            self._enter()
            with self._pool.acquire() as ctx:
                for index, pointer in ctx.inputs.items():
                    self._upload(pointer, arrays[index], ctx.stream)
                for function, x, params, _ in ctx.launches:
                    _check(cu, cu.cuLaunchKernel(
                        function, *x.grid, *x.block, x.dynamic_shared_bytes, ctx.stream,
                        params.ctypes.data, 0))
                outputs = [self._output(pointer, o, keep, ctx.stream) for pointer, o, keep
                           in zip(ctx.outputs, plan.outputs, self.keep_on_device, strict=True)]
                _check(cu, cu.cuStreamSynchronize(ctx.stream))
        except CudaError as e:
            raise DeviceError(
                f"partition {self.partition.id} (target {self.partition.target}) failed on "
                f"{self.gpu.name}: {e}",
                hint="run it on the CPU (recompile with --targets cpu) or check the GPU",
            ) from e
        return [o if is_resident(o) else to_ffi(o) for o in outputs]

    def _upload(self, pointer: int, value: Any, stream: Any) -> None:
        cu = self._cu
        if isinstance(value, CudaTensor) and value.home.gpu is self.gpu:
            _check(cu, cu.cuMemcpyDtoDAsync(pointer, value.pointer, value.nbytes, stream))
            return
        host = value.to_numpy() if is_resident(value) else value
        _check(cu, cu.cuMemcpyHtoDAsync(pointer, host.ctypes.data, host.nbytes, stream))

    def _output(self, pointer: int, spec: Any, keep: bool, stream: Any) -> Any:
        """Enqueue getting an output: into fresh device memory where ``keep`` says so (the
        context's memory is reused by the next run), else into host memory."""
        cu, dtype = self._cu, np.dtype(spec.dtype)
        if keep:
            tensor = self._home.new_tensor(tuple(spec.shape), dtype)
            if spec.nbytes:
                _check(cu, cu.cuMemcpyDtoDAsync(tensor.pointer, pointer, spec.nbytes, stream))
            return tensor
        host = aligned_empty(spec.shape, dtype)
        if spec.nbytes:
            _check(cu, cu.cuMemcpyDtoHAsync(host.ctypes.data, pointer, spec.nbytes, stream))
        return host


def _free(cu: Any, context: Any, module: Any, allocations: list[int],
          streams: list[Any]) -> None:
    """Give the runner's device memory, streams and module back (at garbage collection)."""
    try:
        cu.cuCtxSetCurrent(context)
        for stream in streams:
            cu.cuStreamDestroy(stream)
        streams.clear()
        for pointer in allocations:
            cu.cuMemFree(pointer)
        allocations.clear()
        if module is not None:
            cu.cuModuleUnload(module)
    except Exception:  # the driver may already be shut down at interpreter exit
        pass

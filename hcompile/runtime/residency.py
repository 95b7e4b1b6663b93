"""Device-resident tensors: a partition's outputs stay on its device between partitions.

Without this, every OpenCL partition downloaded its outputs to the host and the next
partition on the same device uploaded them again: a host round trip per hop. Now a runner
that supports residency (it has a ``keep_on_device`` attribute: the OpenCL and CUDA
runners) returns a :class:`DeviceTensor` for every output that is not a model output, and:

* a consumer on the same device takes the device buffer as it is (a device-to-device copy
  into the consumer's input buffer: OpenCL buffer to buffer inside the one context, CUDA
  ``cuMemcpyDtoDAsync`` on the consumer's stream; the bytes never reach the host);
* a consumer on another device gets it through the scheduler's explicit **copy step**,
  which now downloads the buffer (a ``copy <tensor>`` span on the link track, with
  ``download: true``);
* model outputs are downloaded by the runner itself (the caller gets numpy arrays).

Where no scheduler is involved (``Executor._run_inline``, ``--check``, a run that switches to
its CPU fallback) :func:`localize` downloads what the consumer's device cannot read.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from hcompile.runtime.launch_plan import ContextPool
from hcompile.runtime.tensors import aligned_empty, to_ffi


class DeviceTensor:
    """A tensor in device memory. ``device`` is the device kind ("fpga", "gpu")."""

    device: str = ""
    shape: tuple[int, ...] = ()
    dtype: np.dtype[Any] = np.dtype("float32")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def to_numpy(self) -> np.ndarray:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


class ClHome:
    """Where an OpenCL runner's resident tensors live: its context, and queues to download."""

    def __init__(self, cl: Any, context: Any, device: Any) -> None:
        self.cl = cl
        self.context = context
        self.queues: ContextPool[Any] = ContextPool(lambda: cl.CommandQueue(context, device))


class ClTensor(DeviceTensor):
    """An OpenCL buffer holding one tensor (from byte 0), owned by this tensor alone."""

    device = "fpga"

    def __init__(self, home: ClHome, buffer: Any, shape: tuple[int, ...],
                 dtype: np.dtype[Any]) -> None:
        self.home = home
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype

    def to_numpy(self) -> np.ndarray:
        host = aligned_empty(self.shape, self.dtype)
        if host.nbytes:
            with self.home.queues.acquire() as queue:
                self.home.cl.enqueue_copy(queue, host, self.buffer, is_blocking=True)
        return host


class CudaHome:
    """Where a CUDA runner's resident tensors live: the GPU (its primary context)."""

    def __init__(self, gpu: Any, check: Callable[[Any, Any], Any]) -> None:
        self.gpu = gpu  # cuda_runner._Gpu: the driver module ``cu`` and the context
        self.check = check

    def new_tensor(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> CudaTensor:
        cu = self.gpu.cu
        tensor = CudaTensor(self, 0, shape, dtype)
        tensor.pointer = int(self.check(cu, cu.cuMemAlloc(max(tensor.nbytes, 4))))
        weakref.finalize(tensor, _cuda_free, cu, self.gpu.context, tensor.pointer)
        return tensor


class CudaTensor(DeviceTensor):
    """Device memory (``cuMemAlloc``) holding one tensor, freed with the tensor."""

    device = "gpu"

    def __init__(self, home: CudaHome, pointer: int, shape: tuple[int, ...],
                 dtype: np.dtype[Any]) -> None:
        self.home = home
        self.pointer = pointer
        self.shape = shape
        self.dtype = dtype

    def to_numpy(self) -> np.ndarray:
        host = aligned_empty(self.shape, self.dtype)
        if host.nbytes:
            cu, check = self.home.gpu.cu, self.home.check
            check(cu, cu.cuCtxSetCurrent(self.home.gpu.context))  # the driver's state is per thread
            check(cu, cu.cuMemcpyDtoH(host.ctypes.data, self.pointer, host.nbytes))
        return host


def _cuda_free(cu: Any, context: Any, pointer: int) -> None:
    try:
        cu.cuCtxSetCurrent(context)
        cu.cuMemFree(pointer)
    except Exception:  # the driver may already be shut down at interpreter exit
        pass


def is_resident(value: Any) -> bool:
    return isinstance(value, DeviceTensor)


def to_host(value: Any) -> Any:
    """``value`` as a host tensor (downloads a :class:`DeviceTensor`)."""
    return to_ffi(value.to_numpy()) if isinstance(value, DeviceTensor) else value


def localize(args: Sequence[Any], device: str) -> list[Any]:
    """``args`` for a partition on ``device``: device tensors of other devices downloaded."""
    return [to_host(a) if isinstance(a, DeviceTensor) and a.device != device else a
            for a in args]


def resident_names(names: Sequence[str], args: Sequence[Any]) -> list[str]:
    """The input names whose values arrived as device tensors (for trace spans)."""
    return [n for n, a in zip(names, args, strict=False) if isinstance(a, DeviceTensor)]


def plan(runners: Sequence[Any], outputs_of: Sequence[Sequence[str]],
         model_outputs: Iterable[str]) -> bool:
    """Tell every residency-capable runner which outputs to keep on its device (all but
    the model's outputs); return whether any output stays on a device."""
    final = set(model_outputs)
    any_kept = False
    for runner, outputs in zip(runners, outputs_of, strict=True):
        if not hasattr(runner, "keep_on_device"):
            continue
        runner.keep_on_device = tuple(name not in final for name in outputs)
        any_kept = any_kept or any(runner.keep_on_device)
    return any_kept


# -- OpenCL helpers for the runner --------------------------------------------------------


def cl_upload(home: ClHome, queue: Any, dst: Any, value: Any) -> None:
    """Enqueue filling device buffer ``dst`` from ``value``: a buffer-to-buffer copy for a
    :class:`ClTensor` of the same context, else an upload of host memory."""
    cl = home.cl
    if isinstance(value, ClTensor) and value.home.context == home.context:
        cl.enqueue_copy(queue, dst, value.buffer, byte_count=value.nbytes)
        return
    host = value.to_numpy() if isinstance(value, DeviceTensor) else value
    cl.enqueue_copy(queue, dst, host, is_blocking=False)


def cl_outputs(home: ClHome, queue: Any, places: Sequence[tuple[Any, int]],
               specs: Sequence[Any], keep: Sequence[bool]) -> list[Any]:
    """Enqueue getting each output from ``(buffer, offset)``: into a fresh device buffer
    where ``keep`` says so (the context's buffers are reused by the next run), else into
    host memory. Returns :class:`ClTensor` or host arrays; valid after ``queue.finish()``."""
    cl = home.cl
    results: list[Any] = []
    for (buffer, offset), spec, resident in zip(places, specs, keep, strict=True):
        dtype = np.dtype(spec.dtype)
        if resident:
            tensor = ClTensor(home, cl.Buffer(home.context, cl.mem_flags.READ_WRITE,
                                              max(spec.nbytes, 4)), tuple(spec.shape), dtype)
            if spec.nbytes:
                cl.enqueue_copy(queue, tensor.buffer, buffer, src_offset=offset,
                                byte_count=spec.nbytes)
            results.append(tensor)
            continue
        host = aligned_empty(tuple(spec.shape), dtype)
        if host.nbytes:
            cl.enqueue_copy(queue, host, buffer, src_offset=offset, is_blocking=False)
        results.append(host)
    return results

"""CPU partitions: a Relax VM executable (``export_library`` .so), run by the TVM runtime.

Loads ``libtvm_runtime`` through ``tvm_ffi`` (the runtime-only library), never the ``tvm``
Python package, which would bring in the whole compiler. Nothing is imported or loaded
until a partition is.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hcompile.artifact.manifest import CodeSpec, PartitionSpec
from hcompile.errors import ArtifactError, DeviceError
from hcompile.runtime.cache import store_blob
from hcompile.runtime.ffi import tvm_ffi as import_tvm_ffi
from hcompile.runtime.runners import PartitionRunner, RunnerOptions, register_runner

_KDL_CPU = 1
_ALLOCATOR_POOLED = 2
#: How long TVM's idle pool workers spin before they sleep (TVM's default spins ~300k
#: iterations). A spinning worker that the OS preempts waits out another thread's time slice
#: before it can take the next parallel loop. On 2 busy cores, runs of lenet5 at batch 16
#: interleaved with ONNX Runtime (whose pool spins after each run too) in one process took
#: 7.2 ms instead of 0.11 ms with the default, 0.13 ms with 0; a sleeping worker is woken
#: (a few µs) and scheduled at once. It makes such stalls rare, not impossible (see
#: ``PARALLEL_MIN_WORK`` in targets/llvm_cpu/schedules/features.py).
#: Read by the pool when it starts; a value set in the environment wins.
THREAD_POOL_SPIN_COUNT = "0"

_load_lock = threading.Lock()
_runtime_loaded = False


def tvm_lib_dir() -> Path | None:
    """The folder of the installed TVM's shared libraries (found without importing tvm)."""
    spec = importlib.util.find_spec("tvm")
    if spec is None or spec.origin is None:
        return None
    lib_dir = Path(spec.origin).parent / "lib"
    return lib_dir if any(lib_dir.glob("*tvm_runtime.*")) else None


def ensure_tvm_runtime() -> None:
    """Load ``libtvm_runtime`` into the process (once); it registers the VM loader."""
    global _runtime_loaded
    with _load_lock:
        if _runtime_loaded:
            return
        lib_dir = tvm_lib_dir()
        if lib_dir is None:
            raise DeviceError(
                "the TVM runtime library is not installed",
                hint="pip install apache-tvm (the version that compiled the artifact)",
            )
        os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", THREAD_POOL_SPIN_COUNT)
        import_tvm_ffi()  # first, so that tvm_ffi does not import torch
        from tvm_ffi.libinfo import load_lib_ctypes

        load_lib_ctypes("tvm", "tvm_runtime", "RTLD_GLOBAL", extra_lib_paths=[lib_dir])
        _runtime_loaded = True


@register_runner("tvm-relax-vm-so")
class TvmCpuRunner(PartitionRunner):
    """Runs a Relax VM executable on the host CPU; one lock per VM (a VM is not reentrant)."""

    runs_on = "cpu"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if tvm_lib_dir() is None:
            return "the TVM runtime library is not installed (pip install apache-tvm)"
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
        path = store_blob(blob, kind="so", suffix=".so", cache_dir=options.cache_dir)
        ensure_tvm_runtime()
        tvm_ffi = import_tvm_ffi()

        where = f"partition {partition.id}: cannot load its CPU code {code.member!r}"
        try:
            self._module = tvm_ffi.load_module(str(path))
            self._vm = self._module["vm_load_executable"]()
            self._vm["vm_initialization"](_KDL_CPU, 0, _ALLOCATOR_POOLED)
        except Exception as e:  # anything the foreign loader raises means unusable code
            raise ArtifactError(f"{where}: {e}", hint="recompile the model") from e
        try:
            self._entry = self._vm[code.entry]
        except AttributeError as e:
            raise ArtifactError(
                f"{where}: it has no function {code.entry!r}", hint="recompile the model"
            ) from e
        self._array_type = tvm_ffi.Array
        self._array_get = tvm_ffi.get_global_func("ffi.ArrayGetItem")
        self._params = self._transformed_params(list(params), where)
        self._lock = threading.Lock()

    def _transformed_params(self, params: list[Any], where: str) -> list[Any]:
        """The params ``main`` takes: the weights as given, or as ``main_transform_params``
        (the CPU pipeline's weight packing, lifted out of ``main``) returns them, once."""
        try:
            transform = self._vm[f"{self.code.entry}_transform_params"]
        except AttributeError:
            return params
        try:
            return list(transform(self._array_type(params)))
        except Exception as e:  # the VM's checks and kernels report through exceptions
            raise ArtifactError(f"{where}: packing its weights failed: {e}",
                                hint="recompile the model") from e

    def run(self, args: Sequence[Any]) -> list[Any]:
        p = self.partition
        try:
            with self._lock:
                result = self._entry(*args, *self._params)
        except Exception as e:  # the VM's checks and kernels report through exceptions
            raise DeviceError(
                f"partition {p.id} (target {p.target}, CPU code {self.code.member!r}) failed: {e}",
                hint="the artifact may not match its manifest; recompile the model",
            ) from e
        if isinstance(result, self._array_type):
            # The FFI getter directly: list(result) goes through Array.__iter__/__getitem__
            # in Python, 1.1 µs for one element (a tenth of a small model's run).
            get = self._array_get
            return [get(result, i) for i in range(len(result))]
        return [result]

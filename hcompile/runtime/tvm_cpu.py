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
#: How long TVM's idle pool workers spin (sched_yield loops) before they sleep; TVM's default
#: is ~300k. Too long: a spinning worker that the OS preempts waits out another thread's
#: time slice before it can take the next parallel loop (runs of lenet5 at batch 16
#: interleaved with ONNX Runtime, whose pool spins after each run too, took 7.2 ms instead
#: of 0.11 ms with the default). None: every parallel loop of a run wakes a sleeping worker,
#: tens of µs on a VM (mobilenetv2 at batch 1, 33 parallel kernels: 3.1 ms with 0). A
#: thousand yields keeps the worker awake between the kernels of one run and asleep soon
#: after it (mobilenetv2 2.4 ms, lenet5 batch 16 interleaved with ORT 0.088 ms).
#: Read by the pool when it starts; a value set in the environment wins.
THREAD_POOL_SPIN_COUNT = "1000"



def physical_cores() -> int:
    """Physical cores this process may run on: CPUs in its affinity mask, SMT siblings
    counted once (sysfs topology; every allowed CPU when that is unreadable).

    TVM's own default is half the logical CPUs (it assumes two hardware threads per core):
    on a 2-vCPU VM without SMT that is one thread, and every parallel loop runs on one core
    (resnet18 at batch 1: 16.8 ms instead of 9.5 ms on this project's 2-core machines)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def configure_thread_pool() -> None:
    """TVM's pool settings, read when the pool starts (its first parallel loop, in this
    process): no spinning, one thread per physical core; values in the environment win.
    Called before any CPU code runs, by the runtime and by the compiler (constant folding
    runs kernels too)."""
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", THREAD_POOL_SPIN_COUNT)
    if "TVM_NUM_THREADS" not in os.environ:  # no sysfs reads when the user set it
        os.environ["TVM_NUM_THREADS"] = str(physical_cores())


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
        configure_thread_pool()
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

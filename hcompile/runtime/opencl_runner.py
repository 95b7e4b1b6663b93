"""OpenCL partitions (the ``fpga`` target): OpenCL C plus a launch plan, run with pyopencl.

Runs on any OpenCL platform: an FPGA board's runtime, a GPU, or PoCL on the CPU as the
emulator (the way Intel's FPGA emulator and Vitis ``sw_emu`` run FPGA OpenCL on a CPU).
``HCOMPILE_OPENCL_DEVICE`` chooses the device: ``P`` or ``P:D`` (platform and device
indices, as ``clinfo -l`` lists them) or a case-insensitive substring of
"<platform name> <device name>". Without it, an accelerator (FPGA board) is preferred, then
the first device found.

Formats:
``opencl-plan``         the member is OpenCL C source; it is built at load (pyopencl's
                        on-disk binary cache plus an in-process cache keyed by source hash).
``opencl-binary-plan``  the member is a board binary (``.aocx``, ``.xclbin``) made by the
                        vendor compiler; it needs an OpenCL accelerator device.

Imports numpy and pyopencl only, and pyopencl only when a partition is loaded or the
device is probed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hcompile.artifact.manifest import CodeSpec, PartitionSpec
from hcompile.errors import ArtifactError, DeviceError
from hcompile.runtime.cache import store_blob
from hcompile.runtime.launch_plan import (
    BufferArg,
    ContextPool,
    LaunchPlan,
    check_host_arrays,
    host_view,
    scalar_value,
)
from hcompile.runtime.residency import ClHome, cl_outputs, cl_upload, is_resident
from hcompile.runtime.runners import PartitionRunner, RunnerOptions, register_runner
from hcompile.runtime.tensors import to_ffi

DEVICE_ENV = "HCOMPILE_OPENCL_DEVICE"
POCL_CPU_ENV = "HCOMPILE_POCL_CPU"
#: OpenCL C 1.2 only: FPGA SDKs (Intel FPGA SDK for OpenCL, Vitis) accept nothing newer.
BUILD_OPTIONS = ("-cl-std=CL1.2",)
_INSTALL_HINT = ("pip install pyopencl pocl-binary-distribution gives the CPU emulator; "
                 "a board's OpenCL runtime (ICD) makes the board a device")
#: built once per device before anything else, so a broken compiler means "unavailable"
PROBE_SOURCE = "__kernel void hcompile_probe(__global float* x) { x[0] = exp(x[0]); }"


@dataclass
class _Device:
    """The process's OpenCL device: one context, and the programs built on it."""

    cl: Any  # the pyopencl module
    device: Any
    context: Any
    description: str
    is_accelerator: bool
    programs: dict[str, Any]
    lock: threading.Lock


_device_lock = threading.Lock()
_devices: dict[str, _Device] = {}
_device_errors: dict[str, str] = {}


def _describe(platform: Any, device: Any) -> str:
    return f"{platform.name.strip()} / {device.name.strip()}"


def _pick(cl: Any, choice: str) -> tuple[Any, Any]:
    """(platform, device) for ``choice`` (the env var's value, or "" for the default)."""
    try:
        platforms = cl.get_platforms()
    except cl.Error as e:  # PLATFORM_NOT_FOUND_KHR when no ICD is installed
        raise LookupError(f"no OpenCL platform ({e}); {_INSTALL_HINT}") from None
    found: list[tuple[int, int, Any, Any]] = []
    for pi, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except cl.Error:  # a platform without devices
            continue
        found += [(pi, di, platform, device) for di, device in enumerate(devices)]
    if not found:
        raise LookupError(f"no OpenCL device on any platform; {_INSTALL_HINT}")
    if not choice:
        accelerators = [f for f in found if f[3].type & cl.device_type.ACCELERATOR]
        _, _, platform, device = (accelerators or found)[0]
        return platform, device
    numeric = re.fullmatch(r"(\d+)(?::(\d+))?", choice)
    for pi, di, platform, device in found:
        if numeric:
            if pi == int(numeric[1]) and di == int(numeric[2] or 0):
                return platform, device
        elif choice.lower() in f"{platform.name} {device.name}".lower():
            return platform, device
    listed = "; ".join(f"{pi}:{di} {_describe(p, d)}" for pi, di, p, d in found)
    raise LookupError(f"{DEVICE_ENV}={choice!r} matches no OpenCL device (found: {listed})")


def opencl_device() -> _Device:
    """The OpenCL device this process uses (created once); LookupError says why there is none."""
    choice = os.environ.get(DEVICE_ENV, "").strip()
    with _device_lock:
        if choice in _devices:
            return _devices[choice]
        if choice in _device_errors:
            raise LookupError(_device_errors[choice])
        try:
            import pyopencl as cl
        except ImportError as e:
            _device_errors[choice] = f"pyopencl is not installed ({e}); {_INSTALL_HINT}"
            raise LookupError(_device_errors[choice]) from None
        try:
            platform, device = _pick(cl, choice)
            context = cl.Context([device])
        except (LookupError, cl.Error) as e:
            _device_errors[choice] = str(e)
            raise LookupError(str(e)) from None
        problem = _probe(cl, context, device)
        if problem:
            _device_errors[choice] = f"{_describe(platform, device)} cannot build OpenCL C: " \
                                     f"{problem}"
            raise LookupError(_device_errors[choice])
        found = _Device(cl, device, context, _describe(platform, device),
                        bool(device.type & cl.device_type.ACCELERATOR), {}, threading.Lock())
        _devices[choice] = found
        return found


def _probe(cl: Any, context: Any, device: Any) -> str | None:
    """Build a tiny kernel; return why that fails, or None. Works around PoCL 3 on CPUs
    newer than its LLVM (see :func:`_pocl_cpu_workaround`)."""

    def build() -> str | None:
        try:
            cl.Program(context, PROBE_SOURCE).build(options=list(BUILD_OPTIONS))
        except cl.Error as e:
            return _build_log(e)
        return None

    problem = build()
    if problem and "unknown target CPU" in problem and _pocl_cpu_workaround(device):
        problem = build()
    return problem


def opencl_unavailable_reason() -> str | None:
    """Why no OpenCL partition can run here, or None."""
    try:
        opencl_device()
    except LookupError as e:
        return str(e)
    return None


@dataclass
class _Context:
    """What one run uses: a queue, kernel objects (their args are per object) and buffers."""

    queue: Any
    launches: list[tuple[Any, tuple[int, int, int], tuple[int, int, int], tuple[Any, ...]]]
    inputs: dict[int, Any]  # input index -> device buffer
    outputs: list[tuple[Any, int]]  # (device buffer, byte offset) per output


@register_runner("opencl-plan")
class OpenCLRunner(PartitionRunner):
    """Builds the partition's OpenCL program and launches its kernels in plan order."""

    runs_on = "fpga"
    #: whether the member is a board binary rather than OpenCL C source
    binary: ClassVar[bool] = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return opencl_unavailable_reason()

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
        self._check_plan()
        try:
            self.device = opencl_device()
        except LookupError as e:
            raise DeviceError(f"partition {partition.id}: no OpenCL device: {e}") from e
        cl = self.device.cl
        self._cl = cl
        self._program = self._build(blob, options)
        host_params = [host_view(p) for p in params]
        check_host_arrays("param", host_params, self.plan, partition.id)
        # Params and constants are uploaded once and shared by every context.
        flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
        self._shared: dict[int, Any] = {}
        for b in self.plan.buffers:
            if b.kind == "param":
                self._shared[b.id] = cl.Buffer(self.device.context, flags,
                                               hostbuf=host_params[b.index])
            elif b.kind == "const":
                self._shared[b.id] = cl.Buffer(self.device.context, flags,
                                               hostbuf=np.frombuffer(b.data, np.uint8).copy())
        self._pool: ContextPool[_Context] = ContextPool(self._new_context)
        self._home = ClHome(cl, self.device.context, self.device.device)
        #: per output: return it as a device tensor (set by the executor's residency plan)
        self.keep_on_device = (False,) * len(partition.outputs)
        with self._pool.acquire():  # make the first context now: allocation errors surface here
            pass

    def _check_plan(self) -> None:
        problems = self.plan.problems(len(self.partition.inputs), len(self.partition.params))
        if len(self.plan.outputs) != len(self.partition.outputs):
            problems.append(f"it has {len(self.plan.outputs)} outputs, the partition "
                            f"{len(self.partition.outputs)}")
        if problems:
            raise ArtifactError(
                f"partition {self.partition.id}: its launch plan does not fit the partition: "
                + "; ".join(problems[:5]), hint="recompile the model")

    # -- loading ----------------------------------------------------------------------------

    def _build(self, blob: bytes, options: RunnerOptions) -> Any:
        """The built program, from the in-process cache when this device built it before."""
        cl, dev = self._cl, self.device
        key = hashlib.sha256(blob + b"\0" + " ".join(BUILD_OPTIONS).encode()).hexdigest()
        with dev.lock:
            if key in dev.programs:
                return dev.programs[key]
            try:
                if self.binary:
                    program = cl.Program(dev.context, [dev.device], [blob])
                else:
                    program = cl.Program(dev.context, blob.decode("utf-8"))
                program.build(options=list(BUILD_OPTIONS))
            except (cl.Error, UnicodeDecodeError) as e:
                path = store_blob(blob, kind="opencl", suffix=".bin" if self.binary else ".cl",
                                  cache_dir=options.cache_dir)
                raise DeviceError(
                    f"partition {self.partition.id}: building its OpenCL program "
                    f"({self.code.member}) for {dev.description} failed: {_build_log(e)}",
                    hint=f"the program is at {path}; set {DEVICE_ENV} to try another device",
                ) from e
            dev.programs[key] = program
            return program

    def _new_context(self) -> _Context:
        cl, dev, plan = self._cl, self.device, self.plan
        buffers = dict(self._shared)
        inputs = {}
        for b in plan.buffers:
            if b.kind in ("input", "scratch"):
                # OpenCL has no zero-sized buffers; the kernels never touch such a buffer.
                buffers[b.id] = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, max(b.nbytes, 4))
                if b.kind == "input":
                    inputs[b.index] = buffers[b.id]
        kernels = {k.name: cl.Kernel(self._program, k.name) for k in plan.kernels}
        launches = []
        for launch in plan.launches:
            args = tuple(_arg(cl, buffers, a) for a in launch.args)
            launches.append((kernels[launch.kernel], launch.global_size, launch.block, args))
        outputs = [(buffers[o.buffer], o.offset) for o in plan.outputs]
        return _Context(cl.CommandQueue(dev.context, dev.device), launches, inputs, outputs)

    # -- running ----------------------------------------------------------------------------

    def run(self, args: Sequence[Any]) -> list[Any]:
        cl = self._cl
        # Device tensors of this context stay on the device (see hcompile.runtime.residency).
        arrays = [a if is_resident(a) else host_view(a) for a in args]
        check_host_arrays("input", arrays, self.plan, self.partition.id)
        try:
            with self._pool.acquire() as ctx:
                for index, buffer in ctx.inputs.items():
                    if arrays[index].nbytes:
                        cl_upload(self._home, ctx.queue, buffer, arrays[index])
                for kernel, global_size, local_size, kernel_args in ctx.launches:
                    kernel.set_args(*kernel_args)
                    cl.enqueue_nd_range_kernel(ctx.queue, kernel, global_size, local_size)
                outputs = cl_outputs(self._home, ctx.queue, ctx.outputs, self.plan.outputs,
                                     self.keep_on_device)
                ctx.queue.finish()
        except cl.Error as e:
            raise DeviceError(
                f"partition {self.partition.id} (target {self.partition.target}) failed on "
                f"{self.device.description}: {e}",
                hint="run it on the CPU (recompile with --targets cpu) or try another "
                f"OpenCL device ({DEVICE_ENV})",
            ) from e
        return [o if is_resident(o) else to_ffi(o) for o in outputs]


@register_runner("opencl-binary-plan")
class OpenCLBinaryRunner(OpenCLRunner):
    """A board binary from the vendor compiler: needs an FPGA board (accelerator device)."""

    binary = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = opencl_unavailable_reason()
        if reason is None and not opencl_device().is_accelerator:
            return (f"no FPGA board: the OpenCL device is {opencl_device().description}, "
                    "which cannot load a board binary")
        return reason


def _arg(cl: Any, buffers: dict[int, Any], arg: Any) -> Any:
    if isinstance(arg, BufferArg):
        buffer = buffers[arg.buffer]
        if arg.offset:
            return buffer.get_sub_region(arg.offset, buffer.size - arg.offset)
        return buffer
    return scalar_value(arg)


def _build_log(err: Exception) -> str:
    text = str(err).strip()
    return text if len(text) < 4000 else text[:2000] + "\n...\n" + text[-2000:]


# -- PoCL 3 on CPUs its LLVM does not know ------------------------------------------------------
# PoCL 3.0 (the pocl-binary-distribution / pyopencl wheels) ships LLVM 14, which names no CPU
# newer than Zen 3 / Ice Lake; on such a CPU (a Zen 5 here) it asks clang for
# "-target-cpu generic", which clang rejects, so PoCL builds nothing. PoCL >= 5 has
# POCL_LLVM_CPU_NAME for this; PoCL 3 has no switch, so we set the CPU name in the device
# itself: in PoCL's device struct the LLVM target triple pointer is followed by the CPU name
# pointer ("generic"), and we point the latter at a CPU LLVM 14 knows with the same features.
# It only happens on that exact build failure, only after finding exactly that pattern;
# HCOMPILE_POCL_CPU=off disables it, HCOMPILE_POCL_CPU=<llvm cpu> chooses the name.

_pocl_cpu_names: list[Any] = []  # keeps the replacement strings alive for the process


def _pocl_cpu_workaround(device: Any) -> bool:
    choice = os.environ.get(POCL_CPU_ENV, "").strip()
    hstr = re.search(r"HSTR: pthread-(\S+)-generic", device.version)
    if choice.lower() in ("off", "0", "no") or hstr is None or os.uname().machine != "x86_64":
        return False
    triple = hstr[1].encode()
    readable = _readable_ranges()
    base = int(device.int_ptr)
    for offset in range(0, 4096, 8):
        triple_ptr = _pointer_at(base + offset, readable)
        cpu_ptr = _pointer_at(base + offset + 8, readable)
        if (triple_ptr and cpu_ptr and _c_string(triple_ptr, readable) == triple
                and _c_string(cpu_ptr, readable) == b"generic"):
            name = ctypes.create_string_buffer((choice or _llvm14_cpu_name()).encode())
            _pocl_cpu_names.append(name)
            ctypes.c_uint64.from_address(base + offset + 8).value = ctypes.addressof(name)
            return True
    return False


def _llvm14_cpu_name() -> str:
    """The CPU PoCL's distro build would pair with this host's kernel library variant."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        flags = set()
    if "avx512f" in flags:
        return "skylake-avx512"
    if {"avx2", "fma"} <= flags:
        return "haswell"
    return "sandybridge" if "avx" in flags else "x86-64"


def _readable_ranges() -> list[tuple[int, int]]:
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                lo, hi = span.split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _pointer_at(address: int, readable: list[tuple[int, int]]) -> int:
    if not any(lo <= address and address + 8 <= hi for lo, hi in readable):
        return 0
    value: int = ctypes.c_uint64.from_address(address).value
    return value


def _c_string(address: int, readable: list[tuple[int, int]], limit: int = 64) -> bytes | None:
    if not any(lo <= address and address + limit <= hi for lo, hi in readable):
        return None
    return ctypes.string_at(address, limit).split(b"\0")[0]

"""The ``gpu`` target: CUDA compiled ahead of time with nvcc (cubin + PTX in a fatbinary),
its launch plan, the CPU fallback without a GPU, and (marked ``gpu``) runs on a real GPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

import hcompile
import hcompile.runtime.cuda_runner as cuda_runner
import hcompile.targets.cuda_gpu  # registers "gpu"
from hcompile.errors import UsageError
from hcompile.frontend import import_model
from hcompile.passes import PassOptions, run_pipeline
from hcompile.plan import build_partitions, subgraph
from hcompile.runtime.launch_plan import BufferArg, LaunchPlan
from hcompile.targets.cuda_gpu import CudaGpuTarget
from hcompile.targets.cuda_gpu.nvcc import compile_cuda, find_nvcc
from tests.conftest import ZOO, ort_run

RTOL, ATOL = 1e-4, 1e-5
#: see test_opencl_fpga.py: MobileNetV2 differs from ONNX Runtime by up to 4e-5 on every target
ZOO_ATOL = {"mobilenetv2": 1e-4}
SLOW = {"resnet18", "mobilenetv2"}  # 8-16 s of nvcc each, cold

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc (CUDA toolkit) not installed")


def _have_bindings() -> bool:
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except ModuleNotFoundError:
        return False


def _require_bindings() -> None:
    """GPU tests need NVIDIA's driver bindings too (an optional dependency)."""
    if not _have_bindings():
        pytest.skip("cuda-bindings not installed (pip install 'cuda-bindings>=12')")


def _gpu_builds(path: Path, target: CudaGpuTarget | None = None):
    graph, _ = import_model(path, None)
    run_pipeline(graph, PassOptions(targets=["gpu"]))
    target = target or CudaGpuTarget()
    return [target.build(subgraph(graph, p), p.id) for p in build_partitions(graph)]


def _feeds(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([d.dim_value or 1 for d in v.type.tensor_type.shape.dim])
            .astype(np.float32) for v in model.graph.input if v.name not in inits}


# -- compile only (runs everywhere nvcc is) -------------------------------------------------


@needs_nvcc
def test_nvcc_makes_cubin_and_ptx_and_packs_both(tmp_path, monkeypatch):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    source = ('extern "C" __global__ void __launch_bounds__(64) scale(float* x) '
              "{ x[threadIdx.x] *= 2.0f; }\n")
    images = compile_cuda(source, "sm_86", "test")
    assert images.cubin.startswith(b"\x7fELF")
    ptx = images.ptx.decode()
    assert ".target sm_86" in ptx and ".entry scale" in ptx
    assert (images.arch, images.ptx_arch) == ("sm_86", "compute_86")
    # the fatbinary carries both, uncompressed (fatbinary normalises the PTX's whitespace):
    # the driver loads the cubin on an sm_86 GPU and JIT-compiles the PTX on newer ones
    assert images.cubin in images.fatbin
    assert b".target sm_86" in images.fatbin and b".entry scale" in images.fatbin
    again = compile_cuda(source, "sm_86", "test")  # from the on-disk cache
    assert again == images


@needs_nvcc
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in ZOO])
def test_zoo_model_compiles_to_cubin_and_ptx(name, zoo_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    for result in _gpu_builds(zoo_path(name)):
        (code,) = result.code
        assert code.format == "cuda-plan" and code.member.endswith("/gpu.fatbin")
        info = code.info
        assert (info["arch"], info["ptx_arch"]) == ("sm_80", "compute_80")
        assert info["images"]["cubin"]["arch"] == "sm_80"
        assert info["images"]["ptx"]["arch"] == "compute_80"
        plan = LaunchPlan.from_json(info["plan"])
        assert not plan.problems()
        # the fatbinary holds the sm_80 ELF and the PTX text for every launched kernel
        assert b"\x7fELF" in code.data and b".target sm_80" in code.data
        for kernel in {x.kernel for x in plan.launches}:
            assert f".entry {kernel}(".encode() in code.data, kernel
        # the separate images nvcc made are cached beside the fatbinary, as the entry says
        cubins = {p.read_bytes() for p in (tmp_path / "nvcc").glob("*/gpu.cubin")}
        digests = {hashlib.sha256(c).hexdigest() for c in cubins if c in code.data}
        assert info["images"]["cubin"]["sha256"] in digests


@needs_nvcc
def test_cuda_arch_option(zoo_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HCOMPILE_CUDA_ARCH", "sm_90")
    (result,) = _gpu_builds(zoo_path("mlp"))
    assert result.code[0].info["arch"] == "sm_90"
    assert b".target sm_90" in result.code[0].data
    with pytest.raises(UsageError, match="not an SM architecture"):
        CudaGpuTarget("compute_80")


# -- without a GPU -----------------------------------------------------------------------


def _gpu_present() -> bool:
    return cuda_runner.CudaRunner.unavailable_reason() is None


@pytest.mark.skipif(_gpu_present(), reason="a CUDA GPU is present")
def test_no_gpu_means_unavailable_with_a_reason():
    reason = cuda_runner.CudaRunner.unavailable_reason()
    assert reason is not None
    assert reason.startswith("no CUDA device") or "cuda-bindings" in reason


@needs_nvcc
@pytest.mark.skipif(_gpu_present(), reason="a CUDA GPU is present")
def test_gpu_artifact_runs_on_its_cpu_fallback(zoo_path, isolated_cache):
    path = zoo_path("mlp")
    feeds = _feeds(path)
    art = hcompile.compile(path, targets=["gpu"])
    # until the compiler adds fallbacks itself: take the CPU build's code as the fallback
    cpu = hcompile.compile(path, targets=["cpu"])
    for part, cpu_part in zip(art.manifest["partitions"], cpu.manifest["partitions"],
                              strict=True):
        if part.get("fallback") is None:
            part["fallback"] = cpu_part["code"][0]
            member = cpu_part["code"][0]["member"]
            art.members[member] = cpu.members[member]
    exe = hcompile.load(art)
    assert [(p.code_format, p.fallback, p.runs_on) for p in exe.partitions] == [
        ("tvm-relax-vm-so", True, "cpu")]
    (want,) = ort_run(path, feeds)
    np.testing.assert_allclose(exe.run(feeds)["y"], want, rtol=RTOL, atol=ATOL)


# -- on a GPU (marked gpu; conftest skips them without one) ----------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_runs_on_the_gpu(name, zoo_path, isolated_cache):
    _require_bindings()
    path = zoo_path(name)
    feeds = _feeds(path)
    exe = hcompile.load(hcompile.compile(path, targets=["gpu"]))
    assert [(p.code_format, p.runs_on, p.fallback) for p in exe.partitions] == [
        ("cuda-plan", "gpu", False)] * len(exe.partitions)
    out = exe.run(feeds)
    for got, want in zip(out.values(), ort_run(path, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ZOO_ATOL.get(name, ATOL))
    start = time.perf_counter()
    for _ in range(20):
        exe.run(feeds)
    ms = (time.perf_counter() - start) / 20 * 1e3
    print(f"\n{name}: {ms:.3f} ms per run on {cuda_runner.cuda_gpu().name} (host in/out incl.)")


@pytest.mark.gpu
def test_gpu_runs_from_many_threads(zoo_path, isolated_cache):
    _require_bindings()
    path = zoo_path("lenet5")
    exe = hcompile.load(hcompile.compile(path, targets=["gpu"]))
    inputs = [_feeds(path, seed) for seed in range(6)]
    expected = [ort_run(path, f)[0] for f in inputs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(10):
                np.testing.assert_allclose(exe.run(inputs[i])["y"], expected[i],
                                           rtol=RTOL, atol=ATOL)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# -- the runner's plumbing, against a fake driver (no GPU needed) ----------------------------


class _FakeDriver:
    """Enough of ``cuda.bindings.driver`` to load and run a plan: device memory is host memory,
    and a launch records the argument values it was given instead of running."""

    class CUresult:
        CUDA_SUCCESS = 0

    class CUstream_flags:
        class CU_STREAM_NON_BLOCKING:
            value = 1

    class CUfunction_attribute:
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.memory: list[ctypes.Array[ctypes.c_char]] = []
        self.launches: list[tuple[str, tuple[int, ...], list[int]]] = []

    def __getattr__(self, name: str):  # context, stream and cleanup calls just succeed
        return lambda *args: (0, f"{name}-handle")

    def cuMemAlloc(self, nbytes: int):
        self.memory.append(ctypes.create_string_buffer(nbytes))
        return 0, ctypes.addressof(self.memory[-1])

    def _copy(self, dst: int, src: int, nbytes: int, *stream: object):
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    cuMemcpyHtoD = cuMemcpyHtoDAsync = cuMemcpyDtoHAsync = _copy

    def cuModuleGetFunction(self, module: object, name: bytes):
        return 0, name.decode()

    def cuLaunchKernel(self, function: str, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        count = len(self.plan.kernel(function).params)
        pointers = (ctypes.c_uint64 * count).from_address(params)  # void** kernelParams
        values = [ctypes.c_uint64.from_address(p).value for p in pointers]
        self.launches.append((function, (gx, gy, gz, bx, by, bz), values))
        return (0,)


@needs_nvcc
def test_cuda_runner_binds_device_pointers_as_the_plan_says(zoo_path, isolated_cache,
                                                          monkeypatch):
    path = zoo_path("mlp")
    art = hcompile.compile(path, targets=["gpu"])
    spec = art.manifest["partitions"][0]
    plan = LaunchPlan.from_json(spec["code"][0]["plan"])
    fake = _FakeDriver(plan)
    monkeypatch.setattr(cuda_runner, "_gpu", cuda_runner._Gpu(fake, 0, "ctx", "Fake GPU"))
    exe = hcompile.load(art)
    assert exe.partitions[0].code_format == "cuda-plan"
    feeds = _feeds(path)
    exe.run(feeds)
    assert [f for f, _, _ in fake.launches] == [x.kernel for x in plan.launches]
    hosts = {"input": [feeds[n] for n in spec["inputs"]],
             "param": [art.load_weight(n) for n in spec["params"]]}
    for (_, dims, values), launch in zip(fake.launches, plan.launches, strict=True):
        assert dims == (*launch.grid, *launch.block)
        for value, arg in zip(values, launch.args, strict=True):
            assert isinstance(arg, BufferArg)
            buffer = plan.buffers[arg.buffer]
            if buffer.kind in hosts:  # the pointer leads to the bytes the kernel must read
                host = hosts[buffer.kind][buffer.index]
                assert ctypes.string_at(value, host.nbytes) == host.tobytes()

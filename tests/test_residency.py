"""Device residency: consecutive OpenCL partitions pass their tensors on the device, and
copies to other devices are explicit download steps in the trace."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import hcompile
from hcompile.errors import DeviceError
from hcompile.runtime.check import check_partitions
from hcompile.runtime.trace import Trace
from tests.conftest import ort_run
from tests.runtime_models import compile_placed
from tests.test_cuda_gpu import needs_nvcc

N, BATCH = 320, 64  # the cost model cuts the FPGA nodes after t0 here (host-generic profile)


def fpga_fpga_cpu_model() -> Any:
    """x -f0-> t0 -f1-> t2 (fpga, fpga); t0 -c0-> c0 (cpu); y = t2 + c0 (cpu).

    Placed with ``f*=fpga, c*=cpu``, the partitioner cuts the FPGA nodes after ``t0`` (so
    the CPU can start on ``t0`` while the FPGA goes on): fpga -> fpga -> cpu."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(
        (rng.standard_normal((N, N)) / np.sqrt(N)).astype(np.float32), f"W{i}")
        for i in range(3)]
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["t0"], name="f0_MatMul"),
             helper.make_node("MatMul", ["t0", "W1"], ["c0"], name="c0_MatMul"),
             helper.make_node("MatMul", ["t0", "W2"], ["t1"], name="f1_MatMul"),
             helper.make_node("Tanh", ["t1"], ["t2"], name="f1_Tanh"),
             helper.make_node("Add", ["t2", "c0"], ["y"], name="c1_Add")]
    graph = helper.make_graph(
        nodes, "fpga_fpga_cpu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, N])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, N])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def placed() -> tuple[Any, Any]:
    model = fpga_fpga_cpu_model()
    return model, compile_placed(model, ["f*=fpga", "c*=cpu"])


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every OpenCL copy by direction: upload, download, device (buffer to buffer)."""
    import pyopencl as cl

    seen: Counter[str] = Counter()
    real = cl.enqueue_copy

    def spy(queue: Any, dest: Any, src: Any, **kwargs: Any) -> Any:
        on_device = (isinstance(dest, cl.MemoryObjectHolder),
                     isinstance(src, cl.MemoryObjectHolder))
        seen[{(True, False): "upload", (False, True): "download",
              (True, True): "device"}[on_device]] += 1
        return real(queue, dest, src, **kwargs)

    monkeypatch.setattr(cl, "enqueue_copy", spy)
    return seen


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((BATCH, N)).astype(np.float32)}


def test_placement_is_fpga_then_fpga_then_cpu(placed):
    _, art = placed
    parts = [(p["target"], p["inputs"], p["outputs"]) for p in art.manifest["partitions"]]
    assert parts[:2] == [("fpga", ["x"], ["t0"]), ("fpga", ["t0"], ["t2"])]
    assert {t for t, _, _ in parts[2:]} == {"cpu"}


def test_trace_shows_no_host_round_trip_between_fpga_partitions(placed, transfers):
    model, art = placed
    exe = hcompile.load(art)
    trace = Trace()
    got = exe.run(_feeds(), trace=trace)["y"]
    np.testing.assert_allclose(got, ort_run(model.SerializeToString(), _feeds())[0],
                               rtol=1e-4, atol=1e-5)
    by_name = {s.name: s for s in trace.spans}
    assert by_name["partition 1"].track == "fpga"
    assert by_name["partition 1"].args["resident_inputs"] == ["t0"]  # handed over on the device
    assert "resident_inputs" not in by_name["partition 0"].args
    links = {s.track for s in trace.spans if s.track.startswith("link ")}
    assert links == {"link cpu->fpga", "link fpga->cpu"}  # nothing fpga->host->fpga
    downloads = sorted(s.name for s in trace.spans if s.track == "link fpga->cpu")
    assert downloads == ["copy t0", "copy t2"]  # for the CPU partitions: explicit steps
    assert all(s.args.get("download") for s in trace.spans if s.track == "link fpga->cpu")
    # the OpenCL copies: x up; on the device, t0 and t2 out of the contexts' scratch and t0
    # into partition 1's input; t0 and t2 down (by the copy steps), nothing else
    assert transfers == {"upload": 1, "device": 3, "download": 2}


def test_inline_run_and_check_download_what_the_cpu_reads(placed, transfers):
    model, art = placed
    exe = hcompile.load(art)
    want = ort_run(model.SerializeToString(), _feeds())[0]
    env = exe._environment(_feeds())
    exe._run_inline(env)  # the no-thread path run() takes when nothing can overlap
    assert type(env["t0"]).__name__ == "ClTensor" and transfers["download"] == 2
    np.testing.assert_allclose(np.from_dlpack(env["y"]), want, rtol=1e-4, atol=1e-5)
    rows = check_partitions(exe, _feeds())
    assert [r.reference for r in rows[:2]] == ["cpu fallback", "cpu fallback"]
    assert max(r.max_abs_err for r in rows) < 1e-4


def test_consumer_falling_back_to_cpu_gets_host_tensors(placed, caplog):
    model, art = placed
    exe = hcompile.load(art)
    step = exe._steps[1]

    def broken(args: Any) -> list[Any]:
        raise DeviceError("test: the FPGA went away")

    step.runner.run = broken  # type: ignore[method-assign]
    got = exe.run(_feeds())["y"]
    np.testing.assert_allclose(got, ort_run(model.SerializeToString(), _feeds())[0],
                               rtol=1e-4, atol=1e-5)
    assert exe.partitions[1].runs_on == "cpu" and exe.partitions[0].runs_on == "fpga"


# -- CUDA: the same hand-over with device pointers, against a fake driver (no GPU needed) ---


def _counted_copy(kind: str) -> Any:
    """A fake driver's memcpy method that counts its calls under ``kind``."""

    def copy(self: Any, dst: int, src: int, nbytes: int, *stream: object) -> Any:
        self.copies[kind] += 1
        return self._copy(dst, src, nbytes)

    return copy


@needs_nvcc
def test_cuda_partitions_hand_over_device_pointers(isolated_cache, monkeypatch):
    import hcompile.runtime.cuda_runner as cuda_runner
    from tests.test_cuda_gpu import _FakeDriver

    class Driver(_FakeDriver):
        """Copies are memmoves between host memory posing as device memory, counted by
        direction; launches do nothing (what matters here is where the bytes go)."""

        def __init__(self) -> None:
            super().__init__(plan=None)  # type: ignore[arg-type]
            self.copies: Counter[str] = Counter()

        cuMemcpyHtoD = cuMemcpyHtoDAsync = _counted_copy("upload")
        cuMemcpyDtoH = cuMemcpyDtoHAsync = _counted_copy("download")
        cuMemcpyDtoDAsync = _counted_copy("device")

        def cuLaunchKernel(self, *args: object):
            return (0,)

    art = compile_placed(fpga_fpga_cpu_model(), ["f*=gpu", "c*=cpu"], targets=("cpu", "gpu"))
    assert [p["target"] for p in art.manifest["partitions"]][:2] == ["gpu", "gpu"]
    driver = Driver()
    monkeypatch.setattr(cuda_runner, "_gpu", cuda_runner._Gpu(driver, 0, "ctx", "Fake GPU"))
    exe = hcompile.load(art)
    assert [p.runs_on for p in exe.partitions][:2] == ["gpu", "gpu"]
    driver.copies.clear()  # the params' uploads at load
    trace = Trace()
    exe.run(_feeds(), trace=trace)
    spans = {s.name: s for s in trace.spans}
    assert spans["partition 1"].args["resident_inputs"] == ["t0"]
    assert {s.track for s in trace.spans if s.track.startswith("link ")} == {
        "link cpu->gpu", "link gpu->cpu"}
    # x up; t0 and t2 out of the contexts' memory and t0 into partition 1, on the device;
    # t0 and t2 down for the CPU partitions
    assert driver.copies == {"upload": 1, "device": 3, "download": 2}

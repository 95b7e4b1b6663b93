"""The ``fpga`` target: FPGA-friendly OpenCL C, launch plans, and runs on PoCL (the emulator).

Graphs take the real path (ONNX -> import -> passes -> partitions -> target build, or
``hcompile.compile``/``hcompile.load``) and must match numpy / ONNX Runtime at
rtol 1e-4, atol 1e-5.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hcompile
import hcompile.runtime.opencl_runner as opencl_runner
import hcompile.targets.opencl_fpga  # registers "fpga"
from hcompile.errors import CompileError
from hcompile.frontend import import_model
from hcompile.passes import PassOptions, run_pipeline
from hcompile.plan import build_partitions, subgraph
from hcompile.runtime.launch_plan import LaunchPlan
from hcompile.targets.opencl_fpga import FpgaProfile, OpenCLFpgaTarget
from hcompile.targets.opencl_fpga.source import (
    NEWER_THAN_1_2,
    fpga_source,
    kernel_names,
    reqd_work_group_sizes,
)
from tests.conftest import ZOO, ort_run

RTOL, ATOL = 1e-4, 1e-5
#: MobileNetV2 stacks ~50 fp32 convolutions: its outputs differ from ONNX Runtime's by up to
#: 4e-5 on the CPU target as well (summation order), so atol is 1e-4 there.
ZOO_ATOL = {"mobilenetv2": 1e-4}
SLOW = {"resnet18", "mobilenetv2"}  # 5-10 s each on PoCL with 2 cores


@pytest.fixture(scope="module")
def opencl() -> None:
    """Skip where there is no OpenCL at all; a device that cannot build is a failure."""
    reason = opencl_runner.opencl_unavailable_reason()
    if reason and any(s in reason for s in ("pyopencl is not installed", "no OpenCL platform",
                                            "no OpenCL device")):
        pytest.skip(reason)
    if reason:
        pytest.fail(reason)


def _fpga_partitions(model: Path | onnx.ModelProto, target: OpenCLFpgaTarget | None = None):
    """(partition graph, build result) for each FPGA partition, the way the compiler makes
    them (what does not fit the FPGA's budget stays on the CPU)."""
    graph, _ = import_model(model, None)
    run_pipeline(graph, PassOptions(targets=["fpga"]))
    target = target or OpenCLFpgaTarget()
    return [(subgraph(graph, p), target.build(subgraph(graph, p), p.id))
            for p in build_partitions(graph) if p.target == "fpga"]


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k)
                                                             for k, v in dict(inits).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _run_fpga(model: Path | onnx.ModelProto, feeds: dict[str, np.ndarray]):
    exe = hcompile.load(hcompile.compile(model, targets=["fpga"]))
    assert [p.code_format for p in exe.partitions] == ["opencl-plan"] * len(exe.partitions)
    assert {p.runs_on for p in exe.partitions} == {"fpga"}
    assert not any(p.fallback for p in exe.partitions)
    return exe, exe.run(feeds)


def _zoo_feeds(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        if value.name not in inits:
            dims = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
            feeds[value.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


# -- the generated code ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "lenet5", "transformer", "lstm"])
def test_every_kernel_has_reqd_work_group_size_of_its_launch(name, zoo_path):
    built = _fpga_partitions(zoo_path(name))
    assert built
    for _, result in built:
        (code,) = result.code
        assert code.format == "opencl-plan"
        assert re.fullmatch(r"partitions/\d+/fpga\.cl", code.member), code.member
        source = code.data.decode()
        plan = LaunchPlan.from_json(code.info["plan"])
        sizes = reqd_work_group_sizes(source)
        assert set(sizes) == set(kernel_names(source)) == {k.name for k in plan.kernels}
        for launch in plan.launches:
            assert sizes[launch.kernel] == launch.block, launch.kernel
        for word in NEWER_THAN_1_2:
            assert word not in source
        # a reshape alone is a view, not a kernel (fused into a copy it may be one)
        assert not [k for k in sizes if re.fullmatch(r"reshape\d*_kernel", k)]
        assert code.info["cl_std"] == "CL1.2"


def test_profile_limits_are_enforced(zoo_path):
    # dlight's matmul schedule uses 160 work-items: a 64-wide device cannot take it
    small = OpenCLFpgaTarget(FpgaProfile(name="tiny-board", max_work_group_size=64))
    with pytest.raises(CompileError, match=r"work-items, tiny-board allows 64"):
        _fpga_partitions(zoo_path("mlp"), small)
    little_local = OpenCLFpgaTarget(FpgaProfile(name="no-bram", local_mem_bytes=1024))
    with pytest.raises(CompileError, match=r"bytes of local memory, no-bram has 1024"):
        _fpga_partitions(zoo_path("mlp"), little_local)
    target = OpenCLFpgaTarget(FpgaProfile(max_work_group_size=512, local_mem_bytes=65536))
    assert target.tvm_target().attrs["max_num_threads"] == 512


def test_fpga_source_rejects_what_fpga_compilers_reject(zoo_path):
    (_, result), = _fpga_partitions(zoo_path("mlp"))
    plan = LaunchPlan.from_json(result.code[0].info["plan"])
    source = "__kernel void extra(__global float* x) { x[0] = sub_group_reduce_add(x[0]); }\n"
    with pytest.raises(CompileError, match=r"newer than 1\.2.*no launch uses: \['extra'\]"):
        fpga_source(source, plan, FpgaProfile(), "test")
    with pytest.raises(CompileError, match="lacks kernels the plan launches"):
        fpga_source("", plan, FpgaProfile(), "test")


def _fake_vendor_tool(folder: Path, name: str) -> None:
    script = folder / name
    script.write_text('#!/bin/sh\nwhile [ "$#" -gt 0 ]; do\n'
                      '  if [ "$1" = "-o" ]; then echo "board binary" > "$2"; fi; shift\n'
                      'done\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(("tool", "suffix", "vendor"), [("aoc", "aocx", "intel"),
                                                      ("v++", "xclbin", "xilinx")])
def test_vendor_compiler_adds_a_board_binary(tool, suffix, vendor, zoo_path, tmp_path,
                                             monkeypatch, opencl):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_vendor_tool(bin_dir, tool)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HCOMPILE_FPGA_COMPILER", tool)
    monkeypatch.setenv("HCOMPILE_FPGA_BOARD", "some_board")
    path = zoo_path("mlp")
    (_, result), = _fpga_partitions(path)
    binary, source = result.code
    assert (binary.format, binary.member) == ("opencl-binary-plan",
                                              f"partitions/0/fpga.{suffix}")
    assert binary.data == b"board binary\n"
    assert (binary.info["vendor"], binary.info["board"]) == (vendor, "some_board")
    assert source.format == "opencl-plan"
    # PoCL is no FPGA board: the runtime takes the source entry
    exe = hcompile.load(hcompile.compile(path, targets=["fpga"]))
    assert exe.partitions[0].code_format == "opencl-plan"
    reason = opencl_runner.OpenCLBinaryRunner.unavailable_reason()
    assert reason is not None and "no FPGA board" in reason


def test_missing_vendor_compiler_means_source_only(zoo_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", "/nonexistent")
    target = OpenCLFpgaTarget(FpgaProfile(compiler="v++", board="xilinx_u250"))
    (_, result), = _fpga_partitions(zoo_path("mlp"), target)
    assert [c.format for c in result.code] == ["opencl-plan"]
    assert "v++ is not on PATH" in caplog.text


# -- running on PoCL ------------------------------------------------------------------------


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_matmul_relu_softmax_matches_numpy(opencl):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((48, 24)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Softmax", ["r"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 24])],
        {"w": w, "b": b},
    )
    x = rng.standard_normal((5, 48)).astype(np.float32)
    _, out = _run_fpga(model, {"x": x})
    np.testing.assert_allclose(out["y"], _softmax(np.maximum(x @ w + b, 0)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("strides", "pads", "group"), [((1, 1), (1, 1, 1, 1), 1),
                                                         ((2, 2), (0, 1, 0, 1), 1),
                                                         ((1, 1), (1, 1, 1, 1), 4)])
def test_conv2d_matches_onnxruntime(opencl, strides, pads, group):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 8 // group, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    out_hw = (17 + pads[0] + pads[2] - 3) // strides[0] + 1
    model = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=list(strides), pads=list(pads),
                          group=group),
         helper.make_node("Relu", ["c"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 17, 17])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8, out_hw, out_hw])],
        {"w": w, "b": b},
    )
    x = rng.standard_normal((2, 8, 17, 17)).astype(np.float32)
    _, out = _run_fpga(model, {"x": x})
    (want,) = ort_run(model.SerializeToString(), {"x": x})
    np.testing.assert_allclose(out["y"], want, rtol=RTOL, atol=ATOL)


def test_a_partition_of_views_launches_nothing(opencl):
    model = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
        {"shape": np.array([3, 4], dtype=np.int64)},
    )
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    _, out = _run_fpga(model, {"x": x})
    np.testing.assert_array_equal(out["y"], x.reshape(3, 4))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in ZOO])
def test_zoo_model_runs_on_pocl_and_matches_onnxruntime(name, zoo_path, isolated_cache, opencl):
    path = zoo_path(name)
    feeds = _zoo_feeds(path)
    art = hcompile.compile(path, targets=["fpga"])
    # What does not fit the U250's fabric budget spills to the CPU (resnet18, transformer
    # and lstm, by a few nodes); everything else runs as OpenCL on PoCL, never on a fallback.
    nodes = art.manifest["plan"]["nodes"]
    on_cpu = [n for n in nodes if n["target"] == "cpu"]
    assert {n["reason"] for n in on_cpu} <= {"resource limit"}, on_cpu
    assert len(on_cpu) < len(nodes) / 2
    exe = hcompile.load(art)
    fpga = [p for p in exe.partitions if p.target == "fpga"]
    assert fpga and all((p.code_format, p.runs_on, p.fallback) == ("opencl-plan", "fpga", False)
                        for p in fpga)
    assert {p.target for p in exe.partitions} == ({"fpga", "cpu"} if on_cpu else {"fpga"})
    out = exe.run(feeds)
    for got, want in zip(out.values(), ort_run(path, feeds), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ZOO_ATOL.get(name, ATOL))


def test_runs_from_many_threads_at_once(zoo_path, opencl):
    path = zoo_path("mlp")
    exe = hcompile.load(hcompile.compile(path, targets=["fpga"]))
    inputs = [_zoo_feeds(path, seed) for seed in range(8)]
    expected = [ort_run(path, f)[0] for f in inputs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                got = exe.run(inputs[i])["y"]
                np.testing.assert_allclose(got, expected[i], rtol=RTOL, atol=ATOL)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_device_choice_by_environment(monkeypatch, opencl):
    monkeypatch.setenv(opencl_runner.DEVICE_ENV, "no-such-device-anywhere")
    reason = opencl_runner.OpenCLRunner.unavailable_reason()
    assert reason is not None and opencl_runner.DEVICE_ENV in reason
    monkeypatch.setenv(opencl_runner.DEVICE_ENV, "0:0")
    assert opencl_runner.OpenCLRunner.unavailable_reason() is None
    monkeypatch.setenv(opencl_runner.DEVICE_ENV, "portable")  # PoCL by name
    assert opencl_runner.opencl_device().description.startswith("Portable Computing Language")

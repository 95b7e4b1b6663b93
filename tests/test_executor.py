"""Dependency-driven execution: device workers, overlap of independent partitions, copy
steps, failures and CPU fallback, ``--check``."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import hcompile
from hcompile.errors import DeviceError
from hcompile.runtime.check import check_partitions, format_checks
from hcompile.runtime.scheduler import StepGraph
from hcompile.runtime.trace import Trace
from tests.runtime_models import (
    BRANCH_PLACE,
    branch_model,
    branch_reference,
    compile_placed,
    diamond,
    overlapping,
    sleep_artifact,
)

X = np.arange(4, dtype=np.float32)


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "runs on its CPU fallback" in r.getMessage()]


def spans(trace: Trace, name: str) -> list:
    return [s for s in trace.spans if s.name == name]


def test_step_graph_dependencies():
    graph = StepGraph([(["x"], ["a"]), (["x"], ["b"]), (["a", "b"], ["y"]), (["y"], ["z"])])
    assert graph.deps == [(), (), (0, 1), (2,)]
    assert graph.roots == [0, 1]
    assert graph.consumers == [[2], [2], [3], []]
    assert graph.independent(0, 1)
    assert not graph.independent(0, 2) and not graph.independent(1, 3)
    assert graph.can_overlap(["cpu", "fpga", "cpu", "cpu"])
    assert not graph.can_overlap(["cpu", "cpu", "fpga", "cpu"])  # the side by side pair shares
    chain = StepGraph([(["x"], ["a"]), (["a"], ["b"])])
    assert not chain.can_overlap(["cpu", "fpga"])


def test_independent_partitions_on_two_devices_run_at_once():
    exe = hcompile.load(diamond(sleep=0.05))
    for _ in range(5):  # on a loaded machine a device thread may start late; retry then
        trace = Trace()
        out = exe.run({"x": X}, trace=trace)
        a, b, join = (spans(trace, f"partition {i}")[0] for i in range(3))
        if overlapping(a, b):
            break
    np.testing.assert_array_equal(out["y"], 2 * X + 3)
    assert (a.track, b.track, join.track) == ("cpu", "fpga", "cpu")
    assert overlapping(a, b)
    assert join.start >= max(a.end, b.end)  # it waited for both inputs
    copies = [s for s in trace.spans if s.track.startswith("link ")]
    assert sorted((s.track, s.name) for s in copies) == [("link cpu->fpga", "copy x"),
                                                         ("link fpga->cpu", "copy b")]
    assert exe.run({"x": X})["y"].tolist() == out["y"].tolist()  # untraced run, same path
    exe.close()


def test_chain_runs_inline_without_workers():
    exe = hcompile.load(sleep_artifact([("cpu", ["x"], ["a"], 0.0, 1.0),
                                        ("fpga", ["a"], ["y"], 0.0, 1.0)]))
    assert not exe._overlap
    np.testing.assert_array_equal(exe.run({"x": X})["y"], X + 2)
    assert exe._scheduler.workers._queues == {}  # no thread was started


def test_failure_without_fallback_is_raised_and_executor_stays_usable():
    art = sleep_artifact([("cpu", ["x"], ["a"], 0.0, 1.0), ("fpga", ["x"], ["b"], 0.0, 1.0),
                          ("cpu", ["a", "b"], ["y"], 0.0, 0.0)], fallback=False, failing=[1])
    exe = hcompile.load(art)
    for _ in range(2):
        with pytest.raises(DeviceError, match="partition 1: test failure"):
            exe.run({"x": X})


def test_device_failure_falls_back_once_and_strict_raises(caplog):
    art = sleep_artifact([("cpu", ["x"], ["a"], 0.0, 1.0), ("fpga", ["x"], ["b"], 0.0, 2.0),
                          ("cpu", ["a", "b"], ["y"], 0.0, 0.0)], failing=[1])
    exe = hcompile.load(art)
    with caplog.at_level(logging.WARNING, logger="hcompile"):
        outs = [exe.run({"x": X})["y"] for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out, 2 * X + 3)
    assert len(fallback_warnings(caplog)) == 1
    assert exe.partitions[1].fallback and exe.partitions[1].runs_on == "cpu"
    with pytest.raises(DeviceError, match="CPU fallback"):
        hcompile.load(art, strict=True).run({"x": X})


def test_fault_injection_switch(caplog, monkeypatch):
    monkeypatch.setenv("HCOMPILE_FAULT_INJECT", "fpga")
    with caplog.at_level(logging.WARNING, logger="hcompile"):
        exe = hcompile.load(diamond(sleep=0.0))
        outs = [exe.run({"x": X})["y"] for _ in range(3)]
    assert all(o.tolist() == (2 * X + 3).tolist() for o in outs)
    assert len(fallback_warnings(caplog)) == 1
    assert "injected fault on the fpga device" in fallback_warnings(caplog)[0]


# -- real code: a two-branch model, one branch on the CPU and one on PoCL -------------------


@pytest.fixture(scope="module")
def branches():
    # big enough that each branch takes about a millisecond or more: longer than the start
    # of one device worker after the other
    model = branch_model(n=256, depth=4, batch=64)
    return model, compile_placed(model, BRANCH_PLACE)


def test_branches_on_cpu_and_fpga_overlap_in_the_trace(branches, isolated_cache):
    model, art = branches
    assert [(p["target"], p["inputs"], p["outputs"]) for p in art.manifest["partitions"]] == [
        ("cpu", ["x"], ["at3"]), ("fpga", ["x"], ["bt3"]), ("cpu", ["at3", "bt3"], ["y"])]
    exe = hcompile.load(art)
    if exe.partitions[1].fallback:
        pytest.skip("no working OpenCL device (PoCL) here")
    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    expected = branch_reference(model, x)
    np.testing.assert_allclose(exe.run({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)
    for _ in range(20):  # on a loaded machine a device thread may wake late; retry then
        trace = Trace()
        out = exe.run({"x": x}, trace=trace)
        cpu, fpga = spans(trace, "partition 0")[0], spans(trace, "partition 1")[0]
        if overlapping(cpu, fpga):
            break
    np.testing.assert_allclose(out["y"], expected, rtol=1e-4, atol=1e-5)
    assert (cpu.track, fpga.track) == ("cpu", "fpga")
    assert overlapping(cpu, fpga)


def test_fpga_fault_gives_the_fallback_result_with_one_warning(branches, isolated_cache,
                                                               caplog, monkeypatch):
    _, art = branches
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    monkeypatch.setenv("HCOMPILE_OPENCL_DEVICE", "no such device")  # fallback at load
    expected = hcompile.load(art).run({"x": x})["y"]
    monkeypatch.delenv("HCOMPILE_OPENCL_DEVICE")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hcompile"):
        exe = hcompile.load(art, fault_inject={"fpga"})
        outs = [exe.run({"x": x})["y"] for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out, expected)
    assert len(fallback_warnings(caplog)) == 1
    with pytest.raises(DeviceError, match="injected fault"):
        hcompile.load(art, fault_inject={"fpga"}, strict=True).run({"x": x})


def test_check_compares_each_device_partition_with_its_cpu_code(branches, isolated_cache):
    _, art = branches
    exe = hcompile.load(art)
    x = np.random.default_rng(2).standard_normal((64, 256)).astype(np.float32)
    rows = check_partitions(exe, {"x": x})
    assert [(r.id, r.target, r.reference) for r in rows] == [
        (0, "cpu", "is cpu code"),
        (1, "fpga", "cpu fallback" if not exe.partitions[1].fallback else "is cpu code"),
        (2, "cpu", "is cpu code")]
    assert all(r.max_abs_err < 1e-5 for r in rows)
    assert "max abs err" in format_checks(rows)


def test_device_threads_end_with_the_executor():
    import gc
    import threading
    import weakref

    gc.collect()
    before = set(threading.enumerate())
    exe = hcompile.load(diamond(sleep=0.0))
    exe.run({"x": X})
    mine = [t for t in threading.enumerate() if t not in before]
    assert sorted(t.name for t in mine) == ["hcompile-cpu", "hcompile-fpga"]  # one per device
    ref = weakref.ref(exe)
    del exe
    gc.collect()
    assert ref() is None
    for thread in mine:
        thread.join(timeout=10)
        assert not thread.is_alive()

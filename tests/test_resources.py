"""Resource checks (issue #9 item 4): device memory and FPGA budgets at compile time.

Forced placements (``--place``) that do not fit fail the compile (exit 2, partition, device,
resource and overshoot named); automatic placement keeps what does not fit off the device,
and without ``cpu`` in ``--targets`` it spills to the CPU with one warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hcompile.devices import DeviceSet, load_devices
from hcompile.errors import ResourceError
from hcompile.ir import Graph
from hcompile.passes import PassOptions, run_pipeline
from hcompile.passes.place_resources import budget, partition_memory
from hcompile.plan import build_partitions, plan_json
from tests.conftest import hcompile_cli, ort_run

HOST = '[cpu]\nbase = "host-generic"\n'
#: Room for one of lenet5's conv kernels (320 DSP, 58k LUT), not two.
SMALL_FPGA = HOST + '[fpga]\nbase = "alveo-u250"\nfpga = {dsp = 500, lut = 100000}\n'


def _devices(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(text)
    return path


def _place(zoo_path, name: str, targets: list[str], devs: DeviceSet,
           **extra: object) -> tuple[Graph, PassOptions]:
    from hcompile.frontend import import_model

    graph, _ = import_model(zoo_path(name))
    options = PassOptions(targets=targets, extra={"devices": devs, **extra})
    run_pipeline(graph, options)
    return graph, options


def test_every_builtin_profile_has_a_memory_capacity(tmp_path):
    devs = load_devices("nvidia-h100,alveo-u250")
    assert devs["gpu"].memory_bytes == 80e9 and devs["fpga"].memory_bytes == 64e9
    assert load_devices("nvidia-t4")["gpu"].memory_bytes == 16e9
    assert load_devices("intel-arria10-gx")["fpga"].memory_bytes == 8e9
    host = load_devices(_devices(tmp_path, HOST))["cpu"]
    assert host.memory_bytes is None
    assert (host.memory_capacity() or 0) > 1e8  # this machine's RAM when not in the profile


def test_liveness_counts_weights_once_and_frees_dead_activations(zoo_path, tmp_path):
    graph, _ = _place(zoo_path, "lenet5", ["cpu"], load_devices(_devices(tmp_path, HOST)))
    names = [n.name for n in graph.nodes]
    weights, peak = partition_memory(graph, names)
    types = graph.tensor_types()
    used = {i for n in graph.nodes for i in n.inputs if i in graph.constants}
    assert weights == sum(types[c].nbytes for c in used) > 0
    every = sum(t.nbytes for t in graph.inputs.values()) + sum(
        types[o].nbytes for n in graph.nodes for o in n.outputs if o)
    biggest = max(types[o].nbytes for n in graph.nodes for o in n.outputs if o)
    assert biggest < peak < every  # never every activation alive at once


def test_too_little_device_memory_fails_the_compile_with_exit_2(zoo_path, tmp_path):
    devs = _devices(tmp_path, HOST + "memory_bytes = 4096\n")
    out = tmp_path / "m.hca"
    proc = hcompile_cli(str(zoo_path("mlp")), "-o", str(out), "--devices", str(devs))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "partition p0 (cpu: host-generic) needs" in proc.stderr
    assert "of device memory" in proc.stderr and "4.1 kB: over by" in proc.stderr
    assert "hint:" in proc.stderr and not out.exists()


def test_the_only_target_spills_what_does_not_fit_to_the_cpu_and_runs(zoo_path, tmp_path,
                                                                      caplog):
    devs = _devices(tmp_path, SMALL_FPGA)
    out = tmp_path / "l.hca"
    path = zoo_path("lenet5")
    proc = hcompile_cli(str(path), "-o", str(out), "--targets", "fpga", "--devices", str(devs))
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert "fpga (alveo-u250): the model needs" in warning
    assert re.search(r"needs [\d.]+k? (DSP blocks|BRAM blocks|LUTs), the budget is [\d.]+k? "
                     r"\(80% of [\d.]+k?\), over by \d+%( \(also [^)]*\))?: \d+ of \d+ "
                     r"nodes", warning)
    assert "nodes stay on the CPU" in warning and "--devices FILE.toml" in warning
    from hcompile.artifact import Artifact

    plan = Artifact.read(out).manifest["plan"]
    on_cpu = [n for n in plan["nodes"] if n["target"] == "cpu"]
    assert on_cpu and {n["reason"] for n in on_cpu} == {"resource limit"}
    assert all(n["detail"].startswith("would not fit fpga (") for n in on_cpu)
    assert any(n["target"] == "fpga" for n in plan["nodes"])
    # The same placement in process: nothing on the FPGA beyond its real budget.
    caplog.clear()
    small = load_devices(devs)
    graph, options = _place(zoo_path, "lenet5", ["fpga"], small)
    summary = options.extra["plan_summary"]
    fpga = summary.problem.devices.index("fpga")
    used = summary.problem.usage(summary.solution.assign, fpga)
    assert used[0] > 0 and np.all(used <= budget(small["fpga"]))
    assert [n.name for n in graph.nodes if n.meta["target"] == "cpu"] == [
        n["name"] for n in on_cpu]
    assert sum("stay on the CPU" in r.getMessage() for r in caplog.records) == 1
    # And the artifact runs: its FPGA partitions on OpenCL (PoCL), matching ONNX Runtime.
    from hcompile.runtime import opencl_runner

    reason = opencl_runner.opencl_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import hcompile

    exe = hcompile.load(out)
    assert {p.target for p in exe.partitions} == {"cpu", "fpga"}
    assert all(p.runs_on == "fpga" and not p.fallback
               for p in exe.partitions if p.target == "fpga")
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    (got,) = exe.run({"x": x}).values()
    (want,) = ort_run(path, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_forced_nodes_that_overflow_the_only_target_still_fail_with_exit_2(zoo_path,
                                                                           tmp_path):
    devs = _devices(tmp_path, SMALL_FPGA)
    out = tmp_path / "l.hca"
    proc = hcompile_cli(str(zoo_path("lenet5")), "-o", str(out), "--targets", "fpga",
                        "--devices", str(devs), "--place", "*Conv*=fpga")
    assert proc.returncode == 2, proc.stderr
    assert "(fpga: alveo-u250) need" in proc.stderr
    assert "DSP blocks, the budget is 400 (80% of 500): over by" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    with pytest.raises(ResourceError, match=r"\(fpga: alveo-u250\) needs? .* over by \d+%"):
        _place(zoo_path, "lenet5", ["fpga"], load_devices(devs), place=["*Conv*=fpga"])


def test_a_large_enough_fpga_takes_every_node_without_a_warning(zoo_path, tmp_path, caplog):
    devs = load_devices(_devices(tmp_path, HOST + '[fpga]\nbase = "alveo-u250"\n'))
    graph, _ = _place(zoo_path, "lenet5", ["fpga"], devs)
    assert {n.meta["target"] for n in graph.nodes} == {"fpga"}
    assert "resource limit" not in {n.meta["reason"] for n in graph.nodes}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_place_onto_a_full_fpga_is_a_resource_error(zoo_path, tmp_path):
    # Room for one conv kernel (320 DSP, 58k LUT), not two.
    devs = load_devices(_devices(tmp_path, HOST + '[fpga]\nbase = "alveo-u250"\n'
                                          'fpga = {dsp = 500, lut = 100000}\n'))
    with pytest.raises(ResourceError, match=r"partitions p\d+, p\d+ \(fpga: alveo-u250\) "
                                            r"need .* "
                                            r"over by \d+%"):
        _place(zoo_path, "lenet5", ["cpu", "fpga"], devs, place=["Conv=fpga"])
    # One small conv fits the fabric: no error, and nothing else joins it.
    graph, _ = _place(zoo_path, "lenet5", ["cpu", "fpga"], devs,
                      place=["/features/features.0/Conv=fpga"])
    assert [n.name for n in graph.nodes if n.meta["target"] == "fpga"] == [
        "/features/features.0/Conv"]


def test_automatic_placement_keeps_what_does_not_fit_in_memory_off_the_device(zoo_path,
                                                                             tmp_path):
    roomy = load_devices(_devices(tmp_path, HOST + '[gpu]\nbase = "nvidia-h100"\n'))
    graph, _ = _place(zoo_path, "resnet18", ["cpu", "gpu"], roomy)
    assert sum(n.meta["target"] == "gpu" for n in graph.nodes) > 10
    capacity = 4e6  # a few of resnet18's 45 MB of weights
    small = load_devices(_devices(tmp_path, HOST + '[gpu]\nbase = "nvidia-h100"\n'
                                            f'memory_bytes = {capacity}\n'))
    graph, options = _place(zoo_path, "resnet18", ["cpu", "gpu"], small)
    plan = plan_json(graph, build_partitions(graph), options.extra["plan_summary"])
    limited = [n for n in plan["nodes"] if n["reason"] == "resource limit"]
    assert limited and all(n["target"] == "cpu" for n in limited)
    assert all("memory budget is used up" in n["detail"] for n in limited)
    on_gpu = [p for p in plan["partitions"] if p["target"] == "gpu"]
    assert sum(p["memory_bytes"] for p in on_gpu) <= capacity
    assert all(p["memory_bytes"] > 0 for p in plan["partitions"])
    from hcompile.report import write_report

    write_report(tmp_path / "r.html", graph, plan)
    html = (tmp_path / "r.html").read_text()
    assert "memory MB" in html and "memory budget is used up" in html

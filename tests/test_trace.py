"""Chrome traces (``--profile``), ``--check``, ``--strict`` with fault injection, and the
run-time ``--shard-batch`` check, as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcompile.runtime.trace import Trace
from tests.conftest import hcompile_cli
from tests.runtime_models import BRANCH_PLACE, branch_model, compile_placed, diamond


def read_spans(path: Path) -> dict[str, list[dict]]:
    """Track name -> its complete ("X") events, from a Chrome trace file."""
    data = json.loads(path.read_text())
    names = {e["tid"]: e["args"]["name"] for e in data["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    tracks: dict[str, list[dict]] = {name: [] for name in names.values()}
    for e in data["traceEvents"]:
        if e["ph"] == "X":
            assert {"name", "ts", "dur", "pid", "tid"} <= e.keys()
            tracks[names[e["tid"]]].append(e)
    return tracks


def test_trace_has_a_track_per_device_and_link(tmp_path):
    import hcompile

    exe = hcompile.load(diamond(sleep=0.05))
    for _ in range(5):  # on a loaded machine a device thread may start late; retry then
        trace = Trace()
        exe.run({"x": np.zeros(4, np.float32)}, trace=trace)
        tracks = read_spans(trace.save(tmp_path / "t.json"))
        (cpu0, _), (fpga,) = tracks["cpu"], tracks["fpga"]
        if cpu0["ts"] < fpga["ts"] + fpga["dur"] and fpga["ts"] < cpu0["ts"] + cpu0["dur"]:
            break
    assert list(tracks) == ["cpu", "fpga", "link cpu->fpga", "link fpga->cpu"]
    assert [e["name"] for e in tracks["cpu"]] == ["partition 0", "partition 2"]
    assert [e["name"] for e in tracks["fpga"]] == ["partition 1"]
    assert [e["name"] for e in tracks["link cpu->fpga"]] == ["copy x"]
    assert tracks["link fpga->cpu"][0]["args"]["bytes"] == 16
    assert cpu0["ts"] < fpga["ts"] + fpga["dur"] and fpga["ts"] < cpu0["ts"] + cpu0["dur"]


@pytest.fixture(scope="module")
def branch_hca(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("branch") / "branch.hca"
    compile_placed(branch_model(n=64, depth=2, batch=4), BRANCH_PLACE).save(path)
    return path


def test_cli_profile_check_and_strict(branch_hca, tmp_path, isolated_cache):
    trace = tmp_path / "trace.json"
    result = hcompile_cli("run", str(branch_hca), "--random", "--profile", str(trace),
                          "--check")
    assert result.returncode == 0, result.stderr
    tracks = read_spans(trace)
    partitions = sorted(e["name"] for t in ("cpu", "fpga") for e in tracks.get(t, []))
    assert partitions == ["partition 0", "partition 1", "partition 2"]
    assert "link cpu->fpga" in tracks and "link fpga->cpu" in tracks
    assert "max abs err" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("#1 "))
    assert "fpga" in row and float(row.split()[-2]) < 1e-5

    # with the FPGA failing: one warning, the trace (replaced) shows every partition on the CPU
    faulty = {"HCOMPILE_FAULT_INJECT": "fpga"}
    ok = hcompile_cli("run", str(branch_hca), "--random", "--profile", str(trace), env=faulty)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.count("runs on its CPU fallback") == 1
    tracks = read_spans(trace)
    assert sorted(e["name"] for e in tracks["cpu"]) == ["partition 0", "partition 1",
                                                         "partition 2"]
    assert "fpga" not in tracks
    # --strict: exit 2; and a file that is not a trace is never overwritten
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    strict = hcompile_cli("run", str(branch_hca), "--random", "--strict", env=faulty)
    assert strict.returncode == 2
    assert "injected fault" in strict.stderr and "Traceback" not in strict.stderr
    result = hcompile_cli("run", str(branch_hca), "--random", "--profile", str(other))
    assert result.returncode == 2 and other.read_text() == "mine"


def test_cli_shard_batch_at_run_time(branch_hca, zoo_path, tmp_path, isolated_cache):
    from hcompile.sharding_compile import compile_sharded

    result = hcompile_cli("run", str(branch_hca), "--random", "--shard-batch", "auto")
    assert result.returncode == 2 and "not batch-sharded" in result.stderr
    sharded = compile_sharded(zoo_path("mlp"), "cpu=0.5,fpga=0.5", input_shapes={"x": (4, 784)})
    path = sharded.save(tmp_path / "s.hca")
    result = hcompile_cli("run", str(path), "--random", "--shard-batch", "cpu=1,fpga=1",
                          "--profile", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr
    assert "y: float32[4, 10]" in result.stdout
    tracks = read_spans(tmp_path / "s.json")
    assert [e["name"] for e in tracks["cpu"]] == ["partition 0"]
    result = hcompile_cli("run", str(path), "--random", "--shard-batch", "cpu=0.25,fpga=0.75")
    assert result.returncode == 2 and "sharded as cpu 2/4 rows, fpga 2/4 rows" in result.stderr

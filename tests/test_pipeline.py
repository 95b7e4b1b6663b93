"""``Executor.run_many``: requests in flight at once, results in order, equal to ``run``."""

from __future__ import annotations

import numpy as np
import pytest

import hcompile
from hcompile.errors import InputError
from hcompile.runtime.trace import Trace
from tests.runtime_models import (
    BRANCH_PLACE,
    branch_model,
    compile_placed,
    overlapping,
    sleep_artifact,
)


def two_stages(sleep: float = 0.03):
    """A chain: stage 1 on the CPU, stage 2 on the FPGA (nothing overlaps within a request)."""
    return sleep_artifact([("cpu", ["x"], ["a"], sleep, 1.0), ("fpga", ["a"], ["y"], sleep, 1.0)])


def test_run_many_pipelines_a_chain_over_two_devices():
    exe = hcompile.load(two_stages())
    xs = [np.full(4, i, np.float32) for i in range(6)]
    trace = Trace()
    outs = list(exe.run_many(xs_ := ({"x": x} for x in xs), trace=trace))
    assert xs_ is not None
    assert [o["y"].tolist() for o in outs] == [(x + 2).tolist() for x in xs]
    stage = {(s.args["request"], s.name): s for s in trace.spans if s.name.startswith("part")}
    assert sorted({r for r, _ in stage}) == list(range(6))
    # while the FPGA works on request n, the CPU works on request n + 1
    overlaps = [n for n in range(5)
                if overlapping(stage[(n, "partition 1")], stage[(n + 1, "partition 0")])]
    assert overlaps
    for n in range(6):  # within a request, stage 2 waits for stage 1
        assert stage[(n, "partition 1")].start >= stage[(n, "partition 0")].end


@pytest.mark.parametrize("depth", [1, 3, None])
def test_run_many_equals_run_on_real_code(depth, isolated_cache):
    exe = hcompile.load(compile_placed(branch_model(n=32, depth=2, batch=2), BRANCH_PLACE))
    rng = np.random.default_rng(depth or 0)
    xs = [rng.standard_normal((2, 32)).astype(np.float32) for _ in range(12)]
    expected = [exe.run({"x": x})["y"] for x in xs]
    got = [o["y"] for o in exe.run_many(({"x": x} for x in xs), depth=depth)]
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]


def test_run_many_stops_at_a_bad_request():
    exe = hcompile.load(two_stages(sleep=0.0))
    requests = [{"x": np.zeros(4, np.float32)}, {"x": np.zeros(3, np.float32)}]
    it = exe.run_many(requests, depth=4)
    with pytest.raises(InputError, match="shape"):
        list(it)
    assert list(exe.run_many([])) == []


def test_compare_throughput_reports_both_rates():
    from hcompile.runtime.pipeline import compare_throughput

    exe = hcompile.load(two_stages(sleep=0.01))
    result = compare_throughput(exe, [{"x": np.zeros(4, np.float32)}] * 6, depth=2)
    assert result.requests == 6 and result.sequential_rps > 0 and result.pipelined_rps > 0
    assert "req/s" in result.describe() and "depth 2" in result.describe()

"""hcompile.simulate: the event simulation every plan is scored by (numbers checked by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.passes.partition import Link, Problem, Tensor
from hcompile.simulate import simulate

INF = np.inf
DISPATCH = (1e-5, 2e-5, 3e-5)
LINKS = (None, Link(1e-5, 1e9), Link(2e-5, 5e8))  # gpu: 10 us + 1 ns/B; fpga: 20 us + 2 ns/B


def problem(times: list[list[float]], tensors: list[Tensor]) -> Problem:
    names = tuple(f"n{i}" for i in range(len(times)))
    return Problem(("cpu", "gpu", "fpga"), names, np.array(times, float), tuple(tensors),
                   DISPATCH, LINKS)


def chain3() -> Problem:
    """x -> n0 -> a -> n1 -> b -> n2 -> y, 1000-byte tensors."""
    return problem([[1e-3, 1e-4, 2e-4]] * 3, [
        Tensor("x", -1, (0,), 1000.0), Tensor("a", 0, (1,), 1000.0),
        Tensor("b", 1, (2,), 1000.0), Tensor("y", 2, (), 1000.0, output=True)])


def test_one_partition_on_the_host_is_dispatch_plus_node_times():
    result = simulate(chain3(), [0, 0, 0], [[0, 1, 2]])
    assert result.latency == pytest.approx(1e-5 + 3e-3)
    assert result.copies == []
    assert result.busy[0] == pytest.approx(1e-5 + 3e-3)


def test_a_chain_across_devices_pays_each_copy_once():
    # n0 on cpu, n1 on gpu, n2 on cpu: copy a up (host->gpu), b down (gpu->host).
    result = simulate(chain3(), [0, 1, 0], [[0], [1], [2]])
    copy = 1e-5 + 1000 / 1e9
    expected = (1e-5 + 1e-3) + copy + (2e-5 + 1e-4) + copy + (1e-5 + 1e-3)
    assert result.latency == pytest.approx(expected)
    assert [(c.src, c.dst, c.link) for c in result.copies] == [(0, 1, (1, "down")),
                                                               (1, 0, (1, "up"))]


def test_device_to_device_copies_are_staged_through_the_host_and_shared():
    # n0 on gpu produces a, read by n1 on fpga and n2 on cpu: one gpu->host copy serves both.
    p = problem([[1e-3, 1e-4, INF], [1e-3, INF, 1e-4], [1e-3, INF, INF]], [
        Tensor("x", -1, (0,), 1000.0), Tensor("a", 0, (1, 2), 1000.0),
        Tensor("b", 1, (), 10.0, output=True), Tensor("c", 2, (), 10.0, output=True)])
    result = simulate(p, [1, 2, 0], [[0], [1], [2]])
    hops = [(c.src, c.dst) for c in result.copies if c.tensor == 1]
    assert hops == [(1, 0), (0, 2)]
    up_end = next(c.end for c in result.copies if c.tensor == 1 and c.dst == 0)
    n0_end = result.spans[0][1]
    assert up_end == pytest.approx(n0_end + 1e-5 + 1e-6)
    assert result.spans[1][0] == pytest.approx(up_end + 2e-5 + 2e-6)  # fpga waits for hop 2
    assert result.spans[2][0] == pytest.approx(up_end)  # the cpu reads the staged copy


def test_independent_partitions_on_two_devices_overlap():
    # x feeds n0 (gpu) and n1 (fpga); n2 on cpu joins them.
    p = problem([[1e-2, 1e-3, INF], [1e-2, INF, 1e-3], [1e-5, INF, INF]], [
        Tensor("x", -1, (0, 1), 100.0), Tensor("a", 0, (2,), 100.0),
        Tensor("b", 1, (2,), 100.0), Tensor("y", 2, (), 100.0, output=True)])
    result = simulate(p, [1, 2, 0], [[0], [1], [2]])
    (s0, e0), (s1, e1) = result.spans[0], result.spans[1]
    assert s0 < e1 and s1 < e0  # the two device partitions run at the same time
    assert result.latency < (e0 - s0) + (e1 - s1) + 1e-3


def test_copies_on_one_link_queue_in_order():
    # Two tensors of 1 MB leave the gpu at the same time: the second waits for the first.
    p = problem([[1e-3, 1e-4, INF], [1e-3, INF, INF], [1e-3, INF, INF]], [
        Tensor("x", -1, (0,), 10.0), Tensor("a", 0, (1,), 1e6), Tensor("b", 0, (2,), 1e6),
        Tensor("c", 1, (), 1.0, output=True), Tensor("d", 2, (), 1.0, output=True)])
    result = simulate(p, [1, 0, 0], [[0], [1], [2]])
    ups = sorted((c.start, c.end) for c in result.copies if c.link == (1, "up"))
    assert len(ups) == 2
    assert ups[1][0] == pytest.approx(ups[0][1])


def test_a_partition_starts_only_when_all_its_inputs_are_present():
    # n1 (cpu) and n2 (cpu, reads the gpu's output) in one partition: n1 waits for the copy.
    p = problem([[1e-3, 1e-4, INF], [1e-3, INF, INF], [1e-3, INF, INF]], [
        Tensor("x", -1, (0, 1), 10.0), Tensor("a", 0, (2,), 10.0),
        Tensor("b", 1, (2,), 10.0), Tensor("y", 2, (), 1.0, output=True)])
    merged = simulate(p, [1, 0, 0], [[0], [1, 2]])
    split = simulate(p, [1, 0, 0], [[1], [0], [2]])
    assert merged.spans[1][0] >= merged.spans[0][1]
    assert split.latency < merged.latency  # n1 overlaps with the gpu when cut off


def test_lowest_partition_id_runs_first_when_both_are_ready():
    p = problem([[1e-3, INF, INF], [2e-3, INF, INF]], [
        Tensor("x", -1, (0, 1), 10.0), Tensor("a", 0, (), 1.0, output=True),
        Tensor("b", 1, (), 1.0, output=True)])
    result = simulate(p, [0, 0], [[1], [0]])
    assert result.spans[0][0] == 0.0
    assert result.spans[1][0] == pytest.approx(result.spans[0][1])


def test_partitions_in_a_cycle_are_rejected():
    with pytest.raises(ValueError, match="cycle"):
        # n2 depends on n1 depends on n0, but n0 and n2 share a partition.
        simulate(chain3(), [0, 1, 0], [[0, 2], [1]])

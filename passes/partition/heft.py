"""``heft``: Heterogeneous Earliest Finish Time list scheduling.

Topcuoglu, Hariri and Wu, "Performance-effective and low-complexity task scheduling for
heterogeneous computing", IEEE TPDS 13(3), 2002. Nodes are taken by decreasing upward rank
(mean time over the devices that can run them plus the longest mean-cost path to the
end); each goes to the device where it finishes earliest, inserted into the first idle gap
of that device's timeline that is long enough. Independent branches therefore overlap on
different devices. Copies are charged per input edge; starting a partition (no input
producer on the device) costs the device's dispatch overhead; a model output produced away
from the host pays its copy back. Devices whose resource budget would overflow are skipped.
"""

from __future__ import annotations

import bisect

import numpy as np

from hcompile.passes.partition.groups import Solution, evaluate, fit_budget
from hcompile.passes.partition.problem import HOST, Problem


def upward_ranks(problem: Problem) -> list[float]:
    p = problem
    ndev = len(p.devices)
    mean_time = [float(np.mean([p.time[v, d] for d in p.allowed[v]])) for v in range(p.n)]
    mean_copy = [float(p.xfer[t].sum()) / (ndev * ndev) for t in range(len(p.tensors))]
    edge_copy: dict[tuple[int, int], float] = {}
    for t, tensor in enumerate(p.tensors):
        for c in tensor.consumers:
            if tensor.producer >= 0:
                key = (tensor.producer, c)
                edge_copy[key] = edge_copy.get(key, 0.0) + mean_copy[t]
    rank = [0.0] * p.n
    for v in reversed(range(p.n)):
        tail = max((edge_copy.get((v, s), 0.0) + rank[s] for s in p.succs[v]), default=0.0)
        rank[v] = mean_time[v] + tail
    return rank


def _earliest_slot(starts: list[float], ends: list[float], ready: float,
                   length: float) -> float:
    """Start of the first idle gap of ``length`` at or after ``ready`` (intervals sorted,
    disjoint, so ``ends`` is sorted too)."""
    j = bisect.bisect_right(ends, ready)
    start = ready
    for b_start, b_end in zip(starts[j:], ends[j:], strict=True):
        if start + length <= b_start:
            return start
        start = max(start, b_end)
    return start


def placement(problem: Problem) -> list[int]:
    p = problem
    rank = upward_ranks(p)
    # Ranks decrease along every edge (ties keep the topological index order).
    order = sorted(range(p.n), key=lambda v: (-rank[v], v))
    assign = [HOST] * p.n
    finish = [0.0] * p.n
    starts: list[list[float]] = [[] for _ in p.devices]
    ends: list[list[float]] = [[] for _ in p.devices]
    used = {d: np.zeros_like(b) for d, b in p.budgets.items()}
    for v in order:
        best = (float("inf"), p.allowed[v][0], 0.0, 0.0)
        for d in p.allowed[v]:
            if d in p.budgets and np.any(used[d] + p.resources[d][v] > p.budgets[d] + 1e-9):
                continue
            ready = 0.0
            for t in p.inputs[v]:
                prod = p.tensors[t].producer
                src_time = 0.0 if prod < 0 else finish[prod]
                src_dev = HOST if prod < 0 else assign[prod]
                ready = max(ready, src_time + p.xfer[t, src_dev, d])
            length = float(p.time[v, d])
            if not any(assign[q] == d for q in p.preds[v]):
                length += p.dispatch[d]
            start = _earliest_slot(starts[d], ends[d], ready, length)
            end = start + length
            back = max((p.xfer[t, d, HOST] for t in p.outputs[v] if p.tensors[t].output),
                       default=0.0)
            if end + back < best[0]:
                best = (end + back, d, start, length)
        _, d, start, length = best
        assign[v], finish[v] = d, start + length
        k = bisect.bisect_left(starts[d], start)
        starts[d].insert(k, start)
        ends[d].insert(k, finish[v])
        if d in used:
            used[d] += p.resources[d][v]
    return assign


def solve(problem: Problem) -> Solution:
    return evaluate(problem, fit_budget(problem, placement(problem))[0], "heft")

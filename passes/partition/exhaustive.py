"""``exhaustive``: branch and bound over every placement; exact for the simulated latency.

Nodes are placed in topological order, each on its devices in order of earliest finish.
A partial placement is pruned when a lower bound on any completion's simulated latency
reaches the best complete one found so far. The bound is the longer of

* the critical path: a placed node finishes no earlier than its inputs' producers plus the
  copies between their devices, plus its own time (plus a partition start when no producer
  is on its device), and then its successors need at least their fastest times; model
  outputs away from the host add their copy back;
* the busiest device: the time of the nodes placed on it;

both hold for every schedule the simulator can produce (link queues and partition merging
only delay), so pruning never loses the optimum. Leaves are scored by the simulator on the
partitions ``make_groups`` forms. The search starts from the best heuristic plan and stops
after ``max_seconds`` (the result then says ``optimal: false``).
"""

from __future__ import annotations

import time

import numpy as np

from hcompile.passes.partition import greedy, heft, single
from hcompile.passes.partition.groups import Solution, evaluate
from hcompile.passes.partition.problem import HOST, Problem

MAX_SECONDS = 20.0


def _tails(problem: Problem) -> list[float]:
    """Longest path of fastest times from each node's successors to the end."""
    p = problem
    fastest = [min(float(p.time[v, d]) for d in p.allowed[v]) for v in range(p.n)]
    tail = [0.0] * p.n
    for v in reversed(range(p.n)):
        tail[v] = max((fastest[s] + tail[s] for s in p.succs[v]), default=0.0)
    return tail


def solve(problem: Problem, max_seconds: float = MAX_SECONDS,
          incumbent: Solution | None = None) -> Solution:
    p = problem
    if incumbent is None:
        starts = [single.solve(p), greedy.solve(p), heft.solve(p)]
        incumbent = min(starts, key=lambda s: s.latency)
    best = Solution(list(incumbent.assign), incumbent.groups, incumbent.latency, "exhaustive")
    tail = _tails(p)
    deadline = time.perf_counter() + max_seconds
    ndev = len(p.devices)
    assign = [HOST] * p.n
    finish = [0.0] * p.n
    load = [0.0] * ndev
    used = {d: np.zeros_like(b) for d, b in p.budgets.items()}
    stats = {"leaves": 0, "nodes": 0, "timed_out": False}

    def bound_node(v: int, d: int) -> float:
        ready = 0.0
        for t in p.inputs[v]:
            prod = p.tensors[t].producer
            src_time, src = (0.0, HOST) if prod < 0 else (finish[prod], assign[prod])
            ready = max(ready, src_time + p.xfer[t, src, d])
        start = ready if any(assign[q] == d for q in p.preds[v]) else ready + p.dispatch[d]
        return start + float(p.time[v, d])

    def search(v: int, path_bound: float) -> None:
        nonlocal best
        stats["nodes"] += 1
        if stats["nodes"] % 256 == 0 and time.perf_counter() > deadline:
            stats["timed_out"] = True
        if stats["timed_out"]:
            return
        if v == p.n:
            stats["leaves"] += 1
            found = evaluate(p, assign, "exhaustive")
            if found.latency < best.latency - 1e-15:
                best = found
            return
        options = []
        for d in p.allowed[v]:
            if d in used and np.any(used[d] + p.resources[d][v] > p.budgets[d] + 1e-9):
                continue
            end = bound_node(v, d)
            back = max((p.xfer[t, d, HOST] for t in p.outputs[v] if p.tensors[t].output),
                       default=0.0)
            bound = max(path_bound, end + max(tail[v], back), load[d] + float(p.time[v, d]))
            if bound < best.latency - 1e-15:
                options.append((end, d, bound))
        for end, d, bound in sorted(options):
            if bound >= best.latency - 1e-15:
                continue
            assign[v], finish[v] = d, end
            load[d] += float(p.time[v, d])
            if d in used:
                used[d] += p.resources[d][v]
            search(v + 1, bound)
            load[d] -= float(p.time[v, d])
            if d in used:
                used[d] -= p.resources[d][v]
        assign[v] = HOST

    search(0, 0.0)
    best.partitioner = "exhaustive"
    best.notes.update(optimal=not stats["timed_out"], leaves=stats["leaves"],
                      search_nodes=stats["nodes"])
    return best

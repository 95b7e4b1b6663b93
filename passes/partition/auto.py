"""``auto``: exact when the graph is small, else the best heuristic improved by local search.

Small graphs (at most ``EXACT_NODES`` nodes that have a choice of device, at most
``EXACT_GRAPH`` nodes in all) are solved by ``exhaustive`` within ``EXACT_SECONDS``.
Larger ones run ``single``, ``greedy``, ``dp`` and ``heft``, keep the plan the simulator
scores fastest, then try moving whole partitions, and single nodes at partition
boundaries, to other devices while that lowers the simulated latency (first improvement,
until ``TOTAL_SECONDS`` after the start, at least ``SEARCH_SECONDS``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from hcompile.passes.partition import dp, exhaustive, greedy, heft, single
from hcompile.passes.partition.groups import Solution, evaluate
from hcompile.passes.partition.problem import Problem

EXACT_NODES = 12
EXACT_GRAPH = 64
EXACT_SECONDS = 3.0
SEARCH_SECONDS = 0.05
TOTAL_SECONDS = 0.8


def solve(problem: Problem) -> Solution:
    start = time.perf_counter()
    choices = sum(1 for allowed in problem.allowed if len(allowed) > 1)
    candidates = [single.solve(problem), greedy.solve(problem), dp.solve(problem),
                  heft.solve(problem)]
    best = min(candidates, key=lambda s: s.latency)
    if choices == 0:
        chosen = best
    elif choices <= EXACT_NODES and problem.n <= EXACT_GRAPH:
        chosen = exhaustive.solve(problem, max_seconds=EXACT_SECONDS, incumbent=best)
    else:
        deadline = max(start + TOTAL_SECONDS, time.perf_counter() + SEARCH_SECONDS)
        chosen = improve(problem, best, deadline)
    result = Solution(chosen.assign, chosen.groups, chosen.latency, "auto", dict(chosen.notes))
    result.notes["auto_start"] = best.partitioner
    result.notes["candidates_ms"] = {s.partitioner: s.latency * 1e3 for s in candidates}
    return result


def improve(problem: Problem, start: Solution, deadline: float) -> Solution:
    """First-improvement local search over partition moves and boundary-node moves."""
    best = start
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for assign in _neighbours(problem, best):
            if time.perf_counter() > deadline:
                break
            if not problem.fits(assign):
                continue
            trial = evaluate(problem, assign, best.partitioner, refine=False)
            if trial.latency < best.latency - 1e-12:
                best = evaluate(problem, assign, best.partitioner)
                best.notes["local_search"] = True
                improved = True
                break
    return best


def _neighbours(problem: Problem, solution: Solution) -> Iterator[list[int]]:
    assign = solution.assign
    for group in solution.groups:
        here = assign[group[0]]
        for d in range(len(problem.devices)):
            if d == here:
                continue
            moved = list(assign)
            changed = False
            for v in group:
                if d in problem.allowed[v]:
                    moved[v] = d
                    changed = True
            if changed:
                yield moved
    for group in solution.groups:
        for v in {group[0], group[-1]}:
            for d in problem.allowed[v]:
                if d != assign[v]:
                    moved = list(assign)
                    moved[v] = d
                    yield moved

"""From a placement (node -> device) to partitions, and the score every partitioner gets.

Partitions are runs of one device in a topological order chosen to keep each device's
nodes together: the order takes ready nodes of the current device while there are any, so
adjacent nodes on one device merge, and because partitions are consecutive runs of one
topological order they can never form a cycle. Merging can also hurt: a partition that
waits for a copy from another device delays the nodes before that copy, and its outputs
appear only when it ends. So each partition is then split where a node sends to or receives
from another device, whenever the simulator says the split is faster.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

import numpy as np

from hcompile.passes.partition.problem import Problem
from hcompile.simulate import SimResult, simulate

#: Candidate cuts simulated per placement (each costs one simulation).
MAX_SPLIT_TRIES = 12


@dataclass
class Solution:
    """A placement, its partitions and its simulated latency (seconds)."""

    assign: list[int]
    groups: list[list[int]]
    latency: float
    partitioner: str = ""
    notes: dict[str, object] = field(default_factory=dict)


def run_order(problem: Problem, assign: list[int]) -> list[int]:
    """A topological order that stays on one device as long as it can."""
    p = problem
    indeg = [len(ps) for ps in p.preds]
    ready: list[list[int]] = [[] for _ in p.devices]
    for v in range(p.n):
        if indeg[v] == 0:
            heapq.heappush(ready[assign[v]], v)
    order: list[int] = []
    current = assign[0] if p.n else 0
    while len(order) < p.n:
        if not ready[current]:
            current = min((d for d in range(len(ready)) if ready[d]), key=lambda d: ready[d][0])
        v = heapq.heappop(ready[current])
        order.append(v)
        for s in p.succs[v]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(ready[assign[s]], s)
    return order


def node_schedule(problem: Problem, assign: list[int]) -> tuple[list[float], list[float]]:
    """Start and finish of every node if each node were its own task (no partitions, no
    link queues): nodes in topological order, each in the first idle gap of its device."""
    p = problem
    start, finish = [0.0] * p.n, [0.0] * p.n
    starts: list[list[float]] = [[] for _ in p.devices]
    ends: list[list[float]] = [[] for _ in p.devices]
    for v in range(p.n):
        d = assign[v]
        ready = 0.0
        for t in p.inputs[v]:
            prod = p.tensors[t].producer
            if prod < 0:
                ready = max(ready, float(p.xfer[t, 0, d]))
            else:
                ready = max(ready, finish[prod] + float(p.xfer[t, assign[prod], d]))
        length = float(p.time[v, d])
        j = bisect.bisect_right(ends[d], ready)
        at = ready
        for b_start, b_end in zip(starts[d][j:], ends[d][j:], strict=True):
            if at + length <= b_start:
                break
            at = max(at, b_end)
        start[v], finish[v] = at, at + length
        k = bisect.bisect_left(starts[d], at)
        starts[d].insert(k, at)
        ends[d].insert(k, at + length)
    return start, finish


def timed_runs(problem: Problem, assign: list[int]) -> list[list[int]]:
    """Runs of one device in order of the node schedule's start times, cut where a run would
    otherwise wait for a copy, or hold back a copy another device waits for, by more than
    the cost of starting a partition."""
    p = problem
    start, finish = node_schedule(p, assign)
    order = sorted(range(p.n), key=lambda v: (start[v], v))
    groups: list[list[int]] = []
    deadline = end = 0.0
    for v in order:
        d = assign[v]
        same = bool(groups) and assign[groups[-1][0]] == d
        if same and (start[v] > end + p.dispatch[d] or finish[v] > deadline + p.dispatch[d]):
            same = False
        if same:
            groups[-1].append(v)
        else:
            groups.append([v])
            deadline = float("inf")
        end = finish[v]
        for t in p.outputs[v]:
            for s in p.tensors[t].consumers:
                if assign[s] != d:
                    deadline = min(deadline, start[s] - float(p.xfer[t, d, assign[s]]))
    return groups


def runs(order: list[int], assign: list[int]) -> list[list[int]]:
    groups: list[list[int]] = []
    for v in order:
        if groups and assign[groups[-1][0]] == assign[v]:
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups


def split_candidates(problem: Problem, assign: list[int], groups: list[list[int]],
                     sim: SimResult) -> list[tuple[float, int, int]]:
    """(estimated gain, group, position) of cuts that may let work overlap with copies.

    A cut before a node that receives from another device helps when the partition waited
    for that copy: the nodes before the cut could have run meanwhile. A cut after a node that
    sends to another device helps when the receiver waited for the partition to end.
    """
    p = problem
    group_of = {v: g for g, group in enumerate(groups) for v in group}
    found = []
    for g, group in enumerate(groups):
        if len(group) < 2:
            continue
        d = assign[group[0]]
        start, end = sim.spans[g]
        times = [float(p.time[v, d]) for v in group]
        before = 0.0  # latest arrival among the inputs of the nodes before the cut
        done = start + p.dispatch[d]
        for i in range(1, len(group) + 1):
            v = group[i - 1]
            for t in p.inputs[v]:
                prod = p.tensors[t].producer
                if prod < 0 or group_of[prod] != g:
                    before = max(before, sim.arrivals.get((t, d), 0.0))
            done += times[i - 1]
            if i == len(group):
                break
            later = [sim.arrivals.get((t, d), 0.0) for t in p.inputs[group[i]]
                     if p.tensors[t].producer < 0 or group_of[p.tensors[t].producer] != g]
            if later and max(later) >= start - 1e-12 and before < start:
                found.append((min(start - before, done - start), g, i))
            sends = [s for s in p.succs[v] if assign[s] != d]
            waits = [sim.spans[group_of[s]][0] for s in sends]
            if waits and min(waits) >= end - 1e-12:
                found.append((end - done, g, i))
    return sorted((c for c in found if c[0] > 0), reverse=True)


def make_groups(problem: Problem, assign: list[int], refine: bool = True
                ) -> tuple[list[list[int]], SimResult]:
    """Partitions for ``assign`` and their simulation.

    The better of the two groupings (``run_order`` runs, ``timed_runs``); with ``refine``,
    then at most ``MAX_SPLIT_TRIES`` candidate cuts are simulated, best estimate first,
    keeping each cut that lowers the latency.
    """
    groups = runs(run_order(problem, assign), assign)
    best = simulate(problem, assign, groups, record=False)
    if len(set(assign)) < 2:
        return groups, best
    timed = timed_runs(problem, assign)
    if timed != groups:
        result = simulate(problem, assign, timed, record=False)
        if result.latency < best.latency:
            groups, best = timed, result
    if not refine:
        return groups, best
    tries = 0
    while tries < MAX_SPLIT_TRIES:
        improved = False
        for _, g, i in split_candidates(problem, assign, groups, best)[:MAX_SPLIT_TRIES - tries]:
            tries += 1
            trial = [*groups[:g], groups[g][:i], groups[g][i:], *groups[g + 1:]]
            result = simulate(problem, assign, trial, record=False)
            if result.latency < best.latency - 1e-12:
                groups, best, improved = trial, result, True
                break
        if not improved:
            break
    return groups, best


def evaluate(problem: Problem, assign: list[int], name: str = "",
             refine: bool = True) -> Solution:
    groups, result = make_groups(problem, assign, refine)
    return Solution(list(assign), groups, result.latency, name)


def fit_budget(problem: Problem, assign: list[int]) -> tuple[list[int], list[int]]:
    """Move nodes off over-budget devices until everything fits.

    Evicts, one at a time, the node whose move costs least time per unit of the most
    over-used resource it frees, to its fastest other device. Returns the new placement and
    the evicted nodes (reason "resource limit").
    """
    p = problem
    assign = list(assign)
    evicted: list[int] = []
    for dev, budget in p.budgets.items():
        res = p.resources[dev]
        on = np.array([a == dev for a in assign])
        used = res[on].sum(axis=0) if on.any() else np.zeros_like(budget)
        if np.all(used <= budget + 1e-9):
            continue
        others = p.time.copy()
        others[:, dev] = np.inf
        alt = others.argmin(axis=1)
        loss = others[np.arange(p.n), alt] - p.time[:, dev]
        movable = np.isfinite(loss)
        while np.any(used > budget + 1e-9):
            worst = int(np.argmax((used - budget) / np.maximum(budget, 1e-9)))
            candidates = on & movable & (res[:, worst] > 0)
            if not candidates.any():
                raise ValueError(f"device {p.devices[dev]}: the nodes pinned there do not fit "
                                 "its resource budget")
            score = np.where(candidates, loss / np.maximum(res[:, worst], 1e-12), np.inf)
            v = int(np.argmin(score))
            assign[v] = int(alt[v])
            on[v] = False
            used = used - res[v]
            evicted.append(v)
    return assign, evicted

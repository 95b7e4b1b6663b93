"""``greedy``: each node, in topological order, to the device where it finishes cheapest.

A node's price on a device is its time there plus copying its inputs from where they are
(once per tensor and device), plus starting a partition when none of its inputs' producers
is on that device. Devices whose resource budget the node would overflow are skipped.
Then adjacent nodes on one device merge into partitions (``make_groups``).
"""

from __future__ import annotations

import numpy as np

from hcompile.passes.partition.groups import Solution, evaluate, fit_budget
from hcompile.passes.partition.problem import HOST, Problem


def placement(problem: Problem) -> list[int]:
    p = problem
    assign = [HOST] * p.n
    used = {d: np.zeros_like(b) for d, b in p.budgets.items()}
    for v in range(p.n):
        best_d, best_cost = p.allowed[v][0], float("inf")
        for d in p.allowed[v]:
            if d in p.budgets and np.any(used[d] + p.resources[d][v] > p.budgets[d] + 1e-9):
                continue
            price = float(p.time[v, d])
            for t in p.inputs[v]:
                prod = p.tensors[t].producer
                price += p.xfer[t, HOST if prod < 0 else assign[prod], d]
            if not any(assign[q] == d for q in p.preds[v]):
                price += p.dispatch[d]
            if price < best_cost:
                best_d, best_cost = d, price
        assign[v] = best_d
        if best_d in used:
            used[best_d] += p.resources[best_d][v]
    return assign


def solve(problem: Problem) -> Solution:
    return evaluate(problem, fit_budget(problem, placement(problem))[0], "greedy")

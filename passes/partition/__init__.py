"""Partitioners: place every node on a device so that the simulated latency is smallest.

All of them solve the same :class:`Problem` (built from the IR by ``hcompile.passes.place``,
or synthetic in tests and benchmarks) and are scored by the same simulator
(:func:`hcompile.simulate.simulate`) on the partitions :func:`make_groups` forms:

* ``single``: everything on one device (the fastest; nodes it cannot run go to their
  fastest other device);
* ``greedy``: in topological order, each node to the device where it plus the copies of its
  inputs cost least;
* ``dp``: dynamic programming over a topological order; exact on chains, and exact for
  the serial cost (no overlap between devices) of any graph whose live-tensor frontier
  fits its state budget;
* ``heft``: Heterogeneous Earliest Finish Time list scheduling (Topcuoglu et al., 2002):
  overlaps independent branches on different devices;
* ``exhaustive``: branch and bound over every placement, exact for the simulator's
  latency (small graphs);
* ``auto``: ``exhaustive`` when the graph is small, else the best of the others improved
  by local search.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hcompile.passes.partition import auto, dp, exhaustive, greedy, heft, single
from hcompile.passes.partition.groups import Solution, evaluate, fit_budget, make_groups
from hcompile.passes.partition.problem import HOST, Link, Problem, Tensor

Partitioner = Callable[[Problem], Solution]

PARTITIONERS: dict[str, Partitioner] = {
    "auto": auto.solve,
    "single": single.solve,
    "greedy": greedy.solve,
    "dp": dp.solve,
    "heft": heft.solve,
    "exhaustive": exhaustive.solve,
}


def solve(problem: Problem, name: str = "auto") -> Solution:
    """Run partitioner ``name``; the solution's ``notes["solve_ms"]`` says how long it took."""
    if name not in PARTITIONERS:
        raise KeyError(name)
    start = time.perf_counter()
    solution = PARTITIONERS[name](problem)
    solution.notes["solve_ms"] = (time.perf_counter() - start) * 1e3
    return solution


__all__ = ["HOST", "PARTITIONERS", "Link", "Problem", "Solution", "Tensor", "evaluate",
           "fit_budget", "make_groups", "solve"]

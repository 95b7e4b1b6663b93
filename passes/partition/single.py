"""``single``: the whole graph on one device.

Nodes the device cannot run go to their fastest allowed device; on a device with a resource
budget, what does not fit is evicted (see ``fit_budget``). ``solve`` tries every device and
keeps the fastest; ``on_device`` gives one device's plan (``single_device_ms`` in the plan).
"""

from __future__ import annotations

from hcompile.passes.partition.groups import Solution, evaluate, fit_budget
from hcompile.passes.partition.problem import Problem


def fastest(problem: Problem, v: int) -> int:
    """The device where node ``v`` alone runs fastest."""
    return min(problem.allowed[v], key=lambda d: float(problem.time[v, d]))


def placement(problem: Problem, device: int) -> list[int]:
    assign = [device if device in problem.allowed[v] else fastest(problem, v)
              for v in range(problem.n)]
    return fit_budget(problem, assign)[0]


def on_device(problem: Problem, device: int) -> Solution:
    return evaluate(problem, placement(problem, device), "single")


def solve(problem: Problem) -> Solution:
    used = sorted({d for allowed in problem.allowed for d in allowed})
    return min((on_device(problem, d) for d in used), key=lambda s: s.latency)

"""Device resources: what nodes need on a device, and the compile-time check that what was
placed there fits.

Four resources per device: DSP blocks, BRAM blocks and LUTs (FPGAs only, from the kernel
resource model in ``cost.fpga_resources``) and device memory (every device whose profile
has a capacity, ``DeviceProfile.memory_capacity``).

Memory is not additive the way FPGA fabric is: a device holds the weights of everything
placed on it plus, while a partition runs, that partition's live activations. So:

* the partitioners, which need an additive resource, charge each node its constant inputs
  plus every tensor it reads or writes (``node_memory``). Summed over a device's nodes this
  is at least the peak (every tensor is counted once per node touching it), so a placement
  that fits this budget also fits the check below: automatic placement never trips it;
* the check after placement (``check_placement``) uses the estimate itself: the weights of
  all nodes on the device plus the largest peak of live activations of one of its
  partitions (a liveness walk over the partition's node order, ``partition_memory``).
  TVM's memory planner reuses buffers, so this is an upper bound of what the code
  allocates, not a measurement.

Nodes the user forced onto a device (``--place``) go there even when they overflow it in
the partitioner; the check then fails the compile with a
:class:`~hcompile.errors.ResourceError` naming the partition, device, resource and
overshoot. Nodes placed by cost never overflow: the budget keeps them off.

Without ``cpu`` in ``--targets`` the CPU is still underneath: nodes that do not fit the
requested devices spill to it (``spill``, ``unspill``) and ``spill_warning`` says, once,
how far over the device the whole model would have been.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hcompile.errors import ResourceError
from hcompile.passes import cost
from hcompile.passes.partition import evaluate

if TYPE_CHECKING:
    from hcompile.devices import DeviceProfile, DeviceSet
    from hcompile.ir import Graph
    from hcompile.passes.partition import Problem, Solution

#: Resource columns of ``Problem.resources`` and ``Problem.budgets``.
RESOURCES = ("DSP blocks", "BRAM blocks", "LUTs", "memory")
#: Budget of a resource a device does not have a limit for (finite: the partitioners divide).
UNLIMITED = 1e30

SPILL_HINT = ("to keep them on {target}, describe a bigger device with --devices FILE.toml "
              "or use a smaller batch (--input-shape)")
HINT = ("use a smaller batch (--input-shape), let hcompile place the nodes (--targets "
        "cpu,<device> without --place for them), or describe the real device with "
        "--devices FILE.toml")


def node_memory(graph: Graph) -> np.ndarray:
    """Per node, the additive memory charge: its constants and every tensor it touches."""
    types = graph.tensor_types()
    return np.array([float(sum(types[t].nbytes for t in dict.fromkeys(
        [*(i for i in node.inputs if i), *(o for o in node.outputs if o)])))
        for node in graph.nodes], dtype=float)


def resource_table(graph: Graph, costs: dict[str, cost.OpCost],
                   profile: DeviceProfile) -> np.ndarray:
    """(nodes, 4): DSP, BRAM, LUT and memory bytes each node needs on ``profile``."""
    fpga = profile.fpga
    fabric = np.array([cost.fpga_resources(costs[n.name], fpga) if fpga else (0.0, 0.0, 0.0)
                       for n in graph.nodes], dtype=float).reshape(len(graph.nodes), 3)
    return np.column_stack([fabric, node_memory(graph)])


def budget(profile: DeviceProfile) -> np.ndarray:
    """(4,): the device's usable DSP, BRAM, LUT and memory bytes."""
    fabric = profile.fpga.budget() if profile.fpga else (UNLIMITED,) * 3
    capacity = profile.memory_capacity()
    return np.array([*fabric, UNLIMITED if capacity is None else capacity], dtype=float)


def partition_memory(graph: Graph, names: Sequence[str]) -> tuple[float, float]:
    """(weight bytes, peak live activation bytes) of the nodes ``names`` run in order."""
    types = graph.tensor_types()
    nodes = [graph.node(n) for n in names]
    inside = set(names)
    consumers = graph.consumers()
    last: dict[str, int] = {}
    for step, node in enumerate(nodes):
        for t in node.inputs:
            if t and t not in graph.constants:
                last[t] = step
    for node in nodes:  # outputs read outside the partition stay until it ends
        for t in node.outputs:
            if t and (t in graph.outputs or any(c.name not in inside
                                                for c in consumers.get(t, []))):
                last[t] = len(nodes)
    produced = {t for node in nodes for t in node.outputs if t}
    live = {t for t in last if t not in produced}  # the partition's inputs, there at start
    peak = 0.0
    for step, node in enumerate(nodes):
        live.update(t for t in node.outputs if t)
        peak = max(peak, sum(types[t].nbytes for t in live))
        live = {t for t in live if last.get(t, -1) > step}
    weights = {t for node in nodes for t in node.inputs if t in graph.constants}
    return float(sum(types[t].nbytes for t in weights)), float(peak)


def check_placement(graph: Graph, problem: Problem, solution: Solution,
                    devices: DeviceSet) -> list[float]:
    """Raise ResourceError when what a device holds exceeds it; returns each partition's
    memory estimate in bytes (weights + peak activations), in partition order."""
    names = problem.names
    memory = []
    for group in solution.groups:
        weights, activations = partition_memory(graph, [names[v] for v in group])
        memory.append(weights + activations)
    for d, target in enumerate(problem.devices):
        pids = [p for p, g in enumerate(solution.groups) if solution.assign[g[0]] == d]
        if pids:
            _check_device(graph, problem, solution, devices[target], target, pids)
    return memory


def _check_device(graph: Graph, problem: Problem, solution: Solution,
                  profile: DeviceProfile, target: str, pids: list[int]) -> None:
    nodes = [problem.names[v] for p in pids for v in solution.groups[p]]
    plural = len(pids) > 1
    where = (f"partition{'s' if plural else ''} {', '.join(f'p{p}' for p in pids)} "
             f"({target}: {profile.name}) need{'' if plural else 's'}")
    if profile.fpga is not None:
        costs = cost.node_costs(graph)
        used = np.array([cost.fpga_resources(costs[n], profile.fpga) for n in nodes]
                        ).reshape(len(nodes), 3).sum(axis=0)
        totals = (profile.fpga.dsp, profile.fpga.bram, profile.fpga.lut)
        for r, (need, limit) in enumerate(zip(used, profile.fpga.budget(), strict=True)):
            if need > limit + 1e-9:
                raise ResourceError(
                    f"{where} {_count(need)} {RESOURCES[r]}, the budget is "
                    f"{_count(limit)} ({profile.fpga.max_utilization:.0%} of "
                    f"{_count(totals[r])}): over by {need / limit - 1:.0%}", hint=HINT)
    capacity = profile.memory_capacity()
    if capacity is None:
        return
    weights, _ = partition_memory(graph, nodes)  # shared constants counted once
    peak = max(partition_memory(graph, [problem.names[v] for v in solution.groups[p]])[1]
               for p in pids)
    if weights + peak > capacity:
        raise ResourceError(
            f"{where} {_bytes(weights + peak)} of device memory (weights "
            f"{_bytes(weights)} + live activations {_bytes(peak)}), the device has "
            f"{_bytes(capacity)}: over by {(weights + peak) / capacity - 1:.0%}", hint=HINT)


def spill_penalty(problem: Problem) -> float:
    """More than the latency of any placement: every node at its slowest, every tensor
    copied to each consumer and back, every partition start, plus 1 s."""
    p = problem
    slowest = np.where(np.isfinite(p.time), p.time, 0.0).max(axis=1).sum()
    copies = sum((len(set(t.consumers)) + 1) * float(p.xfer[i].max())
                 for i, t in enumerate(p.tensors))
    return float(slowest + copies + p.n * max(p.dispatch) + 1.0)


def spill(problem: Problem, spills: np.ndarray) -> Problem:
    """The problem the partitioners solve when nodes may spill to the CPU: their CPU time
    carries ``spill_penalty``, so a plan with one spill more is always slower, and every
    partitioner uses the CPU only where a device budget forces it."""
    time = problem.time.copy()
    time[spills, 0] += spill_penalty(problem)
    return dataclasses.replace(problem, time=time)


def _preferred(p: Problem, v: int) -> int:
    return min((d for d in p.allowed[v] if d != 0), key=lambda d: float(p.time[v, d]))


def _spilled(p: Problem, assign: list[int], spills: np.ndarray) -> list[int]:
    return [v for v in range(p.n) if spills[v] and assign[v] == 0]


def unspill(problem: Problem, solution: Solution, spills: np.ndarray) -> Solution:
    """Move spilled nodes back to a device of theirs wherever they fit after all (the
    heuristics may evict more than needed), smallest first; re-score on real times."""
    p, assign = problem, list(solution.assign)
    spilled = _spilled(p, assign, spills)
    if not spilled:
        return solution
    used = {d: p.usage(assign, d) for d in p.budgets}

    def size(v: int) -> float:
        return max(float(np.max(p.resources[d][v] / np.maximum(p.budgets[d], 1e-9)))
                   for d in p.allowed[v] if d in p.budgets)

    for v in sorted(spilled, key=size):
        for d in sorted((d for d in p.allowed[v] if d != 0), key=lambda d: p.time[v, d]):
            if d not in used or np.all(used[d] + p.resources[d][v] <= p.budgets[d] + 1e-9):
                assign[v] = d
                if d in used:
                    used[d] += p.resources[d][v]
                break
    result = evaluate(p, assign, solution.partitioner)
    result.notes.update(solution.notes, spilled=len(_spilled(p, assign, spills)))
    return result


def spill_warning(problem: Problem, solution: Solution, spills: np.ndarray,
                  devices: DeviceSet) -> str | None:
    """One line per device that nodes spilled from: what the whole model would have needed
    there, the budget, the overshoot and how many nodes stay on the CPU."""
    p, assign = problem, solution.assign
    spilled = _spilled(p, assign, spills)
    if not spilled:
        return None
    lines = []
    for d in sorted({_preferred(p, v) for v in spilled}):
        mine = [v for v in spilled if _preferred(p, v) == d]
        meant = [v for v in range(p.n) if assign[v] == d] + mine
        target = p.devices[d]
        profile = devices[target]
        limit = budget(profile)
        need = (p.resources[d][meant].sum(axis=0) if d in p.resources
                else np.zeros_like(limit))
        ratio = need / np.maximum(limit, 1e-9)
        r = int(np.argmax(ratio))
        also = ", ".join(f"{RESOURCES[x]} by {ratio[x] - 1:.0%}" for x in range(len(ratio))
                         if x != r and ratio[x] > 1 + 1e-9)
        over = f"over by {ratio[r] - 1:.0%}" + (f" (also {also})" if also else "")
        if r < 3 and profile.fpga is not None:
            total = (profile.fpga.dsp, profile.fpga.bram, profile.fpga.lut)[r]
            what = (f"{_count(need[r])} {RESOURCES[r]}, the budget is {_count(limit[r])} "
                    f"({profile.fpga.max_utilization:.0%} of {_count(total)}), {over}")
        else:
            what = (f"{_bytes(need[r])} of device memory (each node charged every tensor it "
                    f"touches), the device has {_bytes(limit[r])}, {over}")
        lines.append(f"{target} ({profile.name}): the model needs {what}: {len(mine)} of "
                     f"{p.n} nodes stay on the CPU; {SPILL_HINT.format(target=target)}")
    return "\n".join(lines)


def _count(value: float) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _bytes(value: float) -> str:
    for scale, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.0f} B"

"""Partitions: the unit of code generation and of scheduling.

A partition is a set of nodes placed on one target. Its boundary is explicit: ``inputs`` are
run-time tensors it reads from graph inputs or other partitions, ``outputs`` are tensors it
produces for other partitions or for the model's outputs. ``build_partitions`` reads the
``target``/``partition`` annotations of the place pass; ``subgraph`` cuts a partition out as a
standalone :class:`Graph` a target can compile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hcompile.ir import Graph

if TYPE_CHECKING:
    from hcompile.passes.partition import Problem, Solution
    from hcompile.simulate import SimResult


@dataclass(slots=True)
class Partition:
    """id: position in execution order; target: target name; nodes: node names in order;
    inputs / outputs: boundary tensor names; meta: estimates and reports (flops, est_ms...)."""

    id: int
    target: str
    nodes: list[str]
    inputs: list[str]
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def build_partitions(graph: Graph) -> list[Partition]:
    """Group annotated nodes into partitions and compute their boundaries."""
    groups: dict[int, list[int]] = {}
    for index, node in enumerate(graph.nodes):
        groups.setdefault(int(node.meta.get("partition", 0)), []).append(index)
    graph_outputs = set(graph.outputs)
    consumers = graph.consumers()
    parts: list[Partition] = []
    for pid in sorted(groups, key=lambda p: groups[p][0]):
        nodes = [graph.nodes[i] for i in groups[pid]]
        produced = {o for n in nodes for o in n.outputs if o}
        inputs: dict[str, None] = {}
        for node in nodes:
            for name in node.inputs:
                if name and name not in produced and name not in graph.constants:
                    inputs[name] = None
        outputs = [o for n in nodes for o in n.outputs if o and (
            o in graph_outputs
            or any(int(c.meta.get("partition", 0)) != pid for c in consumers.get(o, [])))]
        parts.append(Partition(len(parts), str(nodes[0].meta.get("target", "cpu")),
                               [n.name for n in nodes], list(inputs), outputs))
    _check_order(graph, parts)
    return parts


def _check_order(graph: Graph, parts: list[Partition]) -> None:
    """Every partition reads only model inputs and tensors of earlier partitions."""
    available = set(graph.inputs) | set(graph.constants)
    for part in parts:
        missing = [name for name in part.inputs if name not in available]
        if missing:
            raise ValueError(f"partition {part.id} reads {missing} before any earlier partition "
                             "produces them: the placement made partitions depend on each "
                             "other in a cycle or out of order")
        available.update(o for name in part.nodes for o in graph.node(name).outputs if o)


def subgraph(graph: Graph, part: Partition) -> Graph:
    """The partition as a standalone graph (shares node objects and constant arrays)."""
    names = set(part.nodes)
    nodes = [n for n in graph.nodes if n.name in names]
    used = {i for n in nodes for i in n.inputs if i}
    types = graph.tensor_types()
    return Graph(
        name=f"{graph.name}_p{part.id}",
        inputs={name: types[name] for name in part.inputs},
        outputs=list(part.outputs),
        nodes=nodes,
        constants={k: v for k, v in graph.constants.items() if k in used},
        opsets=dict(graph.opsets),
        source=graph.source,
    )


@dataclass
class PlanSummary:
    """What the place pass decided and predicted (the plan JSON's cost fields).

    partitioner / solve_ms: who placed the nodes and how long it took; predicted_ms: the
    simulated latency; single_device_ms: each allowed target alone; devices: target ->
    profile used; partitions: per partition id, its node names, target, flops, est_ms,
    start_ms, end_ms; transfers: one entry per tensor and destination device; notes:
    partitioner details (``optimal`` for exhaustive, ``auto_start``...). ``problem`` and
    ``solution`` are kept to re-simulate when code generation moves a partition.
    """

    partitioner: str
    solve_ms: float
    predicted_ms: float
    single_device_ms: dict[str, float]
    devices: dict[str, str]
    partitions: list[dict[str, Any]]
    transfers: list[dict[str, Any]]
    notes: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None
    solution: Solution | None = None


def summarize(graph: Graph, problem: Problem, solution: Solution, sim: SimResult,
              single_device_s: dict[str, float], devices: dict[str, str]) -> PlanSummary:
    """The summary of a solved placement and its simulation (``sim`` with copies)."""
    names = problem.names
    flops = {n.name: float(n.meta.get("cost", {}).get("flops", 0.0)) for n in graph.nodes}
    partitions = []
    for pid, group in enumerate(solution.groups):
        d = solution.assign[group[0]]
        start, end = sim.spans[pid]
        partitions.append({
            "id": pid, "target": problem.devices[d], "nodes": [names[v] for v in group],
            "flops": sum(flops.get(names[v], 0.0) for v in group),
            "est_ms": _ms(problem.dispatch[d] + sum(float(problem.time[v, d]) for v in group)),
            "start_ms": _ms(start), "end_ms": _ms(end)})
    notes = {k: v for k, v in solution.notes.items() if k != "solve_ms"}
    return PlanSummary(
        partitioner=solution.partitioner,
        solve_ms=round(float(solution.notes.get("solve_ms", 0.0)), 3),
        predicted_ms=_ms(sim.latency),
        single_device_ms={t: _ms(s) for t, s in single_device_s.items()},
        devices=dict(devices),
        partitions=partitions,
        transfers=_transfers(problem, solution, sim),
        notes=notes, problem=problem, solution=solution)


def _transfers(problem: Problem, solution: Solution, sim: SimResult) -> list[dict[str, Any]]:
    """One entry per tensor and destination device, from the simulated copies."""
    group_of = {v: g for g, group in enumerate(solution.groups) for v in group}
    arrivals: dict[tuple[int, int], tuple[float, float]] = {}
    for copy in sim.copies:
        key = (copy.tensor, copy.dst)
        first = arrivals.get((copy.tensor, copy.src), (copy.start, copy.end))
        arrivals[key] = (min(first[0], copy.start), copy.end)
    out = []
    for (t, dst), (start, end) in sorted(arrivals.items(), key=lambda kv: kv[1]):
        tensor = problem.tensors[t]
        readers = sorted(group_of[c] for c in tensor.consumers
                         if solution.assign[c] == dst and group_of[c] != group_of.get(
                             tensor.producer, -1))
        if not readers and not (tensor.output and dst == 0):
            continue  # staged on the host on its way elsewhere
        src_dev = 0 if tensor.producer < 0 else solution.assign[tensor.producer]
        out.append({
            "tensor": tensor.name,
            "src": group_of[tensor.producer] if tensor.producer >= 0 else -1,
            "dst": readers[0] if readers else -1,
            "src_target": problem.devices[src_dev], "dst_target": problem.devices[dst],
            "bytes": int(tensor.nbytes),
            "est_ms": _ms(problem.copy_seconds(tensor.nbytes, src_dev, dst)),
            "start_ms": _ms(start), "end_ms": _ms(end)})
    return out


def _ms(seconds: float) -> float:
    return round(float(seconds) * 1e3, 6)


def plan_json(graph: Graph, partitions: list[Partition],
              summary: PlanSummary | None = None) -> dict[str, Any]:
    """The plan of DESIGN.md. ``summary`` (the place pass's ``options.extra["plan_summary"]``)
    adds the partitioner, timings, predictions and transfers; without it those are absent.
    When code generation moved a partition to another target after placement, its estimate
    comes from the nodes' costs on the new target and the plan is simulated again."""
    summary = _refresh(graph, partitions, summary)
    by_id: dict[int, dict[str, Any]] = {}
    if summary is not None:
        by_id = {p["id"]: p for p in summary.partitions}
    entries = []
    for part in partitions:
        est = by_id.get(part.id, {})
        nodes = [graph.node(n) for n in part.nodes]
        flops = sum(float(n.meta.get("cost", {}).get("flops", 0.0)) for n in nodes)
        est_ms = est.get("est_ms") if est.get("nodes") == part.nodes else None
        if est_ms is None or est.get("target") != part.target:
            est_ms = round(sum(float(n.meta.get("cost", {}).get("est_ms", {})
                                     .get(part.target, 0.0)) for n in nodes), 6)
        entry: dict[str, Any] = {"id": part.id, "target": part.target, "nodes": part.nodes,
                                 "inputs": part.inputs, "outputs": part.outputs,
                                 "flops": flops, "est_ms": est_ms}
        entry.update((k, est[k]) for k in ("start_ms", "end_ms", "memory_bytes")
                     if k in est)
        entry.update(part.meta)
        entries.append(entry)
    plan: dict[str, Any] = {}
    if summary is not None:
        plan.update(partitioner=summary.partitioner, solve_ms=summary.solve_ms,
                    predicted_ms=summary.predicted_ms,
                    single_device_ms=summary.single_device_ms, devices=summary.devices)
    else:
        plan["partitioner"] = "unknown"
    plan["partitions"] = entries
    plan["transfers"] = summary.transfers if summary else []
    plan["nodes"] = [
        {"name": n.name, "op": n.op, "target": n.meta.get("target"),
         "reason": n.meta.get("reason"), "detail": n.meta.get("reason_detail", ""),
         "flops": float(n.meta.get("cost", {}).get("flops", 0.0)),
         "est_ms": dict(n.meta.get("cost", {}).get("est_ms", {}))}
        for n in graph.nodes]
    if summary is not None and summary.notes:
        plan["notes"] = _jsonable(summary.notes)
    return plan


def _refresh(graph: Graph, partitions: list[Partition],
             summary: PlanSummary | None) -> PlanSummary | None:
    """Re-simulate when code generation moved partitions after placement."""
    if summary is None or summary.problem is None or summary.solution is None:
        return summary
    problem, solution = summary.problem, summary.solution
    moved = [p for p in partitions if p.id < len(summary.partitions)
             and summary.partitions[p.id]["target"] != p.target]
    if not moved or len(partitions) != len(solution.groups):
        return summary
    from hcompile.passes.partition import Solution
    from hcompile.simulate import simulate

    index = {name: v for v, name in enumerate(problem.names)}
    assign = list(solution.assign)
    times = problem.time.copy()
    for part in moved:
        if part.target not in problem.devices:
            return summary
        d = problem.devices.index(part.target)
        for name in part.nodes:
            v = index[name]
            if times[v, d] == float("inf"):  # cost unknown there: use the node's meta
                times[v, d] = graph.node(name).meta["cost"]["est_ms"].get(
                    part.target, 0.0) / 1e3
            assign[v] = d
    problem = dataclasses.replace(problem, time=times)
    new = Solution(assign, solution.groups, 0.0, solution.partitioner, dict(solution.notes))
    sim = simulate(problem, assign, solution.groups)
    new.latency = sim.latency
    single = {t: v / 1e3 for t, v in summary.single_device_ms.items()}
    refreshed = summarize(graph, problem, new, sim, single, summary.devices)
    refreshed.solve_ms = summary.solve_ms
    refreshed.notes["moved_after_placement"] = [p.id for p in moved]
    return refreshed


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 6)
    return str(value)

"""Place every node on a target by cost, then group the nodes into partitions.

Reads the cost pass's annotations (runs it when they are missing), builds the placement
:class:`~hcompile.passes.partition.Problem`, runs the chosen partitioner and writes:

* ``node.meta["target"]``, ``["partition"]`` (int id), ``["est_ms"]`` (on its target),
  ``["reason"]``: ``override`` (``--place``), ``unsupported`` (no other allowed target can
  run it), ``resource limit`` (faster on a device whose DSP/BRAM/LUT or memory budget is
  full, or, without ``cpu`` in ``--targets``, a node that does not fit the devices and
  spills to the CPU), ``single target`` or ``cost``, and ``["reason_detail"]``, one
  sentence for people;
* the node order: partitions become consecutive runs of ``graph.nodes`` (still a
  topological order), numbered in execution order, so ``hcompile.plan.build_partitions``
  gives the same partitions;
* ``options.extra["plan_summary"]``: a :class:`hcompile.plan.PlanSummary` (partitioner,
  solve time, simulated latency, each device alone, partition and copy timings).

Settings in ``options.extra``: ``partitioner`` (auto|single|greedy|dp|heft|exhaustive,
default auto), ``place`` (``["GLOB=TARGET", ...]``; the glob matches node names or op
types, later entries win), ``devices`` (see the cost pass).

``--targets`` lists the devices the user prefers; the CPU is always underneath. Without
``cpu`` among them, every node not placed by ``--place`` may also go to the CPU, at its
real time plus a penalty larger than any placement's latency (``place_resources.spill``),
so the partitioners use the CPU only where a device budget forces it; one warning then
says how far over the device the whole model would have been.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from hcompile.errors import UsageError
from hcompile.passes import cost
from hcompile.passes.partition import PARTITIONERS, Link, Problem, Solution, Tensor, single, solve
from hcompile.passes.place_resources import (
    RESOURCES,
    UNLIMITED,
    check_placement,
    spill,
    spill_warning,
    unspill,
)
from hcompile.passes.place_resources import budget as resource_budget
from hcompile.passes.place_resources import resource_table as resources_of
from hcompile.plan import summarize
from hcompile.simulate import simulate

log = logging.getLogger("hcompile")

if TYPE_CHECKING:
    from hcompile.devices import DeviceProfile, DeviceSet
    from hcompile.ir import Graph, Node
    from hcompile.passes import PassOptions


def parse_overrides(specs: Sequence[str], targets: Sequence[str]) -> list[tuple[str, str]]:
    """``["Conv*=gpu", ...]`` -> ``[("Conv*", "gpu"), ...]``, checked against ``targets``."""
    rules = []
    for spec in specs:
        glob, sep, target = spec.rpartition("=")
        glob, target = glob.strip(), target.strip()
        if not sep or not glob or not target:
            raise UsageError(f"--place {spec!r}: expected NODE_GLOB=TARGET",
                             hint="e.g. --place 'Conv_*=gpu' or --place Softmax=cpu")
        if target not in targets:
            raise UsageError(f"--place {spec!r}: target {target!r} is not among --targets "
                             f"({', '.join(targets)})", hint=f"add --targets ...,{target}")
        rules.append((glob, target))
    return rules


def override_for(node: Node, rules: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The last rule matching the node's name or op type."""
    found = None
    for glob, target in rules:
        if fnmatchcase(node.name, glob) or fnmatchcase(node.op, glob):
            found = (glob, target)
    return found


def build_problem(graph: Graph, devices: DeviceSet, targets: Sequence[str],
                  rules: Sequence[tuple[str, str]] = ()
                  ) -> tuple[Problem, list[str], list[str], np.ndarray]:
    """The placement problem of an annotated graph (real times); also each node's fixed
    reason (or "") and its detail, and which nodes may spill to the CPU (``cpu`` is not
    among ``targets``: every node not forced by ``--place`` that the CPU would not
    otherwise run)."""
    names = ["cpu", *[t for t in targets if t != "cpu"]]
    costs = cost.node_costs(graph)
    n, ndev = len(graph.nodes), len(names)
    times = np.full((n, ndev), np.inf)
    reasons, details = [""] * n, [""] * n
    spills = np.zeros(n, dtype=bool)
    index = {node.name: i for i, node in enumerate(graph.nodes)}
    for i, node in enumerate(graph.nodes):
        est = node.meta["cost"]["est_ms"]
        unsupported = node.meta.get("unsupported", {})
        rule = override_for(node, rules)
        if rule is not None:
            glob, target = rule
            if target in unsupported:
                raise UsageError(f"--place {glob}={target}: node {node.name} ({node.op}) "
                                 f"cannot run on {target}: {unsupported[target]}",
                                 node=node.name)
            times[i, names.index(target)] = est[target] / 1e3
            reasons[i], details[i] = "override", f"--place {glob}={target}"
            continue
        for d, target in enumerate(names):
            if target in est and target in targets:
                times[i, d] = est[target] / 1e3
        if not np.isfinite(times[i]).any():
            times[i, 0] = est["cpu"] / 1e3
            reasons[i] = "unsupported"
        elif "cpu" not in targets:
            times[i, 0], spills[i] = est["cpu"] / 1e3, True
        if unsupported and (reasons[i] or len(targets) > 1):
            reasons[i] = reasons[i] or "unsupported"
            details[i] = "; ".join(f"not on {t}: {why}" for t, why in unsupported.items()
                                   if t in targets or t == "cpu")
    tensors: list[Tensor] = []
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    for name, ttype in graph.inputs.items():
        users = tuple(index[c.name] for c in consumers.get(name, []))
        tensors.append(Tensor(name, -1, users, float(ttype.nbytes)))
    for i, node in enumerate(graph.nodes):
        for name, ttype in zip(node.outputs, node.output_types, strict=True):
            if name:
                users = tuple(index[c.name] for c in consumers.get(name, []))
                tensors.append(Tensor(name, i, users, float(ttype.nbytes), name in outputs))
    links: list[Link | None] = []
    resources: dict[int, np.ndarray] = {}
    budgets: dict[int, np.ndarray] = {}
    for d, target in enumerate(names):
        profile = devices[target]
        link = profile.link
        links.append(None if d == 0 or link is None else Link(link.latency_s, link.bandwidth))
        if d > 0:
            _add_budget(d, target, profile, times, resources, budgets,
                        partial(resources_of, graph, costs, profile))
    problem = Problem(tuple(names), tuple(node.name for node in graph.nodes), times,
                      tuple(tensors), tuple(devices[t].dispatch_s for t in names),
                      tuple(links), resources, budgets)
    return problem, reasons, details, spills


def _add_budget(d: int, target: str, profile: DeviceProfile, times: np.ndarray,
                resources: dict[int, np.ndarray], budgets: dict[int, np.ndarray],
                table: Callable[[], np.ndarray]) -> None:
    """Give device ``d`` its resource budget (an FPGA always; any other device only where
    its memory could run out, so that the partitioners carry no needless state)."""
    limit = resource_budget(profile)
    need = table()
    allowed = np.isfinite(times[:, d])
    if need[allowed, 3].sum() <= limit[3]:
        if profile.fpga is None:
            return
        # Memory cannot run out here: a zero column keeps the DP's Pareto fronts to the
        # fabric (a non-binding dimension would crowd useful entries out of them).
        need[:, 3], limit[3] = 0.0, UNLIMITED
    # Nodes that can only go there (--place) go there even when they overflow it;
    # place_resources.check_placement then fails the compile naming the partition. The
    # rest must fit what is left (without cpu in --targets, they may spill to the CPU).
    pinned = allowed & (np.isfinite(times).sum(axis=1) == 1)
    resources[d] = need
    budgets[d] = np.maximum(limit, need[pinned].sum(axis=0))


def run(graph: Graph, options: PassOptions) -> bool:
    if not graph.nodes:
        return False
    name = str(options.extra.get("partitioner") or "auto")
    if name not in PARTITIONERS:
        raise UsageError(f"unknown partitioner {name!r}",
                         hint=f"choose from: {', '.join(PARTITIONERS)}")
    devices = cost.devices_for(options)
    targets = list(options.targets) or ["cpu"]
    if any("cost" not in node.meta for node in graph.nodes) or any(
            t not in node.meta["cost"]["est_ms"] and t not in node.meta.get("unsupported", {})
            for node in graph.nodes for t in targets):
        cost.run(graph, options)
    rules = parse_overrides(list(options.extra.get("place") or []), targets)
    problem, reasons, details, spills = build_problem(graph, devices, targets, rules)
    if spills.any():
        solution = unspill(problem, solve(spill(problem, spills), name), spills)
    else:
        solution = solve(problem, name)
    memory = check_placement(graph, problem, solution, devices)
    warning = spill_warning(problem, solution, spills, devices)
    if warning:
        log.warning("%s", warning)
    _explain(problem, solution, reasons, details, targets, spills)
    before = [(n.name, n.meta.get("target"), n.meta.get("partition")) for n in graph.nodes]
    _annotate(graph, problem, solution, reasons, details)
    alone = {t: single.on_device(problem, d).latency for d, t in enumerate(problem.devices)
             if t in targets}
    options.extra["plan_summary"] = summarize(
        graph, problem, solution, simulate(problem, solution.assign, solution.groups),
        alone, {t: d for t, d in devices.describe().items() if t in problem.devices})
    for entry, nbytes in zip(options.extra["plan_summary"].partitions, memory, strict=True):
        entry["memory_bytes"] = int(nbytes)
    after = [(n.name, n.meta.get("target"), n.meta.get("partition")) for n in graph.nodes]
    return before != after


def _explain(problem: Problem, solution: Solution, reasons: list[str], details: list[str],
             targets: Sequence[str], spills: np.ndarray) -> None:
    """Fill the reason of every node whose placement was a choice."""
    p = problem
    used = {d: p.usage(solution.assign, d) for d in p.budgets}
    for v, d in enumerate(solution.assign):
        here = p.devices[d]
        # The CPU a node may spill to is no choice of the user's.
        choices = [x for x in p.allowed[v] if not (spills[v] and x == 0)]
        if reasons[v] in ("override", "unsupported") and (reasons[v] == "override"
                                                         or len(choices) == 1):
            continue
        if spills[v] and d == 0:
            reasons[v], details[v] = "resource limit", _spilled(p, v, used)
            continue
        fastest = min(choices, key=lambda x: float(p.time[v, x]))
        if fastest in p.budgets and fastest != d and np.any(
                used[fastest] + p.resources[fastest][v] > p.budgets[fastest] + 1e-9):
            over = used[fastest] + p.resources[fastest][v] > p.budgets[fastest] + 1e-9
            full = "/".join(r for r, o in zip(RESOURCES, over, strict=True) if o)
            reasons[v] = "resource limit"
            details[v] = (f"{_ms(p.time[v, fastest])} on {p.devices[fastest]}, but its "
                          f"{full} budget is used up; {_ms(p.time[v, d])} on {here}")
        elif len(targets) == 1:
            reasons[v], details[v] = "single target", f"only target: {here}"
        else:
            reasons[v] = "cost"
            others = ", ".join(f"{_ms(p.time[v, x])} on {p.devices[x]}" for x in choices
                               if x != d)
            details[v] = f"{_ms(p.time[v, d])} on {here}" + (f" (vs {others})" if others
                                                              else "")


def _spilled(p: Problem, v: int, used: dict[int, np.ndarray]) -> str:
    """Detail of a node that spilled to the CPU: the devices it did not fit, and why."""
    full = []
    for d in p.allowed[v]:
        if d in p.budgets:
            over = used[d] + p.resources[d][v] > p.budgets[d] + 1e-9
            names = "/".join(r for r, o in zip(RESOURCES, over, strict=True) if o)
            full.append(f"{p.devices[d]} ({names or 'resource'} budget used up)")
    return f"would not fit {' or '.join(full)}; {_ms(p.time[v, 0])} on cpu"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if math.isfinite(seconds) else "n/a"


def _annotate(graph: Graph, problem: Problem, solution: Solution, reasons: list[str],
              details: list[str]) -> None:
    nodes = list(graph.nodes)
    order: list[Node] = []
    for pid, group in enumerate(solution.groups):
        for v in group:
            node = nodes[v]
            d = solution.assign[v]
            node.meta.update(target=problem.devices[d], partition=pid, reason=reasons[v],
                             reason_detail=details[v], est_ms=float(problem.time[v, d]) * 1e3)
            order.append(node)
    graph.nodes[:] = order

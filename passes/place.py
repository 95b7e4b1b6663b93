"""Place every node on a target by cost, then group the nodes into partitions.

Reads the cost pass's annotations (runs it when they are missing), builds the placement
:class:`~hcompile.passes.partition.Problem`, runs the chosen partitioner and writes:

* ``node.meta["target"]``, ``["partition"]`` (int id), ``["est_ms"]`` (on its target),
  ``["reason"]``: ``override`` (``--place``), ``unsupported`` (no other allowed target can
  run it), ``resource limit`` (faster on an FPGA that is full), ``single target`` or
  ``cost``, and ``["reason_detail"]``, one sentence for people;
* the node order: partitions become consecutive runs of ``graph.nodes`` (still a
  topological order), numbered in execution order, so ``hcompile.plan.build_partitions``
  gives the same partitions;
* ``options.extra["plan_summary"]``: a :class:`hcompile.plan.PlanSummary` (partitioner,
  solve time, simulated latency, each device alone, partition and copy timings).

Settings in ``options.extra``: ``partitioner`` (auto|single|greedy|dp|heft|exhaustive,
default auto), ``place`` (``["GLOB=TARGET", ...]``; the glob matches node names or op
types, later entries win), ``devices`` (see the cost pass).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import numpy as np

from hcompile.errors import UsageError
from hcompile.passes import cost
from hcompile.passes.partition import PARTITIONERS, Link, Problem, Solution, Tensor, single, solve
from hcompile.plan import summarize
from hcompile.simulate import simulate

log = logging.getLogger("hcompile")

if TYPE_CHECKING:
    from hcompile.devices import DeviceSet
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
                  rules: Sequence[tuple[str, str]] = ()) -> tuple[Problem, list[str], list[str]]:
    """The placement problem of an annotated graph; also each node's fixed reason (or "")
    and its detail."""
    names = ["cpu", *[t for t in targets if t != "cpu"]]
    costs = cost.node_costs(graph)
    n, ndev = len(graph.nodes), len(names)
    times = np.full((n, ndev), np.inf)
    reasons, details = [""] * n, [""] * n
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
    links, resources, budgets = [], {}, {}
    for d, target in enumerate(names):
        profile = devices[target]
        link = profile.link
        links.append(None if d == 0 or link is None else Link(link.latency_s, link.bandwidth))
        if profile.fpga is not None and d > 0:
            resources[d] = np.array([cost.fpga_resources(costs[node.name], profile.fpga)
                                     for node in graph.nodes]).reshape(n, 3)
            budgets[d] = np.array(profile.fpga.budget())
            # Nodes that can only go there (the only target, or --place) go there even when
            # the model says they overflow it: the user asked; it runs on an emulator, and
            # a board build reports the real figures. The rest must fit what is left.
            pinned = np.isfinite(times[:, d]) & (np.isfinite(times).sum(axis=1) == 1)
            need = resources[d][pinned].sum(axis=0)
            if np.any(need > budgets[d]):
                log.warning("the %d nodes that can only run on %s need an estimated %.0f DSP, "
                            "%.0f BRAM, %.0f LUT: more than %s offers (%.0f, %.0f, %.0f); "
                            "placing them there anyway", int(pinned.sum()), target, *need,
                            profile.name, *budgets[d])
                budgets[d] = np.maximum(budgets[d], need)
    problem = Problem(tuple(names), tuple(node.name for node in graph.nodes), times,
                      tuple(tensors), tuple(devices[t].dispatch_s for t in names),
                      tuple(links), resources, budgets)
    return problem, reasons, details


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
    problem, reasons, details = build_problem(graph, devices, targets, rules)
    solution = solve(problem, name)
    _explain(problem, solution, reasons, details, targets)
    before = [(n.name, n.meta.get("target"), n.meta.get("partition")) for n in graph.nodes]
    _annotate(graph, problem, solution, reasons, details)
    alone = {t: single.on_device(problem, d).latency for d, t in enumerate(problem.devices)
             if t in targets}
    options.extra["plan_summary"] = summarize(
        graph, problem, solution, simulate(problem, solution.assign, solution.groups),
        alone, {t: d for t, d in devices.describe().items() if t in problem.devices})
    after = [(n.name, n.meta.get("target"), n.meta.get("partition")) for n in graph.nodes]
    return before != after


def _explain(problem: Problem, solution: Solution, reasons: list[str], details: list[str],
             targets: Sequence[str]) -> None:
    """Fill the reason of every node whose placement was a choice."""
    p = problem
    used = {d: p.usage(solution.assign, d) for d in p.budgets}
    for v, d in enumerate(solution.assign):
        here = p.devices[d]
        if reasons[v] in ("override", "unsupported") and (reasons[v] == "override"
                                                         or len(p.allowed[v]) == 1):
            continue
        fastest = single.fastest(p, v)
        if fastest in p.budgets and fastest != d and np.any(
                used[fastest] + p.resources[fastest][v] > p.budgets[fastest] + 1e-9):
            reasons[v] = "resource limit"
            details[v] = (f"{_ms(p.time[v, fastest])} on {p.devices[fastest]}, but its "
                          f"DSP/BRAM/LUT budget is used up; {_ms(p.time[v, d])} on {here}")
        elif len(targets) == 1:
            reasons[v], details[v] = "single target", f"only target: {here}"
        else:
            reasons[v] = "cost"
            others = ", ".join(f"{_ms(p.time[v, x])} on {p.devices[x]}" for x in p.allowed[v]
                               if x != d)
            details[v] = f"{_ms(p.time[v, d])} on {here}" + (f" (vs {others})" if others
                                                              else "")


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

"""Partitions: the unit of code generation and of scheduling.

A partition is a set of nodes placed on one target. Its boundary is explicit: ``inputs`` are
run-time tensors it reads from graph inputs or other partitions, ``outputs`` are tensors it
produces for other partitions or for the model's outputs. ``build_partitions`` reads the
``target``/``partition`` annotations of the place pass; ``subgraph`` cuts a partition out as a
standalone :class:`Graph` a target can compile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hcompile.ir import Graph


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
    return parts


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


def plan_json(graph: Graph, partitions: list[Partition]) -> dict[str, Any]:
    """The plan of DESIGN.md (the cost fields arrive with the cost model)."""
    return {
        "partitioner": "single",
        "partitions": [
            {"id": p.id, "target": p.target, "nodes": p.nodes, "inputs": p.inputs,
             "outputs": p.outputs, **p.meta}
            for p in partitions
        ],
        "transfers": [],
        "nodes": [{"name": n.name, "op": n.op, "target": n.meta.get("target"),
                   "reason": n.meta.get("reason")} for n in graph.nodes],
    }

"""The hcompile IR: a graph of ONNX-style operator nodes over named, statically typed tensors.

A reader learns the IR from this file. Edges are tensor *names*, as in ONNX: a node consumes
tensors by name and produces tensors by name; every name has exactly one producer (a graph
input, a constant or a node output). Nodes are kept in topological order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcompile.ir.types import TensorType


@dataclass(slots=True)
class Node:
    """One operator application.

    op: the operator type, as ONNX names it (``"Conv"``, ``"MatMul"``).
    name: unique node name (from the model, or made up by the importer when empty).
    inputs: names of consumed tensors in operator order; ``""`` marks an omitted optional input.
    outputs: names of produced tensors in operator order; ``""`` marks an unused optional output.
    attrs: attribute name -> Python value (int, float, str, bytes, lists of those, or np.ndarray).
    output_types: static type of each output, parallel to ``outputs``.
    domain: operator-set domain (``""`` is the default ONNX domain ``ai.onnx``).
    opset: version of ``domain`` the node was written against (picks the op implementation).
    meta: annotations added by passes (``cost``, ``target``, ``partition``, ``source``...).
    """

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    output_types: list[TensorType] = field(default_factory=list)
    domain: str = ""
    opset: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def __str__(self) -> str:
        from hcompile.ir.text import format_node

        return format_node(self)


@dataclass(slots=True)
class Graph:
    """A whole model or one partition of it.

    name: model or partition name.
    inputs: graph input names with their types (run-time data, in signature order).
    outputs: graph output names in the model's output order.
    nodes: operators in topological order.
    constants: compile-time tensors: initializers, folded subgraphs, Constant nodes.
    opsets: domain -> opset version imported by the model.
    source: the file the graph came from (for error messages), or ``"<memory>"``.
    """

    name: str
    inputs: dict[str, TensorType]
    outputs: list[str]
    nodes: list[Node] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    opsets: dict[str, int] = field(default_factory=dict)
    source: str = "<memory>"

    def type_of(self, name: str) -> TensorType:
        """The static type of tensor ``name``; raises KeyError for an unknown name."""
        if name in self.inputs:
            return self.inputs[name]
        if name in self.constants:
            return TensorType.of(self.constants[name])
        for node in self.nodes:
            if name in node.outputs:
                return node.output_types[node.outputs.index(name)]
        raise KeyError(name)

    def tensor_types(self) -> dict[str, TensorType]:
        """Every tensor's type by name, computed in one walk."""
        types = dict(self.inputs)
        types.update({k: TensorType.of(v) for k, v in self.constants.items()})
        for node in self.nodes:
            types.update((o, t) for o, t in zip(node.outputs, node.output_types, strict=True) if o)
        return types

    def producers(self) -> dict[str, Node]:
        """Tensor name -> the node producing it (graph inputs and constants are absent)."""
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        """Tensor name -> nodes consuming it, in node order."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def walk(self) -> Iterator[Node]:
        yield from self.nodes

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def __str__(self) -> str:
        from hcompile.ir.text import format_graph

        return format_graph(self)

"""``verify(graph)``: check the IR's invariants and explain what is wrong.

Run after every pass in tests and under ``HCOMPILE_DEBUG=1`` (see ``passes.run_pipeline``).
"""

from __future__ import annotations

import numpy as np

from hcompile.errors import IRVerifyError
from hcompile.ir.graph import Graph
from hcompile.ir.types import DTYPES, TensorType


def verify(graph: Graph, *, after: str | None = None) -> None:
    """Raise :class:`IRVerifyError` unless ``graph`` is well formed.

    Checks: unique node names; every tensor has one producer; nodes are topologically
    ordered; every output has a static, non-negative type with a known dtype; graph
    outputs exist.
    """
    defined: dict[str, str] = {}

    def define(name: str, by: str) -> None:
        if name in defined:
            raise _error(f"tensor '{name}' is produced twice (by {defined[name]} and {by})", after)
        defined[name] = by

    for name, ttype in graph.inputs.items():
        define(name, "graph input")
        _check_type(ttype, name, after)
    for name, value in graph.constants.items():
        define(name, "constant")
        _check_type(TensorType.of(np.asarray(value)), name, after)

    seen_nodes: set[str] = set()
    for node in graph.nodes:
        if node.name in seen_nodes:
            raise _error(f"node name '{node.name}' is used twice", after, node.name)
        seen_nodes.add(node.name)
        for name in node.inputs:
            if name and name not in defined:
                raise _error(
                    f"node input '{name}' is used before it is defined; "
                    "a pass must keep nodes in topological order and rewire every consumer",
                    after,
                    node.name,
                )
        if len(node.output_types) != len(node.outputs):
            raise _error(
                f"{len(node.outputs)} outputs but {len(node.output_types)} output types",
                after,
                node.name,
            )
        for name, ttype in zip(node.outputs, node.output_types, strict=True):
            if name:
                define(name, f"node {node.name}")
                _check_type(ttype, name, after, node.name)

    for name in graph.outputs:
        if name not in defined:
            raise _error(f"graph output '{name}' is not produced by anything", after)


def _check_type(ttype: TensorType, name: str, after: str | None, node: str | None = None) -> None:
    if ttype.dtype not in DTYPES:
        raise _error(f"tensor '{name}' has unsupported dtype {ttype.dtype}", after, node)
    if any((not isinstance(d, int)) or d < 0 for d in ttype.shape):
        raise _error(f"tensor '{name}' has a non-static shape {ttype.shape}", after, node)


def _error(message: str, after: str | None, node: str | None = None) -> IRVerifyError:
    return IRVerifyError(f"IR verification failed: {message}", pass_name=after, node=node)

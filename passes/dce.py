"""Dead-code elimination: drop nodes and constants that no graph output depends on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcompile.ir import Graph
    from hcompile.passes import PassOptions


def run(graph: Graph, options: PassOptions) -> bool:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    dead_consts = [name for name in graph.constants if name not in live]
    changed = len(kept) != len(graph.nodes) or bool(dead_consts)
    graph.nodes = kept
    for name in dead_consts:
        del graph.constants[name]
    return changed

"""Simplify: remove nodes that do nothing at inference time (Identity, Dropout without mask).

The consumer of a removed node reads the node's input directly. A removed node whose output is
a graph output is kept (the output name is part of the model's signature).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcompile.ir import Graph, Node
    from hcompile.passes import PassOptions


def _is_noop(node: Node) -> bool:
    if node.op == "Identity":
        return True
    if node.op == "Dropout":
        # Inference: Dropout is the identity; training_mode must be absent (or a const False).
        has_mask = len(node.outputs) > 1 and bool(node.outputs[1])
        has_training = len(node.inputs) > 2 and bool(node.inputs[2])
        return not has_mask and not has_training
    return False


def run(graph: Graph, options: PassOptions) -> bool:
    outputs = set(graph.outputs)
    replace: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        node.inputs = [replace.get(i, i) for i in node.inputs]
        if _is_noop(node) and node.outputs[0] not in outputs:
            replace[node.outputs[0]] = node.inputs[0]
            continue
        kept.append(node)
    changed = len(kept) != len(graph.nodes)
    graph.nodes = kept
    return changed

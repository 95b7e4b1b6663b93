"""A readable text form of the IR, used by dumps (``HCOMPILE_DEBUG=1``) and error messages.

    graph mlp(x: float32[1,784]) -> (y)
      const W1: float32[784,100]
      h = MatMul(x, W1)                     : float32[1,100]   # MatMul_0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hcompile.ir.graph import Graph, Node


def format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"tensor({value.tolist()})"
        return f"tensor<{value.dtype}[{','.join(map(str, value.shape))}]>"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    return repr(value) if isinstance(value, str) else str(value)


def format_node(node: Node) -> str:
    outs = ", ".join(o or "_" for o in node.outputs)
    args = ", ".join(i or "_" for i in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in sorted(node.attrs.items()))
    call = f"{node.op}({args}{'; ' + attrs if attrs else ''})"
    types = ", ".join(str(t) for t in node.output_types)
    text = f"{outs} = {call}"
    pad = max(1, 48 - len(text))
    extra = f"  # {node.name}"
    if "target" in node.meta:
        extra += f" @{node.meta['target']}"
    return f"{text}{' ' * pad}: {types}{extra}"


def format_graph(graph: Graph) -> str:
    sig = ", ".join(f"{n}: {t}" for n, t in graph.inputs.items())
    lines = [f"graph {graph.name}({sig}) -> ({', '.join(graph.outputs)})"]
    for name, value in graph.constants.items():
        lines.append(f"  const {name}: {value.dtype}[{','.join(map(str, value.shape))}]")
    lines.extend(f"  {format_node(node)}" for node in graph.nodes)
    return "\n".join(lines)

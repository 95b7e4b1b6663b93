"""Fold weights: give Gemm a constant B already transposed, instead of transposing at run time.

``Gemm(transB=1)`` is how PyTorch exports ``nn.Linear`` (and attention's ``out_proj``): the
weight is ``[N, K]`` and the lowering emits a transpose of it before the matmul. The weight
is a compile-time constant, but it reaches the compiled code as a run-time param, so TVM
cannot fold that transpose: it ran on every call (52 µs per 256x256 weight in the zoo's
transformer, more than the matmul). Here the constant is transposed once, in numpy, and the
node gets ``transB=0``. Target-neutral: the same math, one op less for every target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hcompile.ir import Graph
    from hcompile.passes import PassOptions


def run(graph: Graph, options: PassOptions) -> bool:
    transposed: dict[str, str] = {}  # B -> its transposed constant (shared by every user)
    changed = False
    for node in graph.nodes:
        if node.op != "Gemm" or not int(node.attr("transB", 0)) or len(node.inputs) < 2:
            continue
        b = node.inputs[1]
        value = graph.constants.get(b)
        if value is None or np.ndim(value) != 2:
            continue
        if b not in transposed:
            transposed[b] = _fresh(graph, f"{b}/transposed")
            graph.constants[transposed[b]] = np.ascontiguousarray(np.asarray(value).T)
        node.inputs = [node.inputs[0], transposed[b], *node.inputs[2:]]
        node.attrs = {**node.attrs, "transB": 0}
        changed = True
    return changed  # an original B nothing else reads is removed by dce


def _fresh(graph: Graph, base: str) -> str:
    taken = set(graph.constants) | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs}
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name

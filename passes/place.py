"""Place every node on a target and group adjacent same-target nodes into partitions.

This is the single-target placement: every node goes to the first allowed target that can
lower it, falling back to ``cpu``. The cost-based partitioners replace this step.
Annotations: ``node.meta["target"]`` (target name), ``node.meta["partition"]`` (int id),
``node.meta["reason"]`` (why it went there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcompile.ir import Graph
    from hcompile.passes import PassOptions


def run(graph: Graph, options: PassOptions) -> bool:
    changed = False
    partition, previous = -1, None
    for node in graph.nodes:
        target = options.targets[0] if options.targets else "cpu"
        reason = "single target"
        if node.meta.get("target") != target:
            changed = True
        if target != previous:
            partition, previous = partition + 1, target
        node.meta.update(target=target, partition=partition, reason=reason)
    return changed

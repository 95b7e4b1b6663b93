"""The pass pipeline: one ordered list, one comment per step.

A pass is ``run(graph, options) -> bool``: it rewrites or annotates ``graph`` in place and says
whether it changed anything. ``run_pipeline`` verifies the IR after every pass when asked
(tests, ``HCOMPILE_DEBUG=1``) and dumps it under ``HCOMPILE_DEBUG=1``; a failure names the pass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcompile.errors import HcompileError
from hcompile.ir import Graph, format_graph, verify

log = logging.getLogger("hcompile")


@dataclass
class PassOptions:
    """Options every pass may read.

    targets: target names the user allows, in preference order (``["cpu"]``...).
    verify: run ``verify(graph)`` after each pass.
    dump_dir: write the IR text after each pass here (``HCOMPILE_DEBUG=1`` sets it).
    extra: pass-specific settings (``--place`` overrides, partitioner name...).
    """

    targets: list[str] = field(default_factory=lambda: ["cpu"])
    verify: bool = False
    dump_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


PassFn = Callable[[Graph, PassOptions], bool]


def pipeline() -> list[tuple[str, PassFn]]:
    """The passes in order. Imported lazily so ``hcompile.passes`` itself stays light."""
    from hcompile.passes import cost, dce, decompose_rnn, fold_weights, place, simplify

    return [
        ("simplify", simplify.run),  # drop Identity/Dropout, fold no-op reshapes/casts
        ("decompose_rnn", decompose_rnn.run),  # RNNs -> per-step ops (CPU only: fused LSTM kernels)
        ("fold_weights", fold_weights.run),  # Gemm transB on a constant: transpose it once
        ("dce", dce.run),  # remove nodes and constants nothing uses
        ("cost", cost.run),  # FLOPs, bytes and estimated time of every node on every device
        ("place", place.run),  # partition by cost: target and partition of every node
    ]


def run_pipeline(graph: Graph, options: PassOptions | None = None) -> Graph:
    """Run every pass of :func:`pipeline` on ``graph`` in order."""
    options = options or PassOptions()
    debug = os.environ.get("HCOMPILE_DEBUG") == "1"
    check = options.verify or debug
    dump_dir = options.dump_dir
    if dump_dir is None and debug:
        dump_dir = Path(os.environ.get("HCOMPILE_DUMP_DIR", "hcompile-dump"))
    done: list[str] = []
    _dump(graph, dump_dir, 0, "import")
    for step, (name, fn) in enumerate(pipeline(), start=1):
        try:
            changed = fn(graph, options)
            if check:
                verify(graph, after=name)
        except HcompileError as err:
            err.with_context(pass_name=name, source=graph.source)
            if done:
                err.message += f" (after passes: {', '.join(done)})"
                err.args = (err.render(),)
            raise
        log.debug("pass %s: %s", name, "changed" if changed else "no change")
        done.append(name)
        _dump(graph, dump_dir, step, name)
    return graph


def _dump(graph: Graph, dump_dir: Path | None, step: int, name: str) -> None:
    if dump_dir is None:
        return
    dump_dir.mkdir(parents=True, exist_ok=True)
    (dump_dir / f"{step:02d}-{name}.ir").write_text(format_graph(graph) + "\n")


def lowerable(op: str, domain: str, opset: int) -> tuple[bool, tuple[int, ...]]:
    """Can some pass or lowering handle ``op``? Returns (supported, static input indices)."""
    from hcompile.ops import lookup
    from hcompile.passes.decompose_rnn import DECOMPOSED

    if domain in ("", "ai.onnx") and op in DECOMPOSED:
        return True, DECOMPOSED[op]
    impl = lookup(op, domain, opset)
    return (True, impl.static_inputs) if impl else (False, ())

"""The compile driver: import -> passes -> per-partition code generation -> artifact.

    art = compile_model("model.onnx", targets=["cpu"], input_shapes={"x": (1, 784)})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hcompile.artifact import Artifact, npy_bytes
from hcompile.errors import CompileError, UsageError
from hcompile.frontend import import_model
from hcompile.ir import Graph
from hcompile.passes import PassOptions, run_pipeline
from hcompile.plan import Partition, build_partitions, plan_json, subgraph

log = logging.getLogger("hcompile")

#: ``progress(step, detail)`` is called as compilation advances (the CLI draws it).
Progress = Callable[[str, str], None]


def compile_model(
    model: str | Path | bytes | onnx.ModelProto,
    *,
    targets: Sequence[str] = ("cpu",),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    progress: Progress | None = None,
    verify_passes: bool = False,
    target_options: Mapping[str, Mapping[str, Any]] | None = None,
    frozen_inputs: Mapping[str, np.ndarray] | None = None,
    partitioner: str = "auto",
    place: Sequence[str] = (),
    devices: Any = None,
    report_path: str | Path | None = None,
) -> Artifact:
    """Compile ``model`` for ``targets`` into an in-memory :class:`Artifact`.

    ``target_options`` maps a target name to its constructor options, e.g.
    ``{"gpu": {"arch": "sm_90"}}``. ``frozen_inputs`` fixes inputs to values (they leave
    the signature; see :func:`hcompile.frontend.import_model`). ``partitioner`` picks the
    placement algorithm, ``place`` pins nodes (``GLOB=TARGET``), ``devices`` gives device
    profiles (a TOML path or profile names), ``report_path`` writes the HTML report.
    """
    from hcompile.targets import target_names

    report = progress or (lambda step, detail: None)
    target_list = _check_targets(targets, target_names())
    timings: dict[str, float] = {}

    start = time.perf_counter()
    report("import", str(model) if isinstance(model, str | Path) else "<memory>")
    graph, loaded = import_model(model, input_shapes, frozen_inputs=frozen_inputs)
    timings["import_s"] = time.perf_counter() - start

    start = time.perf_counter()
    report("passes", f"{len(graph.nodes)} nodes")
    pass_options = PassOptions(targets=target_list, verify=verify_passes,
                           extra={"partitioner": partitioner, "place": list(place),
                                  "devices": devices})
    run_pipeline(graph, pass_options)
    partitions = build_partitions(graph) if graph.nodes else []
    timings["passes_s"] = time.perf_counter() - start

    members: dict[str, bytes] = {}
    part_entries = []
    start = time.perf_counter()
    options = dict(target_options or {})
    for part in partitions:
        report("codegen", f"partition {part.id + 1}/{len(partitions)} on {part.target} "
                          f"({len(part.nodes)} nodes)")
        entry = _build_partition(graph, part, options, members)
        part_entries.append(entry)
    timings["codegen_s"] = time.perf_counter() - start

    plan = plan_json(graph, partitions, pass_options.extra.get("plan_summary"))
    if report_path is not None:
        from hcompile.report import write_report

        write_report(report_path, graph, plan)
    report("pack", "weights and manifest")
    weight_names = _weights_needed(graph, part_entries)
    weights = _pack_weights(graph, weight_names, members)
    manifest = {
        "model": {"name": graph.name, "source": Path(loaded.source).name, "sha256": loaded.sha256},
        "inputs": [_spec(n, t.shape, t.dtype) for n, t in graph.inputs.items()],
        "outputs": [_spec(n, graph.type_of(n).shape, graph.type_of(n).dtype)
                    for n in graph.outputs],
        "plan": plan,
        "weights": weights,
        "partitions": part_entries,
        "compile": {k: round(v, 3) for k, v in timings.items()},
    }
    return Artifact(manifest=manifest, members=members)


def _build_partition(graph: Graph, part: Partition, options: Mapping[str, Mapping[str, Any]],
                     members: dict[str, bytes]) -> dict[str, Any]:
    """Build one partition (plus its CPU fallback when it targets a device)."""
    from hcompile.targets import get_target

    sub = subgraph(graph, part)
    try:
        result = get_target(part.target, **options.get(part.target, {})).build(sub, part.id)
    except CompileError as err:
        if part.target == "cpu":
            raise
        # A device target that cannot compile a partition leaves it on the CPU, by name.
        log.warning("partition %d (%s) stays on the CPU: %s", part.id,
                    ", ".join(sorted({graph.node(n).op for n in part.nodes})), err.message)
        part.meta["reason"] = f"{part.target} failed: {err.message}"
        part.target = "cpu"
        result = get_target("cpu", **options.get("cpu", {})).build(sub, part.id)
    part.meta["compile_s"] = round(result.seconds, 3)
    for blob in result.code:
        members[blob.member] = blob.data
    entry = _partition_entry(part, result)
    if part.target != "cpu":
        fallback = get_target("cpu", **options.get("cpu", {})).build(sub, part.id)
        if fallback.params != result.params:
            raise CompileError(f"partition {part.id}: the CPU fallback takes other params")
        blob = fallback.code[0]
        members[blob.member] = blob.data
        entry["fallback"] = {"format": blob.format, "member": blob.member, **blob.info}
    return entry


def _check_targets(targets: Sequence[str], known: list[str]) -> list[str]:
    chosen = [t.strip() for t in targets if t.strip()]
    if not chosen:
        raise UsageError("no target given", hint=f"choose from: {', '.join(known)}")
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise UsageError(f"unknown target(s): {', '.join(unknown)}",
                         hint=f"choose from: {', '.join(known)}")
    return chosen


def _spec(name: str, shape: Sequence[int], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": [int(d) for d in shape], "dtype": dtype}


def _partition_entry(part: Partition, result: Any) -> dict[str, Any]:
    return {
        "id": part.id,
        "target": part.target,
        "device": part.target,
        "inputs": part.inputs,
        "params": result.params,
        "outputs": part.outputs,
        "code": [{"format": b.format, "member": b.member, **b.info} for b in result.code],
        "fallback": None,
    }


def _weights_needed(graph: Graph, entries: list[dict[str, Any]]) -> list[str]:
    """Params of every partition plus model outputs that are constants."""
    names: dict[str, None] = {}
    for entry in entries:
        names.update(dict.fromkeys(entry["params"]))
    names.update(dict.fromkeys(o for o in graph.outputs if o in graph.constants))
    return list(names)


def _pack_weights(graph: Graph, names: list[str], members: dict[str, bytes]) -> dict[str, Any]:
    weights = {}
    for index, name in enumerate(names):
        value = np.require(graph.constants[name], requirements="C")  # keeps 0-d arrays 0-d
        member = f"weights/{index:05d}.npy"
        members[member] = npy_bytes(value)  # narrow types as their storage bits
        weights[name] = {"member": member, "shape": list(value.shape), "dtype": value.dtype.name}
    return weights

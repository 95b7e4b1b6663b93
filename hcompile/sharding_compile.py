"""Compile a model batch-sharded over devices (``--shard-batch auto|cpu=0.4,fpga=0.6``).

    art = compile_sharded("mlp.onnx", "cpu=0.4,fpga=0.6", input_shapes={"x": (8, 784)})

The model is compiled once per participating device, for that device's share of the batch
(rows split by the fractions, largest remainders rounded up; a device given no rows is left
out), with that device as its only target (plus the CPU for what does not fit an FPGA's
resource budget). The shards are merged into one artifact whose
tensors are renamed ``<name>@<shard>`` and whose manifest carries a ``sharding`` object
(see :mod:`hcompile.runtime.sharding`); weights equal in every shard are stored once.

``auto`` measures each device on the model at the full batch and at one row (compile,
warm up, median of a few runs), which gives it a fixed cost and a per-row rate, then runs
all of them at once to measure how much they slow each other down (devices sharing the
host's cores), and picks the whole-row split with the smallest predicted makespan under
that contention (:mod:`hcompile.runtime.contention`): a device whose fixed cost outweighs
the rows it would take gets none, and where no split beats the best single device, that
device takes the whole batch (the log says so).

Every input and output must be batch-major (batch first): a shard's output whose first
dimension is not the shard's batch is reported by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hcompile.artifact import Artifact
from hcompile.errors import ResourceError, UsageError
from hcompile.runtime.contention import (
    DeviceSpeed,
    SplitChoice,
    best_split,
    measure_slowdown,
    median_seconds,
)
from hcompile.runtime.sharding import parse_shard_spec, shard_name, split_batch

log = logging.getLogger("hcompile")


def compile_sharded(
    model: str | Path | bytes | onnx.ModelProto,
    spec: str | Mapping[str, float],
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    targets: Sequence[str] | None = None,
    throughput: Mapping[str, float | DeviceSpeed] | None = None,
    slowdown: Mapping[str, float] | None = None,
    **compile_options: Any,
) -> Artifact:
    """Compile ``model`` sharded along the batch by ``spec`` (``"auto"``, ``"cpu=0.4,..."``
    or a mapping target -> fraction).

    ``targets`` are the devices ``auto`` chooses among (default: cpu and fpga).
    ``throughput`` (per target: rows per second, or a :class:`DeviceSpeed`) skips the
    measurement ``auto`` does; ``slowdown`` (per target, see
    :mod:`hcompile.runtime.contention`) then says how devices slow each other down
    (default: not at all).
    Other keyword arguments go to :func:`hcompile.compiler.compile_model`.
    """
    shapes = model_input_shapes(model, input_shapes)
    batch = _batch_of(shapes)
    model = _batch_free(model)
    if isinstance(spec, str):
        fractions = parse_shard_spec(spec)
    else:
        fractions = parse_shard_spec(",".join(f"{t}={f}" for t, f in spec.items()))
    auto: dict[str, Any] = {}
    if fractions is None:
        fractions, auto = _auto_fractions(model, shapes, batch, targets, throughput, slowdown,
                                          **compile_options)
    rows = {t: r for t, r in split_batch(batch, fractions).items() if r > 0}
    shards = []
    for i, (target, count) in enumerate(rows.items()):
        shard_shapes = {name: (count, *shape[1:]) for name, shape in shapes.items()}
        art = compile_for_device(model, target, shard_shapes, **compile_options)
        _check_batch_major(art, count, i, target)
        shards.append((target, fractions[target], count, art))
    merged = merge_shards(shards, batch)
    merged.manifest["sharding"].update(auto)
    return merged


def _auto_fractions(model: Any, shapes: Mapping[str, tuple[int, ...]], batch: int,
                    targets: Sequence[str] | None,
                    throughput: Mapping[str, float | DeviceSpeed] | None,
                    slowdown: Mapping[str, float] | None,
                    **compile_options: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """``auto``: the fractions, and what to record in the manifest about how they were
    chosen (``auto_speeds`` target -> [rows/s, fixed s], ``auto_slowdown``,
    ``auto_predicted_ms``)."""
    candidates = list(targets or ("cpu", "fpga"))
    if throughput:
        speeds = {t: v if isinstance(v, DeviceSpeed) else DeviceSpeed(float(v))
                  for t, v in throughput.items() if t in candidates}
        slow = dict(slowdown or {})
    else:
        speeds, slow = calibrate_contention(model, shapes, candidates, **compile_options)
    choice = choose_split(batch, speeds, slow)
    log.info("--shard-batch auto: %s", choice.describe())
    return choice.fractions, {
        "auto_speeds": {t: list(v) for t, v in speeds.items()},
        "auto_slowdown": {t: slow.get(t, 1.0) for t in speeds},
        "auto_predicted_ms": choice.predicted_s * 1e3,
    }


def best_fractions(batch: int, speeds: Mapping[str, float | DeviceSpeed],
                   slowdown: Mapping[str, float] | None = None) -> dict[str, float]:
    """Fractions (every device of ``speeds``, 0 for those left out) of the whole-row split
    with the smallest predicted makespan; see :func:`hcompile.runtime.contention.best_split`.
    ``speeds``: rows per second or a :class:`DeviceSpeed` per target; ``slowdown``: how
    much slower each target runs while other shards run (default 1: independent devices)."""
    return choose_split(batch, speeds, slowdown).fractions


def choose_split(batch: int, speeds: Mapping[str, float | DeviceSpeed],
                 slowdown: Mapping[str, float] | None = None) -> SplitChoice:
    model = {t: v if isinstance(v, DeviceSpeed) else DeviceSpeed(float(v))
             for t, v in speeds.items()}
    try:
        return best_split(batch, model, slowdown)
    except ValueError as err:
        raise UsageError(f"--shard-batch auto: {err}") from None


def compile_for_device(model: Any, target: str, shapes: Mapping[str, Sequence[int]],
                 **compile_options: Any) -> Artifact:
    """The model on ``target`` alone; where the placement cannot fit it there (an FPGA's
    resource budget), on ``target`` and the CPU."""
    from hcompile.compiler import compile_model

    try:
        return compile_model(model, targets=[target], input_shapes=shapes, **compile_options)
    except (UsageError, ResourceError) as err:  # an FPGA's budget: ResourceError now
        if target == "cpu" or err.pass_name != "place":
            raise
        log.info("--shard-batch: the %s shard does not fit on %s alone (%s); letting the "
                 "placement use the CPU too", target, target, err.message)
        return compile_model(model, targets=[target, "cpu"], input_shapes=shapes,
                             **compile_options)


def model_input_shapes(model: Any, given: Mapping[str, Sequence[int]] | None
                       ) -> dict[str, tuple[int, ...]]:
    """Static shapes of the model's (non-initializer) inputs, ``given`` taking precedence."""
    proto = _load(model)
    given = dict(given or {})
    initializers = {t.name for t in proto.graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        if value.name in given:
            shapes[value.name] = tuple(int(d) for d in given[value.name])
            continue
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            shown = ",".join(str(d.dim_value) if d.HasField("dim_value") else "?" for d in dims)
            raise UsageError(f"--shard-batch needs the batch size: input {value.name!r} has "
                             f"shape [{shown}]",
                             hint=f"pass --input-shape {value.name}=<batch>,...")
        shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _load(model: Any) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    return onnx.load(str(model), load_external_data=False)


def _batch_free(model: Any) -> Any:
    """``model``, with a symbolic batch dimension where its inputs fix it (so each shard
    can be compiled for its own batch); unchanged when the batch is symbolic already."""
    proto = _load(model)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if not any(v.type.tensor_type.shape.dim and
               v.type.tensor_type.shape.dim[0].HasField("dim_value") for v in inputs):
        return model
    if not isinstance(model, onnx.ModelProto | bytes) and any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise UsageError("--shard-batch: this model fixes its batch size and keeps its weights "
                         "in external data files",
                         hint="export it with a symbolic batch dimension")
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    outputs = list(proto.graph.output)
    for value in (*[v for v in proto.graph.input if v.name not in initializers], *outputs):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "hcompile_batch"
    del proto.graph.value_info[:]
    return proto


def _batch_of(shapes: Mapping[str, tuple[int, ...]]) -> int:
    batches = {name: shape[0] if shape else None for name, shape in shapes.items()}
    values = set(batches.values())
    if not batches or None in values or len(values) != 1:
        listed = ", ".join(f"{n}: {list(shapes[n])}" for n in shapes)
        raise UsageError(f"--shard-batch needs every input batch-major with one batch size "
                         f"(inputs {listed or 'none'})",
                         hint="shard only models whose inputs all start with the batch axis")
    batch = int(next(iter(values)))  # type: ignore[arg-type]
    if batch < 1:
        raise UsageError("--shard-batch needs a batch of at least 1")
    return batch


def _check_batch_major(art: Artifact, rows: int, index: int, target: str) -> None:
    for spec in art.outputs:
        if not spec.shape or spec.shape[0] != rows:
            raise UsageError(
                f"--shard-batch: output {spec.name!r} is not batch-major: with {rows} rows on "
                f"{target} (shard {index}) its shape is {list(spec.shape)}, whose first "
                f"dimension is not {rows}",
                hint="shard only models whose outputs all start with the batch axis")


def calibrate(model: Any, shapes: Mapping[str, tuple[int, ...]], targets: Sequence[str],
              repeat: int = 3, **compile_options: Any) -> dict[str, DeviceSpeed]:
    """Each target's :class:`DeviceSpeed` on the model, measured alone."""
    return calibrate_contention(model, shapes, targets, repeat, together=False,
                                **compile_options)[0]


def calibrate_contention(model: Any, shapes: Mapping[str, tuple[int, ...]],
                         targets: Sequence[str], repeat: int = 5, together: bool = True,
                         **compile_options: Any
                         ) -> tuple[dict[str, DeviceSpeed], dict[str, float]]:
    """Each target's :class:`DeviceSpeed` alone (median time at the full batch and at one
    row: two compiles per target, one when the batch is 1), and with ``together`` its
    slowdown while the other targets run at the same time (full batch, see
    :func:`hcompile.runtime.contention.measure_slowdown`)."""
    batch = next(iter(shapes.values()))[0]
    loaded = {t: _loaded(model, t, shapes, **compile_options) for t in targets}
    full = {t: median_seconds(run, repeat) for t, (run, _) in loaded.items()}
    slowdown = (measure_slowdown({t: run for t, (run, _) in loaded.items()}, full, repeat)
                if together else {t: 1.0 for t in targets})
    for _, close in loaded.values():
        close()
    speeds = {}
    for target in targets:
        if batch == 1:
            speeds[target] = DeviceSpeed(1 / max(full[target], 1e-9))
            continue
        run, close = _loaded(model, target, {n: (1, *s[1:]) for n, s in shapes.items()},
                             **compile_options)
        one = median_seconds(run, repeat)
        close()
        per_row = max((full[target] - one) / (batch - 1), full[target] / batch * 1e-3, 1e-12)
        speeds[target] = DeviceSpeed(1 / per_row, max(one - per_row, 0.0))
    return speeds, slowdown


def _loaded(model: Any, target: str, shapes: Mapping[str, tuple[int, ...]],
            **compile_options: Any) -> tuple[Callable[[], object], Callable[[], None]]:
    """``(run once, close)`` for the model compiled for ``target`` on random inputs."""
    from hcompile.runtime import load

    exe = load(compile_for_device(model, target, shapes, **compile_options))
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.standard_normal(s.shape).astype(s.dtype)
             if np.issubdtype(np.dtype(s.dtype), np.floating)
             else np.zeros(s.shape, s.dtype) for s in exe.inputs}
    return (lambda: exe.run(feeds)), exe.close


def merge_shards(shards: Sequence[tuple[str, float, int, Artifact]], batch: int) -> Artifact:
    """One artifact from per-device shard artifacts ``(target, fraction, rows, artifact)``."""
    members: dict[str, bytes] = {}
    weights: dict[str, Any] = {}
    weight_bytes: dict[str, bytes] = {}
    partitions: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for i, (_, _, _, art) in enumerate(shards):
        manifest = art.manifest
        renamed: dict[str, str] = {}
        for name, spec in manifest.get("weights", {}).items():
            data = art.members[spec["member"]]
            if weight_bytes.get(name) == data:
                renamed[name] = name  # the same weight as an earlier shard's: share it
                continue
            new = name if name not in weights else shard_name(name, i)
            member = f"shards/{i}/{spec['member']}"
            members[member] = data
            weights[new] = {**spec, "member": member}
            weight_bytes.setdefault(new, data)
            renamed[name] = new

        def rename(n: str, renamed: dict[str, str] = renamed, i: int = i) -> str:
            return renamed.get(n) or shard_name(n, i)

        inputs += [{**t, "name": rename(t["name"])} for t in manifest["inputs"]]
        outputs += [{**t, "name": rename(t["name"])} for t in manifest["outputs"]]
        for p in manifest["partitions"]:
            entry = dict(p)
            entry["id"] = len(partitions)
            entry["inputs"] = [rename(n) for n in p["inputs"]]
            entry["params"] = [rename(n) for n in p["params"]]
            entry["outputs"] = [rename(n) for n in p["outputs"]]
            entry["code"] = [_moved(c, i, art, members) for c in p["code"]]
            if p.get("fallback") is not None:
                entry["fallback"] = _moved(p["fallback"], i, art, members)
            entry["shard"] = i
            partitions.append(entry)
    first = shards[0][3].manifest

    def whole(t: dict[str, Any]) -> dict[str, Any]:
        return {**t, "shape": [batch, *t["shape"][1:]]}

    manifest = {
        "model": first.get("model", {}),
        "inputs": inputs,
        "outputs": outputs,
        "plan": {"partitioner": "sharded", "shards": [s[3].manifest.get("plan") for s in shards]},
        "weights": weights,
        "partitions": partitions,
        "sharding": {
            "axis": 0, "batch": batch,
            "inputs": [whole(t) for t in first["inputs"]],
            "outputs": [whole(t) for t in first["outputs"]],
            "shards": [{"target": t, "batch": rows, "fraction": round(f, 4)}
                       for t, f, rows, _ in shards],
        },
    }
    merged = Artifact(manifest=manifest, members=members)
    merged.check()
    return merged


def _moved(code: dict[str, Any], index: int, art: Artifact,
           members: dict[str, bytes]) -> dict[str, Any]:
    member = f"shards/{index}/{code['member']}"
    members[member] = art.members[code["member"]]
    return {**code, "member": member}

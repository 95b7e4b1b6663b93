"""Compile a model batch-sharded over devices (``--shard-batch auto|cpu=0.4,fpga=0.6``).

    art = compile_sharded("mlp.onnx", "cpu=0.4,fpga=0.6", input_shapes={"x": (8, 784)})

The model is compiled once per participating device, for that device's share of the batch
(rows split by the fractions, largest remainders rounded up; a device given no rows is left
out), with that device as its only target (plus the CPU for what does not fit an FPGA's
resource budget). The shards are merged into one artifact whose
tensors are renamed ``<name>@<shard>`` and whose manifest carries a ``sharding`` object
(see :mod:`hcompile.runtime.sharding`); weights equal in every shard are stored once.

``auto`` measures each device on the model at the full batch and at one row (compile,
warm up, median of a few runs), which gives it a fixed cost and a per-row rate, and picks
the split with the smallest predicted makespan (:func:`best_fractions`): a device whose
fixed cost outweighs the rows it would take gets none.

Every input and output must be batch-major (batch first): a shard's output whose first
dimension is not the shard's batch is reported by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx

from hcompile.artifact import Artifact
from hcompile.errors import UsageError
from hcompile.runtime.sharding import parse_shard_spec, shard_name, split_batch

log = logging.getLogger("hcompile")


def compile_sharded(
    model: str | Path | bytes | onnx.ModelProto,
    spec: str | Mapping[str, float],
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    targets: Sequence[str] | None = None,
    throughput: Mapping[str, float | DeviceSpeed] | None = None,
    **compile_options: Any,
) -> Artifact:
    """Compile ``model`` sharded along the batch by ``spec`` (``"auto"``, ``"cpu=0.4,..."``
    or a mapping target -> fraction).

    ``targets`` are the devices ``auto`` chooses among (default: cpu and fpga).
    ``throughput`` (per target: rows per second, or a :class:`DeviceSpeed`) skips the
    measurement ``auto`` does.
    Other keyword arguments go to :func:`hcompile.compiler.compile_model`.
    """
    shapes = model_input_shapes(model, input_shapes)
    batch = _batch_of(shapes)
    model = _batch_free(model)
    if isinstance(spec, str):
        fractions = parse_shard_spec(spec)
    else:
        fractions = parse_shard_spec(",".join(f"{t}={f}" for t, f in spec.items()))
    calibration = None
    if fractions is None:
        candidates = list(targets or ("cpu", "fpga"))
        speeds = dict(throughput) if throughput else calibrate(model, shapes, candidates,
                                                                **compile_options)
        calibration = {t: list(v) if isinstance(v, DeviceSpeed) else [v, 0.0]
                       for t, v in speeds.items()}
        fractions = best_fractions(batch, {t: speeds[t] for t in candidates})
        log.info("--shard-batch auto: %s", ", ".join(f"{t}={f:.2f}" for t, f in
                                                      fractions.items()))
    rows = {t: r for t, r in split_batch(batch, fractions).items() if r > 0}
    shards = []
    for i, (target, count) in enumerate(rows.items()):
        shard_shapes = {name: (count, *shape[1:]) for name, shape in shapes.items()}
        art = compile_for_device(model, target, shard_shapes, **compile_options)
        _check_batch_major(art, count, i, target)
        shards.append((target, fractions[target], count, art))
    merged = merge_shards(shards, batch)
    if calibration is not None:
        merged.manifest["sharding"]["auto_speeds"] = calibration  # [rows/s, fixed s]
    return merged


#: what each extra shard costs a request beyond its device time: a device-worker hand-off,
#: splitting the inputs and concatenating the outputs (benchmarks/dispatch_overhead.py
#: measures ~50 µs for the hand-offs of a request on the workers)
SHARD_OVERHEAD_S = 50e-6


class DeviceSpeed(NamedTuple):
    """A device's time for ``rows`` rows of the model: ``fixed_s + rows / rows_per_s``."""

    rows_per_s: float
    fixed_s: float = 0.0

    def seconds(self, rows: int) -> float:
        return self.fixed_s + rows / self.rows_per_s if rows > 0 else 0.0


def best_fractions(batch: int, speeds: Mapping[str, float | DeviceSpeed]) -> dict[str, float]:
    """Fractions minimising the predicted makespan ``max_d(fixed_d + rows_d / rate_d)`` over
    whole rows, plus :data:`SHARD_OVERHEAD_S` per extra shard. For every subset of the
    devices the continuous optimum ends all of them at the same time; it is rounded to
    whole rows and the best subset wins (so a slow device, or one whose fixed cost
    outweighs its share, gets no rows)."""
    model = {t: v if isinstance(v, DeviceSpeed) else DeviceSpeed(float(v))
             for t, v in speeds.items()}
    usable = [t for t, v in model.items() if v.rows_per_s > 0]
    if not usable:
        raise UsageError("--shard-batch auto: no device has a positive throughput")
    best: tuple[float, dict[str, float]] | None = None
    for mask in range(1, 1 << len(usable)):
        chosen = [t for i, t in enumerate(usable) if mask >> i & 1]
        rate = sum(model[t].rows_per_s for t in chosen)
        finish = (batch + sum(model[t].fixed_s * model[t].rows_per_s for t in chosen)) / rate
        share = {t: max(finish - model[t].fixed_s, 0.0) * model[t].rows_per_s for t in chosen}
        if sum(share.values()) <= 0:
            continue
        fractions = {t: share.get(t, 0.0) / sum(share.values()) for t in model}
        rows = split_batch(batch, fractions)
        shards = sum(1 for r in rows.values() if r > 0)
        makespan = max(model[t].seconds(rows[t]) for t in model) + \
            SHARD_OVERHEAD_S * (shards - 1)
        if best is None or makespan < best[0] - 1e-12:
            best = (makespan, fractions)
    assert best is not None  # a single device always gives a split
    return best[1]


def compile_for_device(model: Any, target: str, shapes: Mapping[str, Sequence[int]],
                 **compile_options: Any) -> Artifact:
    """The model on ``target`` alone; where the placement cannot fit it there (an FPGA's
    resource budget), on ``target`` and the CPU."""
    from hcompile.compiler import compile_model

    try:
        return compile_model(model, targets=[target], input_shapes=shapes, **compile_options)
    except UsageError as err:
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
    """Each target's :class:`DeviceSpeed` on the model, from its median time at the full
    batch and at one row (two compiles per target; one when the batch is 1)."""
    batch = next(iter(shapes.values()))[0]
    speeds = {}
    for target in targets:
        full = _time_model(model, target, shapes, repeat, **compile_options)
        if batch == 1:
            speeds[target] = DeviceSpeed(1 / max(full, 1e-9))
            continue
        one = _time_model(model, target, {n: (1, *s[1:]) for n, s in shapes.items()}, repeat,
                          **compile_options)
        per_row = max((full - one) / (batch - 1), full / batch * 1e-3, 1e-12)
        speeds[target] = DeviceSpeed(1 / per_row, max(one - per_row, 0.0))
    return speeds


def _time_model(model: Any, target: str, shapes: Mapping[str, tuple[int, ...]], repeat: int,
                **compile_options: Any) -> float:
    """Median seconds of one run of the model compiled for ``target`` (after a warm-up)."""
    from hcompile.runtime import load

    exe = load(compile_for_device(model, target, shapes, **compile_options))
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.standard_normal(s.shape).astype(s.dtype)
             if np.issubdtype(np.dtype(s.dtype), np.floating)
             else np.zeros(s.shape, s.dtype) for s in exe.inputs}
    exe.run(feeds)  # warm-up (first runs build kernels)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        exe.run(feeds)
        times.append(time.perf_counter() - start)
    exe.close()
    return float(np.median(times))


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

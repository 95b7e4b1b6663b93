"""Static input shapes: ``--input-shape NAME=D0,D1,...`` and the symbolic-batch default."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import onnx

from hcompile.errors import ShapeError, UsageError

log = logging.getLogger("hcompile")

InputShapes = Mapping[str, Sequence[int]]


def parse_input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME=D0,D1,...`` (``NAME=`` alone means a scalar)."""
    name, sep, dims = spec.rpartition("=")
    if not sep or not name:
        raise UsageError(f"bad --input-shape '{spec}'", hint="write NAME=D0,D1,... e.g. x=1,784")
    try:
        shape = tuple(int(d) for d in dims.split(",")) if dims.strip() else ()
    except ValueError:
        raise UsageError(f"bad --input-shape '{spec}': dims must be integers",
                         hint="write NAME=D0,D1,... e.g. x=1,784") from None
    if any(d < 0 for d in shape):
        raise UsageError(f"bad --input-shape '{spec}': dims must be >= 0")
    return name, shape


def resolve_input_shape(
    value: onnx.ValueInfoProto, overrides: InputShapes, source: str
) -> tuple[int, ...]:
    """The static shape of a graph input: the override, the model's dims, or batch 1."""
    name = value.name
    tensor = value.type.tensor_type
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
    if name in overrides:
        shape = tuple(int(d) for d in overrides[name])
        if dims is not None and len(dims) != len(shape):
            raise ShapeError(
                f"--input-shape gives input '{name}' rank {len(shape)}, the model says rank "
                f"{len(dims)}",
                source=source,
                hint=f"pass {len(dims)} dims: --input-shape {name}=" + ",".join(
                    str(d.dim_value) if d.HasField("dim_value") else "N" for d in dims),
            )
        for axis, (dim, want) in enumerate(zip(dims or [], shape, strict=False)):
            if dim.HasField("dim_value") and dim.dim_value != want:
                raise ShapeError(
                    f"--input-shape sets dim {axis} of input '{name}' to {want}, but the model "
                    f"fixes it to {dim.dim_value}",
                    source=source,
                )
        return shape
    if dims is None:
        raise ShapeError(f"input '{name}' has no shape in the model", source=source,
                         hint=f"pass --input-shape {name}=D0,D1,...")
    shape_out = []
    for axis, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape_out.append(int(dim.dim_value))
            continue
        label = dim.dim_param or "?"
        if axis == 0:
            log.info("input '%s': symbolic batch dim '%s' set to 1 (change with "
                     "--input-shape %s=...)", name, label, name)
            shape_out.append(1)
            continue
        example = ",".join(str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0
                           else "1" if i == 0 else "N" for i, d in enumerate(dims))
        raise ShapeError(
            f"input '{name}' has symbolic dim {axis} ('{label}'); hcompile needs static shapes",
            source=source,
            hint=f"pass --input-shape {name}={example} with N replaced by the size you need",
        )
    return tuple(shape_out)


def check_override_names(overrides: InputShapes, input_names: Sequence[str], source: str) -> None:
    unknown = [name for name in overrides if name not in input_names]
    if unknown:
        raise UsageError(
            f"--input-shape names unknown input(s) {', '.join(repr(n) for n in unknown)}",
            source=source,
            hint=f"the model's inputs are: {', '.join(input_names) or '(none)'}",
        )

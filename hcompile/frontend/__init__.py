"""ONNX importer: a model file or ModelProto -> a checked IR :class:`Graph` with static shapes.

    graph, loaded = import_model("model.onnx", input_shapes={"x": (1, 784)})
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from hcompile.errors import ModelError, ShapeError, UsageError
from hcompile.frontend.convert import GraphConverter, SupportFn
from hcompile.frontend.infer import onnx_to_dtype
from hcompile.frontend.loader import LoadedModel, load_model
from hcompile.frontend.shapes import (
    InputShapes,
    check_override_names,
    parse_input_shape,
    resolve_input_shape,
)
from hcompile.ir import Graph, TensorType, verify

__all__ = ["LoadedModel", "import_model", "parse_input_shape"]


def import_model(
    model: str | Path | bytes | onnx.ModelProto,
    input_shapes: InputShapes | None = None,
    supported: SupportFn | None = None,
    frozen_inputs: Mapping[str, np.ndarray] | None = None,
) -> tuple[Graph, LoadedModel]:
    """Load, check, upgrade and convert ``model``; every tensor gets a static type.

    ``frozen_inputs`` binds graph inputs to fixed values: they become constants and leave the
    run-time signature (specialisation on shape-like inputs such as ``axes`` or ``sizes``).
    """
    loaded = load_model(model)
    graph_proto = loaded.model.graph
    frozen = {k: np.asarray(v) for k, v in (frozen_inputs or {}).items()}
    initializers = {init.name for init in graph_proto.initializer}
    all_inputs = [v.name for v in graph_proto.input if v.name not in initializers]
    unknown = [name for name in frozen if name not in all_inputs]
    if unknown:
        raise UsageError(f"cannot freeze unknown input(s) {', '.join(unknown)}",
                         hint=f"the model's inputs are: {', '.join(all_inputs)}")
    if frozen:  # never modify the caller's ModelProto
        copy = onnx.ModelProto()
        copy.CopyFrom(loaded.model)
        loaded.model = copy
        graph_proto = copy.graph
    for name, value in frozen.items():
        init = graph_proto.initializer.add()
        init.CopyFrom(numpy_helper.from_array(value, name))
    run_inputs = [v for v in graph_proto.input
                  if v.name not in initializers and v.name not in frozen]
    overrides = dict(input_shapes or {})
    check_override_names(overrides, [v.name for v in run_inputs], loaded.source)
    inputs = {}
    for value in run_inputs:
        if not value.type.HasField("tensor_type"):
            raise ModelError(f"input '{value.name}' is not a tensor (sequences, maps and "
                             "optionals are not supported)", source=loaded.source)
        try:
            dtype = onnx_to_dtype(value.type.tensor_type.elem_type)
        except ModelError as err:
            err.message = f"input '{value.name}': {err.message}"
            raise err.with_context(source=loaded.source) from None
        inputs[value.name] = TensorType(resolve_input_shape(value, overrides, loaded.source),
                                        dtype)
    graph = GraphConverter(loaded.model, inputs, loaded.source,
                           supported or _default_support).convert()
    verify(graph, after="import")
    _check_sizes(graph)
    return graph, loaded


#: No single tensor may exceed this: beyond it a model cannot run on any supported device, and
#: huge declared dims (fuzzed or mistyped) would otherwise run the compiler out of memory.
MAX_TENSOR_BYTES = 1 << 36  # 64 GiB


def _check_sizes(graph: Graph) -> None:
    for name, ttype in graph.tensor_types().items():
        if ttype.nbytes > MAX_TENSOR_BYTES:
            raise ShapeError(
                f"tensor '{name}' ({ttype}) would take {ttype.nbytes / 2**30:.0f} GiB, more "
                f"than the {MAX_TENSOR_BYTES >> 30} GiB any device supports",
                source=graph.source, hint="check the model's dims and --input-shape")


def _default_support(op: str, domain: str, opset: int) -> tuple[bool, tuple[int, ...]]:
    from hcompile.passes import lowerable

    return lowerable(op, domain, opset)

"""Per-node static type inference with ONNX's own shape-inference rules."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from hcompile.errors import ModelError, ShapeError
from hcompile.ir import TensorType
from hcompile.ir.types import DTYPES


def onnx_to_dtype(elem_type: int) -> str:
    """ONNX element type -> IR dtype name; ModelError for types hcompile does not compile."""
    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        onnx_name = onnx.TensorProto.DataType.Name(elem_type)
        name = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        onnx_name = name = "UNDEFINED"
    if name not in DTYPES:
        raise ModelError(f"element type {onnx_name} is not supported",
                         hint="hcompile compiles numeric tensors (float, int, bool) only")
    return name


def dtype_to_onnx(dtype: str) -> int:
    if dtype == "bfloat16":
        return onnx.TensorProto.BFLOAT16
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def infer_output_types(
    node: onnx.NodeProto,
    inputs: list[str],
    outputs: list[str],
    types: dict[str, TensorType],
    constants: dict[str, np.ndarray],
    opsets: dict[str, int],
) -> list[TensorType]:
    """Static output types of ``node`` (with renamed ``inputs``/``outputs``)."""
    domain = node.domain or ""
    rule = _VALUE_RULES.get((domain, node.op_type))
    if rule is not None:
        found = rule(node, inputs, types, constants)
        if found is not None:
            return found
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        raise ModelError(f"{node.op_type} is not an operator of opset "
                         f"{opsets.get(domain, 1)} in domain '{domain or 'ai.onnx'}'") from None
    proto = helper.make_node(node.op_type, inputs, outputs, domain=node.domain)
    proto.attribute.extend(node.attribute)
    input_types = {
        i: helper.make_tensor_type_proto(dtype_to_onnx(types[i].dtype), types[i].shape)
        for i in inputs if i
    }
    input_data = {i: numpy_helper.from_array(constants[i], i) for i in inputs
                  if i and i in constants and constants[i].size <= 1_000_000}
    opset_imports = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    try:
        inferred = shape_inference.infer_node_outputs(schema, proto, input_types, input_data,
                                                      opset_imports=opset_imports)
        return [_static_type(inferred.get(out), out) if out else TensorType((), "float32")
                for out in outputs]
    except ShapeError:
        if not _is_function_op(schema):
            raise
    except Exception as err:  # InferenceError, ValidationError... all mean a bad model
        if not _is_function_op(schema):
            message = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
            raise ModelError(f"shape inference failed for {node.op_type}: {message}") from None
    # Ops defined by an ONNX function (MeanVarianceNormalization...) may have no node-level
    # rule: infer through the function body with whole-model inference.
    return _infer_through_function(proto, input_types, input_data, opset_imports, outputs)


def _max_unpool(_node: onnx.NodeProto, inputs: list[str], types: dict[str, TensorType],
                constants: dict[str, np.ndarray]) -> list[TensorType] | None:
    """MaxUnpool with a constant ``output_shape``: ONNX's rule leaves the dims unknown."""
    if len(inputs) < 3 or not inputs[2] or inputs[2] not in constants:
        return None
    dims = tuple(int(d) for d in np.asarray(constants[inputs[2]]).reshape(-1))
    return [TensorType(dims, types[inputs[0]].dtype)]


def _stft(node: onnx.NodeProto, inputs: list[str], types: dict[str, TensorType],
          constants: dict[str, np.ndarray]) -> list[TensorType] | None:
    """STFT: ONNX's rule ignores ``onesided`` (default 1: length // 2 + 1 bins)."""
    step = constants.get(inputs[1]) if len(inputs) > 1 and inputs[1] else None
    if len(inputs) > 3 and inputs[3]:
        given = constants.get(inputs[3])
        length = None if given is None else int(np.asarray(given).reshape(-1)[0])
    else:
        length = types[inputs[2]].shape[0] if len(inputs) > 2 and inputs[2] else None
    if step is None or length is None:
        return None
    batch, samples = types[inputs[0]].shape[:2]
    frames = (samples - length) // int(np.asarray(step).reshape(-1)[0]) + 1
    onesided = next((a.i for a in node.attribute if a.name == "onesided"), 1)
    bins = length // 2 + 1 if onesided else length
    return [TensorType((batch, frames, bins, 2), types[inputs[0]].dtype)]


#: Output types ONNX's per-node inference does not derive from constant inputs and attributes.
_VALUE_RULES: dict[tuple[str, str], Callable[..., list[TensorType] | None]] = {
    ("", "MaxUnpool"): _max_unpool,
    ("", "STFT"): _stft,
}


def _is_function_op(schema: onnx.defs.OpSchema) -> bool:
    """Is the op defined by an ONNX function body (the stubs lack these attributes)?"""
    return bool(getattr(schema, "has_function", False)
                or getattr(schema, "has_context_dependent_function", False))


def _infer_through_function(
    proto: onnx.NodeProto,
    input_types: dict[str, onnx.TypeProto],
    input_data: dict[str, onnx.TensorProto],
    opset_imports: list[onnx.OperatorSetIdProto],
    outputs: list[str],
) -> list[TensorType]:
    graph = helper.make_graph(
        [proto], "infer",
        [helper.make_value_info(n, t) for n, t in input_types.items() if n not in input_data],
        [helper.make_empty_tensor_value_info(o) for o in outputs if o],
        list(input_data.values()),
    )
    model = helper.make_model(graph, opset_imports=opset_imports)
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        found = {v.name: v.type for v in (*inferred.graph.output, *inferred.graph.value_info)}
        return [_static_type(found.get(out), out) if out else TensorType((), "float32")
                for out in outputs]
    except Exception:  # some function bodies defeat inference: evaluate instead
        pass
    return _infer_by_evaluation(model, outputs)


def _infer_by_evaluation(model: onnx.ModelProto, outputs: list[str]) -> list[TensorType]:
    """Last resort for function ops: run the reference evaluator on zeros, read the types."""
    from onnx.reference import ReferenceEvaluator

    feeds = {}
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        feeds[value.name] = np.zeros([d.dim_value for d in tensor.shape.dim], dtype=dtype)
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as err:
        op = model.graph.node[0].op_type
        raise ModelError(f"shape inference failed for {op}: {err}") from None
    by_name = dict(zip([o for o in outputs if o], results, strict=False))
    return [TensorType.of(np.asarray(by_name[o])) if o else TensorType((), "float32")
            for o in outputs]


def _static_type(type_proto: onnx.TypeProto | None, name: str) -> TensorType:
    if type_proto is None or not type_proto.HasField("tensor_type"):
        raise ShapeError(f"cannot infer the type of '{name}'")
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        raise ShapeError(f"cannot infer a static shape for '{name}'")
    dims = []
    for dim in tensor.shape.dim:
        if not dim.HasField("dim_value"):
            raise ShapeError(f"cannot infer a static shape for '{name}' "
                             f"(dim '{dim.dim_param or '?'}' stays symbolic)")
        dims.append(int(dim.dim_value))
    return TensorType(tuple(dims), onnx_to_dtype(tensor.elem_type))

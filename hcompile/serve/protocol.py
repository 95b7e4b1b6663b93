"""The KServe v2 wire format: tensors in JSON and in the binary tensor data extension.

A request body is either pure JSON, or (binary extension) a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensor bytes of every input
whose ``parameters.binary_data_size`` is set, in input order. Responses mirror that: an
output is sent as raw bytes when the request asks for it (``outputs[i].parameters.
binary_data`` or the request-level ``parameters.binary_data_output``).

Every problem with a request raises :class:`RequestError`, carrying the HTTP status; the
app turns it into the protocol's error body ``{"error": "<message>"}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"

# KServe v2 datatype <-> numpy dtype name. BYTES (strings) and BF16 are not model dtypes here.
TO_NUMPY = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64",
}
FROM_NUMPY = {numpy_name: v2 for v2, numpy_name in TO_NUMPY.items()}

# Which kinds of JSON numbers may fill a tensor of each numpy kind (no silent truncation).
_JSON_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


class RequestError(Exception):
    """A bad request: ``status`` is the HTTP status, ``message`` the protocol's error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> RequestError:
    return RequestError(400, message)


def datatype_of(numpy_dtype: str) -> str:
    return FROM_NUMPY.get(numpy_dtype, numpy_dtype.upper())


@dataclass
class InferRequest:
    """A parsed infer request: input tensors by name and how to send each output back."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # None: every output
    binary_outputs: set[str] = field(default_factory=set)


def parse_request(body: bytes, header_length: str | None, output_names: Sequence[str]
                  ) -> InferRequest:
    """Parse an infer request body (JSON, or JSON + binary tensors) into numpy arrays."""
    json_part, binary = _split_body(body, header_length)
    try:
        doc = json.loads(json_part)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad(f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise bad("the request body is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise bad("the request body must be a JSON object with an 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad("'id' must be a string")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise bad("the request needs a non-empty 'inputs' list")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        name, array, used = _parse_input(index, raw, binary, offset)
        if name in inputs:
            raise bad(f"input {name!r} is given twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise bad(f"the body holds {len(binary)} bytes of binary tensor data, but the inputs' "
                  f"binary_data_size add up to {offset}")
    outputs, binary_outputs = _parse_outputs(doc, output_names)
    return InferRequest(request_id, inputs, outputs, binary_outputs)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise bad(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
    if not 0 <= length <= len(body):
        raise bad(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes")
    return body[:length], body[length:]


def _parse_shape(where: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def _parse_input(index: int, raw: Any, binary: bytes, offset: int
                 ) -> tuple[str, np.ndarray, int]:
    """One input tensor -> (name, array, binary bytes it used)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise bad(f"inputs[{index}] must be an object with a string 'name'")
    name = raw["name"]
    where = f"input {name!r}"
    shape = _parse_shape(where, raw.get("shape"))
    datatype = raw.get("datatype")
    if datatype not in TO_NUMPY:
        raise bad(f"{where}: unsupported datatype {datatype!r}; use one of "
                  f"{', '.join(TO_NUMPY)}")
    dtype = np.dtype(TO_NUMPY[datatype]).newbyteorder("<")
    count = math.prod(shape)
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad(f"{where}: 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise bad(f"{where}: binary_data_size must be a non-negative integer")
        if size != count * dtype.itemsize:
            raise bad(f"{where}: binary_data_size is {size} bytes, but a {datatype} tensor of "
                      f"shape {list(shape)} takes {count * dtype.itemsize}")
        if offset + size > len(binary):
            raise bad(f"{where}: the body ends before its {size} bytes of binary data")
        chunk = binary[offset:offset + size]
        array = np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="))
        return name, array.reshape(shape), size
    if "data" not in raw:
        raise bad(f"{where} has neither 'data' nor parameters.binary_data_size")
    return name, _json_tensor(where, raw["data"], shape, dtype), 0


def _json_tensor(where: str, data: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    try:
        parsed = np.asarray(data)
    except (ValueError, TypeError, RecursionError):
        raise bad(f"{where}: 'data' is a ragged or too deeply nested list") from None
    if parsed.size and parsed.dtype.kind not in _JSON_KINDS.get(dtype.kind, ""):
        raise bad(f"{where}: 'data' holds {parsed.dtype.name} values, which do not fit "
                  f"datatype {datatype_of(dtype.name)}")
    if parsed.size != math.prod(shape):
        raise bad(f"{where}: 'data' has {parsed.size} elements, but shape {list(shape)} "
                  f"needs {math.prod(shape)}")
    if dtype.kind in "iu" and parsed.size:
        info = np.iinfo(dtype)
        if parsed.min() < info.min or parsed.max() > info.max:
            raise bad(f"{where}: a value is out of range for {datatype_of(dtype.name)}")
    return parsed.astype(dtype.newbyteorder("=")).reshape(shape)


def _parse_outputs(doc: Mapping[str, Any], output_names: Sequence[str]
                   ) -> tuple[list[str] | None, set[str]]:
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad("'parameters' must be an object")
    all_binary = bool(params.get("binary_data_output", False))
    raw_outputs = doc.get("outputs")
    if raw_outputs is None:
        return None, set(output_names) if all_binary else set()
    if not isinstance(raw_outputs, list):
        raise bad("'outputs' must be a list")
    names: list[str] = []
    binary: set[str] = set()
    for index, raw in enumerate(raw_outputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise bad(f"outputs[{index}] must be an object with a string 'name'")
        name = raw["name"]
        if name not in output_names:
            raise bad(f"unknown output {name!r}; the model's outputs are "
                      f"{', '.join(output_names)}")
        names.append(name)
        out_params = raw.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise bad(f"output {name!r}: 'parameters' must be an object")
        if out_params.get("binary_data", all_binary):
            binary.add(name)
    return names, binary


def encode_response(model_name: str, request: InferRequest, outputs: Mapping[str, np.ndarray]
                    ) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (the binary extension's header length)."""
    names = request.outputs if request.outputs is not None else list(outputs)
    tensors = []
    chunks: list[bytes] = []
    for name in names:
        array = outputs[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype_of(array.dtype.name),
                                  "shape": list(array.shape)}
        if name in request.binary_outputs:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": tensors}
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(chunks), {"Content-Type": "application/octet-stream",
                                       HEADER_LENGTH: str(len(header))}

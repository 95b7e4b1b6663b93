"""Read an ONNX model from a path, bytes or ModelProto; check it; upgrade old opsets."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import version_converter

from hcompile.errors import ModelError

log = logging.getLogger("hcompile")

#: Models importing an older default-domain opset are upgraded to this one, so op
#: implementations need only follow ONNX semantics from opset 13 on.
MIN_OPSET = 13


@dataclass(slots=True)
class LoadedModel:
    """A checked model with where it came from.

    model: the ModelProto with external data loaded.
    source: the file path, or ``"<memory>"``.
    sha256: hash of the serialized model as given (before any upgrade).
    """

    model: onnx.ModelProto
    source: str
    sha256: str


def load_model(model: str | Path | bytes | onnx.ModelProto) -> LoadedModel:
    """Load, check and (if older than :data:`MIN_OPSET`) upgrade a model."""
    if isinstance(model, onnx.ModelProto):
        proto, source = model, "<memory>"
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
    elif isinstance(model, bytes):
        proto, source = _parse(model, "<memory>"), "<memory>"
        digest = hashlib.sha256(model).hexdigest()
    else:
        path = Path(model)
        source = str(path)
        proto, digest = _read_file(path)
    _check(proto, source)
    return LoadedModel(_upgrade(proto, source), source, digest)


def _read_file(path: Path) -> tuple[onnx.ModelProto, str]:
    if not path.exists():
        raise ModelError(f"model file not found: {path}", hint="check the path")
    if not path.is_file():
        raise ModelError(f"{path} is not a file", hint="pass the path of an .onnx file")
    data = path.read_bytes()
    proto = _parse(data, str(path))
    try:
        # External tensors live next to the model file.
        onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot read the model's external data: {err}",
            source=str(path),
            hint="keep the external data files next to the model, with the names it records",
        ) from None
    return proto, hashlib.sha256(data).hexdigest()


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as err:  # protobuf raises DecodeError and, for some inputs, others
        raise ModelError(
            f"not a valid ONNX file (protobuf parse failed: {err})",
            source=source,
            hint="re-export the model; the file may be truncated or not ONNX at all",
        ) from None
    if not proto.HasField("graph"):
        raise ModelError("the file holds no ONNX graph", source=source,
                         hint="re-export the model; the file may be truncated or not ONNX at all")
    return proto


def _check(proto: onnx.ModelProto, source: str) -> None:
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"the ONNX checker rejected the model: {first}",
            source=source,
            hint="fix or re-export the model (onnx.checker.check_model shows the full report)",
        ) from None


def default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _upgrade(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    version = default_opset(proto)
    if version >= MIN_OPSET:
        return proto
    log.info("upgrading the model from opset %d to %d", version, MIN_OPSET)
    try:
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as err:  # the converter raises RuntimeError/IndexError/...
        raise ModelError(
            f"the model uses opset {version}, and upgrading it to opset {MIN_OPSET} failed: {err}",
            source=source,
            hint=f"re-export the model with opset >= {MIN_OPSET}",
        ) from None
